"""The run's budget: what agents and brain spent together, a warning at 80%, a stop at 100%."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

WARN_AT = 0.8

Standing = Literal["within", "warn", "over"]


@dataclass
class Budget:
    limit_usd: float | None  # None: no budget
    spent_usd: float = 0.0
    warned: bool = False
    over: bool = False

    def spend(self, usd: float) -> Standing:
        """Count usd; "warn" the first time 80% is passed, "over" the first time the limit is reached."""
        self.spent_usd += usd
        if self.limit_usd is None:
            return "within"
        if not self.over and self.spent_usd >= self.limit_usd:
            self.over = self.warned = True
            return "over"
        if not self.warned and self.spent_usd >= WARN_AT * self.limit_usd:
            self.warned = True
            return "warn"
        return "within"

    def describe(self) -> str:
        return f"${self.spent_usd:.4f} of the ${self.limit_usd:.2f} budget (--max-budget-usd)"
