"""The brain a worker's Verifier reviews with: the supervisor's, asked over the bridge.

The brain's key stays with the supervisor: the worker sends what its checks found and the diff (Judge)
and waits for the verdict (Judged). Should none come in time, the checks alone decide, as offline.
"""

from __future__ import annotations

import concurrent.futures
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from agentproxy.brain import OfflineBrain, ReviewInput
from agentproxy.brain.base import EventSink, Pick, PickInput, Situation, ToolJudgement
from agentproxy.errors import BrainError
from agentproxy.knowledge import Knowledge
from agentproxy.messages import AgentQuestion, Plan, Verdict

JUDGE_TIMEOUT_S = 600.0  # the supervisor's brain retries and falls back itself: this only bounds a lost answer


class RemoteBrain:
    name = "supervisor"

    def __init__(self, ask: Callable[[str, ReviewInput], None]) -> None:
        self.events = EventSink()
        self._ask = ask
        self._waiting: dict[str, concurrent.futures.Future[Verdict]] = {}
        self._lock = threading.Lock()

    def review(self, review: ReviewInput) -> Verdict:
        request = uuid.uuid4().hex
        answer: concurrent.futures.Future[Verdict] = concurrent.futures.Future()
        with self._lock:
            self._waiting[request] = answer
        self._ask(request, review)
        try:
            return answer.result(timeout=JUDGE_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            return OfflineBrain().review(review)
        finally:
            with self._lock:
                self._waiting.pop(request, None)

    def answered(self, request: str, verdict: Verdict) -> None:
        with self._lock:
            answer = self._waiting.get(request)
        if answer is not None and not answer.done():
            answer.set_result(verdict)

    def plan(self, task: str, knowledge: Knowledge) -> Plan:
        raise BrainError("a worker's brain only reviews: planning is the supervisor's")

    def answer(self, questions: Sequence[AgentQuestion], situation: Situation) -> list[str]:
        raise BrainError("a worker's brain only reviews: questions go to the supervisor's Clarifier")

    def judge_tool(self, tool_name: str, tool_input: dict[str, Any], situation: Situation) -> ToolJudgement:
        raise BrainError("a worker's brain only reviews: tool judgements go to the supervisor's Clarifier")

    def pick(self, choice: PickInput) -> Pick:
        raise BrainError("a worker's brain only reviews: the supervisor picks among attempts")
