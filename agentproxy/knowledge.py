"""What the brain knows about the running session, kept by the ContextKeeper and read by the
Planner, Clarifier and Verifier at each call.

One writer (the ContextKeeper's thread); readers get an immutable snapshot, swapped whole, so no
reader ever sees half an update.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from agentproxy.context import EMPTY, ProjectContext
from agentproxy.messages import Plan

# Earlier questions and answers kept for the brain; the newest win.
MAX_EXCHANGES = 20


@dataclass(frozen=True)
class Knowledge:
    project: ProjectContext = EMPTY
    plan: Plan | None = None
    exchanges: tuple[str, ...] = ()  # "Q: … / A: …", oldest first
    agents: tuple[str, ...] = ("claude",)  # the agent backends subtasks may go to (--agents)


class KnowledgeBoard:
    def __init__(self) -> None:
        self._now = Knowledge()

    def read(self) -> Knowledge:
        return self._now

    def update(self, **changes: Any) -> None:
        self._now = replace(self._now, **changes)

    def add_exchange(self, question: str, answer: str) -> None:
        exchanges = (*self._now.exchanges, f"Q: {question}\nA: {answer}")[-MAX_EXCHANGES:]
        self.update(exchanges=exchanges)
