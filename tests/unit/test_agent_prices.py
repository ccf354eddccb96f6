"""The one ledger's prices: the built-in table, a user's overrides, and each turn's own tokens and cost."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentproxy.agents.backend import TurnEnded
from agentproxy.agents.codex import CODEX
from agentproxy.agents.gemini_cli import GEMINI_CLI
from agentproxy.agents.prices import DEFAULT_PRICES, Price, cost_usd, load_prices
from agentproxy.agents.session_costs import SessionCosts
from agentproxy.errors import UsageError


def test_a_known_model_is_priced_by_its_row_and_an_unknown_one_by_its_vendors_default() -> None:
    assert cost_usd(DEFAULT_PRICES, "codex", "gpt-5-mini", 1_000_000, 1_000_000) == pytest.approx(0.25 + 2.0)
    assert cost_usd(DEFAULT_PRICES, "codex", "gpt-99", 1_000_000, 0) == pytest.approx(1.25)
    assert cost_usd(DEFAULT_PRICES, "nobody", "x", 1_000_000, 1_000_000) == 0.0


def test_cached_input_costs_its_own_rate_and_never_more_than_the_input() -> None:
    price = DEFAULT_PRICES["codex"]["gpt-5"]
    assert price.cached_input is not None
    paid = cost_usd(DEFAULT_PRICES, "codex", "gpt-5", 1_000_000, 0, cached=400_000)
    assert paid == pytest.approx(0.6 * price.input + 0.4 * price.cached_input)
    assert cost_usd(DEFAULT_PRICES, "codex", "gpt-5", 10, 0, cached=50) == pytest.approx(10 * price.cached_input / 1e6)


def test_a_price_file_overrides_and_adds_rows_over_the_table(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text('[codex]\n"gpt-5" = {input = 2.0, output = 4.0}\n[opencode]\ndefault = {input = 1, output = 1}\n')
    prices = load_prices(path)
    assert prices["codex"]["gpt-5"] == Price(input=2.0, output=4.0)
    assert prices["codex"]["gpt-5-mini"] == DEFAULT_PRICES["codex"]["gpt-5-mini"]
    assert prices["opencode"]["default"] == Price(input=1, output=1)
    assert DEFAULT_PRICES["codex"]["gpt-5"].input == 1.25, "the built-in table is not changed"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[codex", "Expected .]. at the end of a table"),
        ('[codex]\n"m" = {input = 1}', "missing required field `output`"),
        ("x = 1", "Expected"),
    ],
)
def test_a_bad_price_file_is_a_usage_error_naming_it(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=needle) as raised:
        load_prices(path)
    assert str(path) in str(raised.value)


def test_a_cumulative_backend_is_charged_each_turns_own_tokens_and_a_new_session_starts_from_zero() -> None:
    costs = SessionCosts(CODEX, DEFAULT_PRICES)
    first, first_cost = costs.turn(TurnEnded(ok=True, input_tokens=1000, output_tokens=100), "gpt-5")
    second, second_cost = costs.turn(TurnEnded(ok=True, input_tokens=2500, output_tokens=150), "gpt-5")
    assert (first.input_tokens, second.input_tokens, second.output_tokens) == (1000, 1500, 50)
    assert costs.total_usd == pytest.approx(first_cost + second_cost)
    costs.new_session()
    again, _ = costs.turn(TurnEnded(ok=True, input_tokens=300, output_tokens=10), "gpt-5")
    assert again.input_tokens == 300 and costs.total_usd < first_cost


def test_a_per_turn_backend_is_priced_per_model_as_its_cli_reports_them() -> None:
    costs = SessionCosts(GEMINI_CLI, DEFAULT_PRICES)
    models = {"gemini-2.5-flash": (1_000_000, 0), "gemini-2.5-pro": (0, 1_000_000)}
    ended, cost = costs.turn(TurnEnded(ok=True, input_tokens=1_000_000, output_tokens=1_000_000, models=models), "")
    assert ended.input_tokens == 1_000_000 and cost == pytest.approx(0.30 + 10.0)
