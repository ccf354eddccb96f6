"""The brain: what the Planner, Clarifier and Verifier ask when they need judgement.

Implementations: ``OfflineBrain`` (rules, no network; the default without GEMINI_API_KEY) and
``GeminiBrain`` (google-genai), which runs inside a ``ResilientBrain`` that falls back to the
offline brain, so a Gemini outage never strands a running agent. Every method is called on the
calling actor's thread and may block for a network round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentproxy.knowledge import Knowledge
from agentproxy.messages import AgentQuestion, AnyEvent, CheckResult, CheckVerdict, Plan, Subtask, Verdict


@dataclass(frozen=True)
class Situation:
    """What the brain knows when an agent asks something."""

    task: str
    knowledge: Knowledge = field(default_factory=Knowledge)
    subtask: Subtask | None = None
    transcript_tail: str = ""  # the agent's recent output, newest last
    working_dir: str = ""  # where the agent works: paths inside it are the project's


@dataclass(frozen=True)
class ReviewInput:
    task: str
    subtask: Subtask
    checks: list[CheckResult]  # those that count: passed, or failed by the change
    verdicts: list[CheckVerdict] = field(default_factory=list)  # every check against the base, pre-existing too
    agent_summary: str = ""
    diff: str = ""
    knowledge: Knowledge = field(default_factory=Knowledge)


@dataclass(frozen=True)
class Attempt:
    """One attempt at a subtask that passed verification, as the brain compares it with the others."""

    attempt_id: str
    agent: str
    summary: str = ""
    diff: str = ""
    diff_lines: int = 0  # lines added and removed


@dataclass(frozen=True)
class PickInput:
    task: str
    subtask: Subtask
    attempts: list[Attempt]  # in the order they passed
    knowledge: Knowledge = field(default_factory=Knowledge)


@dataclass(frozen=True)
class Pick:
    attempt_id: str
    reason: str


@dataclass(frozen=True)
class ToolJudgement:
    allow: bool
    reason: str


class EventSink:
    """Where a brain reports its calls and fallbacks; run_task connects it to the ContextKeeper."""

    def __init__(self) -> None:
        self._target: Callable[[AnyEvent], None] | None = None

    def connect(self, target: Callable[[AnyEvent], None] | None) -> None:
        self._target = target

    def __call__(self, event: AnyEvent) -> None:
        if self._target is not None:
            self._target(event)


class Brain(Protocol):
    events: EventSink

    @property
    def name(self) -> str: ...

    def plan(self, task: str, knowledge: Knowledge) -> Plan: ...

    def answer(self, questions: Sequence[AgentQuestion], situation: Situation) -> list[str]:
        """One answer per question, in order."""
        ...

    def review(self, review: ReviewInput) -> Verdict: ...

    def judge_tool(self, tool_name: str, tool_input: dict[str, Any], situation: Situation) -> ToolJudgement: ...

    def pick(self, choice: PickInput) -> Pick:
        """Which of several verified attempts at one subtask lands, and why."""
        ...


__all__ = ["Brain", "EventSink", "ReviewInput", "Situation", "ToolJudgement"]
