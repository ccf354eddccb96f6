"""What the supervisor's own LLM calls cost: USD per million tokens, per model.

Approximate list prices; override or extend with AGENTPROXY_GEMINI_PRICES, a JSON object
{"model": [input_usd_per_mtok, output_usd_per_mtok], ...}.
"""

from __future__ import annotations

import json
import os

from agentproxy.errors import UsageError

PRICES_ENV = "AGENTPROXY_GEMINI_PRICES"
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gemini-3.5-flash": (0.50, 3.00),
    "gemini-3.5-flash-lite": (0.10, 0.40),
    "gemini-3.1-pro-preview": (2.00, 12.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.5-pro": (1.25, 10.00),
}


def price_table() -> dict[str, tuple[float, float]]:
    table = dict(DEFAULT_PRICES)
    raw = os.environ.get(PRICES_ENV)
    if raw:
        try:
            table.update({model: (float(p[0]), float(p[1])) for model, p in json.loads(raw).items()})
        except (ValueError, TypeError, IndexError, AttributeError) as exc:
            raise UsageError(f'{PRICES_ENV} must be JSON like {{"model": [0.5, 3.0]}}: {exc}') from exc
    return table


def cost_usd(table: dict[str, tuple[float, float]], model: str, input_tokens: int, output_tokens: int) -> float:
    """The call's cost; 0.0 for a model the table does not know (the event still carries the tokens)."""
    input_price, output_price = table.get(model, (0.0, 0.0))
    return (input_tokens * input_price + output_tokens * output_price) / 1_000_000
