"""The brain: what the Planner, Clarifier and Verifier ask when they need judgement.

Implementations: ``OfflineBrain`` (rules, no network; the default without GEMINI_API_KEY).
Every method is called on the calling actor's thread and may block for a network round trip;
a brain that cannot answer raises ``BrainError`` and the caller falls back to the offline brain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from agentproxy.messages import AgentQuestion, CheckResult, Plan, Subtask, Verdict


@dataclass(frozen=True)
class Situation:
    """What the brain knows when an agent asks something."""

    task: str
    subtask: Subtask | None = None
    context: str = ""
    transcript_tail: str = ""


@dataclass(frozen=True)
class ReviewInput:
    task: str
    subtask: Subtask
    checks: list[CheckResult]
    agent_summary: str = ""
    diff: str = ""
    context: str = ""


@dataclass(frozen=True)
class ToolJudgement:
    allow: bool
    reason: str


class Brain(Protocol):
    name: str

    def plan(self, task: str, context: str) -> Plan: ...

    def answer(self, question: AgentQuestion, situation: Situation) -> str: ...

    def review(self, review: ReviewInput) -> Verdict: ...

    def judge_tool(self, tool_name: str, tool_input: dict[str, Any], situation: Situation) -> ToolJudgement: ...


__all__ = ["Brain", "ReviewInput", "Situation", "ToolJudgement"]
