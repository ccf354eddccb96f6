"""What an agent's tokens cost, per vendor and model, for the one budget every agent and the brain share.

Claude Code reports its own cost; Codex and the Gemini CLI report tokens only, priced here. The
table holds list prices in USD per million tokens; ``--agent-prices FILE`` (TOML) overrides or adds
rows, e.g. ``[codex]`` ``"gpt-5" = {input = 1.25, output = 10.0, cached_input = 0.125}``. A model
the table does not name is priced at its vendor's ``default`` row.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import msgspec

from agentproxy.errors import UsageError

PER_TOKENS = 1_000_000


class Price(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    input: float
    output: float
    cached_input: float | None = None  # None: cached input costs what input does


Prices = Mapping[str, Mapping[str, Price]]

DEFAULT_PRICES: Prices = {
    "codex": {
        "default": Price(input=1.25, output=10.0, cached_input=0.125),
        "gpt-5": Price(input=1.25, output=10.0, cached_input=0.125),
        "gpt-5-codex": Price(input=1.25, output=10.0, cached_input=0.125),
        "gpt-5-mini": Price(input=0.25, output=2.0, cached_input=0.025),
        "gpt-4.1": Price(input=2.0, output=8.0, cached_input=0.5),
        "o4-mini": Price(input=1.1, output=4.4, cached_input=0.275),
    },
    "gemini": {
        "default": Price(input=1.25, output=10.0, cached_input=0.31),
        "gemini-2.5-pro": Price(input=1.25, output=10.0, cached_input=0.31),
        "gemini-2.5-flash": Price(input=0.30, output=2.50, cached_input=0.075),
        "gemini-2.5-flash-lite": Price(input=0.10, output=0.40, cached_input=0.025),
    },
}


def load_prices(path: Path | None) -> Prices:
    """The default table with the rows of the TOML file at path over it; UsageError for a bad file."""
    if path is None:
        return DEFAULT_PRICES
    try:
        given = msgspec.toml.decode(path.read_bytes(), type=dict[str, dict[str, Price]])
    except OSError as exc:
        raise UsageError(f"--agent-prices {path}: cannot read it: {exc.strerror or exc}") from exc
    except msgspec.DecodeError as exc:  # not TOML, or rows not shaped like prices
        raise UsageError(f"--agent-prices {path}: {exc}") from exc
    merged = {vendor: dict(rows) for vendor, rows in DEFAULT_PRICES.items()}
    for vendor, rows in given.items():
        merged.setdefault(vendor, {}).update(rows)
    return merged


def price_of(prices: Prices, vendor: str, model: str) -> Price | None:
    rows = prices.get(vendor, {})
    return rows.get(model) or rows.get("default")


def cost_usd(prices: Prices, vendor: str, model: str, input_tokens: int, output_tokens: int, cached: int = 0) -> float:
    """USD for one model's tokens; cached: the part of input_tokens read from the vendor's cache."""
    price = price_of(prices, vendor, model)
    if price is None:
        return 0.0
    cached = min(cached, input_tokens)
    cached_rate = price.input if price.cached_input is None else price.cached_input
    return ((input_tokens - cached) * price.input + cached * cached_rate + output_tokens * price.output) / PER_TOKENS
