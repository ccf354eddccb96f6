"""What each turn of one agent session costs, for the backends that report tokens rather than money."""

from __future__ import annotations

import msgspec

from agentproxy.agents.backend import ExecBackend, TurnEnded
from agentproxy.agents.prices import Prices, cost_usd


class SessionCosts:
    """The running total of one agent session, and each turn's own tokens and cost."""

    def __init__(self, backend: ExecBackend, prices: Prices) -> None:
        self.backend = backend
        self.prices = prices
        self.total_usd = 0.0
        self.reported = (0, 0, 0)  # input, output, cached: the session's totals a cumulative backend last said

    def new_session(self) -> None:
        self.total_usd, self.reported = 0.0, (0, 0, 0)

    def turn(self, ended: TurnEnded, model: str) -> tuple[TurnEnded, float]:
        """The turn with its own tokens, and what they cost (added to the session's total)."""
        ended = self.own_tokens(ended)
        models = ended.models or {model: (ended.input_tokens, ended.output_tokens)}
        cached_share = ended.cached_tokens / ended.input_tokens if ended.input_tokens else 0.0
        cost = sum(
            cost_usd(self.prices, self.backend.name, name, tokens_in, tokens_out, int(tokens_in * cached_share))
            for name, (tokens_in, tokens_out) in models.items()
        )
        self.total_usd += cost
        return ended, cost

    def own_tokens(self, ended: TurnEnded) -> TurnEnded:
        """Where the backend reports the session's totals so far, the difference is the turn's."""
        if not self.backend.cumulative_usage or not ended.input_tokens:
            return ended
        before, self.reported = self.reported, (ended.input_tokens, ended.output_tokens, ended.cached_tokens)
        used = [max(0, now - then) for now, then in zip(self.reported, before, strict=True)]
        return msgspec.structs.replace(ended, input_tokens=used[0], output_tokens=used[1], cached_tokens=used[2])
