"""A brain that never strands a running agent: the primary brain's answer, or the offline one's.

A failed call (BrainError, or no answer within ``deadline_s``) is answered by the offline brain
and reported; after ``max_failures`` failures in a row the primary is given up for the rest of
the session, with a visible warning, so that an outage does not cost a timeout per question.
The Planner, Clarifier and Verifier call it from their threads at once: its counters are under a lock,
never held during a call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from agentproxy.brain.base import Brain, EventSink, Pick, PickInput, ReviewInput, Situation, ToolJudgement
from agentproxy.brain.offline import OfflineBrain
from agentproxy.errors import BrainError
from agentproxy.knowledge import Knowledge
from agentproxy.messages import AgentQuestion, BrainFellBack, BrainPurpose, Plan, Verdict

T = TypeVar("T")
MAX_FAILURES = 3
# The longest an actor (and an agent waiting on an answer) waits for one brain call, retries included.
DEADLINE_S = 90.0


class ResilientBrain:
    def __init__(self, primary: Brain, max_failures: int = MAX_FAILURES, deadline_s: float = DEADLINE_S) -> None:
        self.primary = primary
        self.offline = OfflineBrain()
        self.max_failures = max_failures
        self.deadline_s = deadline_s
        self.failures_in_a_row = 0
        self.given_up = False
        self._lock = threading.Lock()  # guards failures_in_a_row and given_up
        self.events: EventSink = primary.events

    @property
    def name(self) -> str:
        with self._lock:
            given_up = self.given_up
        return f"{self.offline.name} ({self.primary.name} unavailable)" if given_up else self.primary.name

    def plan(self, task: str, knowledge: Knowledge) -> Plan:
        return self._either("plan", lambda b: b.plan(task, knowledge))

    def answer(self, questions: Sequence[AgentQuestion], situation: Situation) -> list[str]:
        return self._either("answer", lambda b: b.answer(questions, situation))

    def review(self, review: ReviewInput) -> Verdict:
        return self._either("review", lambda b: b.review(review))

    def judge_tool(self, tool_name: str, tool_input: dict[str, Any], situation: Situation) -> ToolJudgement:
        return self._either("judge", lambda b: b.judge_tool(tool_name, tool_input, situation))

    def pick(self, choice: PickInput) -> Pick:
        return self._either("pick", lambda b: b.pick(choice))

    def _either(self, purpose: BrainPurpose, call: Callable[[Brain], T]) -> T:
        with self._lock:
            given_up = self.given_up
        if given_up:
            return call(self.offline)
        try:
            result = _within(self.deadline_s, lambda: call(self.primary))
        except BrainError as exc:
            failures, gives_up = self._failed()
            reason = str(exc)
            if gives_up:
                reason += f"; {failures} failures in a row: the offline brain decides for the rest of the session"
            self.events(BrainFellBack(purpose=purpose, reason=reason, for_rest_of_session=gives_up))
            return call(self.offline)
        with self._lock:
            self.failures_in_a_row = 0
        return result

    def _failed(self) -> tuple[int, bool]:
        """Count a failure: the failures in a row, and whether this one gives the primary up."""
        with self._lock:
            self.failures_in_a_row += 1
            gives_up = not self.given_up and self.failures_in_a_row >= self.max_failures
            self.given_up = self.given_up or gives_up
            return self.failures_in_a_row, gives_up


def _within(deadline_s: float, call: Callable[[], T]) -> T:
    """call() on a daemon thread; BrainError if it has not returned by the deadline.

    A late call is abandoned, not joined: it ends by its own HTTP timeout and cannot hold up pa's exit.
    """
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the waiting thread, which raises it
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="brain-call", daemon=True).start()
    if not done.wait(deadline_s):
        raise BrainError(f"no answer within {deadline_s:g}s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
