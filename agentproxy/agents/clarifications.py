"""An agent's tool approvals and questions, and what the Clarifier's replies to them become.

A tool call the ApprovalPolicy decides is answered at once; one it cannot decide goes to the
Clarifier as JudgeTool. A question (AskUserQuestion, or a final answer that is really a question)
goes to the Clarifier as Ask; its answer goes back in-band, as the tool's result or as the next
turn. ``Clarifications`` keeps what awaits the Clarifier and says what to do next as ``Steps``: the
ClaudeWorker that owns it carries them out on its own thread (records, tells, writes to the agent).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from agentproxy.agents import claude_stream as wire
from agentproxy.agents.claude_tools import is_question_tool
from agentproxy.agents.claude_turns import AgentActivity
from agentproxy.messages import (
    AgentQuestion,
    Answer,
    AnyEvent,
    Ask,
    JudgeTool,
    Option,
    QuestionAsked,
    ToolDecided,
    ToolVerdict,
)
from agentproxy.options import RunOptions

if TYPE_CHECKING:
    from agentproxy.policy import Decision

FINAL_QUESTION_PREFIX = "final-question:"
ANSWERS = "Answers to your question:\n{answers}\n\nGo ahead and finish the task."

PendingRequest = Ask | JudgeTool


@dataclass(frozen=True)
class Steps:
    """What the worker does next, in this order; nothing at all for a late reply."""

    events: tuple[AnyEvent, ...] = ()  # to record
    to_clarifier: PendingRequest | None = None
    to_agent: bytes | None = None  # a line for the agent's stdin
    turn: str | None = None  # the agent's next turn


@dataclass(frozen=True)
class OpenRequest:
    request: PendingRequest
    tool_input: dict[str, Any] | None  # the tool's input to answer with; None for a final answer's question


class Clarifications:
    """The agent's questions and tool calls awaiting the Clarifier, by request id."""

    def __init__(self, worker: str, options: RunOptions, activity: AgentActivity) -> None:
        self.worker = worker
        self.options = options
        self.activity = activity  # what the agent did: the context of its questions
        self.final_questions = 0
        self._open: dict[str, OpenRequest] = {}

    def __bool__(self) -> bool:
        return bool(self._open)

    def requests(self) -> list[PendingRequest]:
        return [open_request.request for open_request in self._open.values()]

    def clear(self) -> None:
        self._open.clear()

    def control_request(self, line: wire.ControlRequestLine, subtask_id: str, task: str, cwd: Path) -> Steps:
        """A tool call the agent asks permission for: decided now, or put to the Clarifier."""
        request, request_id = line.request, line.request_id
        if request.subtype != "can_use_tool":
            return Steps(to_agent=wire.control_error(request_id, f"unsupported control request {request.subtype!r}"))
        if is_question_tool(request.tool_name):
            return self._ask(request_id, subtask_id, task, questions_from_tool(request.input), request.input)
        decision = tool_decision(cwd, self.options, request.tool_name, request.input)
        if decision.verdict != "ask":
            allow = decision.verdict == "allow"
            return _decided(request_id, subtask_id, request.tool_name, request.input, allow, decision.reason)
        judge = JudgeTool(
            worker=self.worker,
            subtask_id=subtask_id,
            request_id=request_id,
            tool_name=request.tool_name,
            tool_input=request.input,
            task=task,
        )
        self._open[request_id] = OpenRequest(judge, request.input)
        return Steps(to_clarifier=judge)

    def final_answer(self, text: str, subtask_id: str, task: str) -> Steps | None:
        """The Clarifier is asked when a final answer is really a question, a bounded number of times."""
        if self.final_questions >= self.options.max_question_follow_ups:
            return None
        question = question_in(text, self.activity.made_changes())
        if question is None:
            return None
        self.final_questions += 1
        return self._ask(f"{FINAL_QUESTION_PREFIX}{self.final_questions}", subtask_id, task, [question], None)

    def answered(self, answer: Answer) -> Steps:
        asked = self._open.pop(answer.request_id, None)
        if asked is None:
            return Steps()  # a late answer to a question of a turn that already ended
        if asked.tool_input is None:  # a final answer's question: the answers are the next turn
            replies = "\n".join(f"{question}\n-> {reply}" for question, reply in answer.answers.items())
            return Steps(turn=ANSWERS.format(answers=replies))
        return Steps(to_agent=wire.allow(answer.request_id, {**asked.tool_input, "answers": answer.answers}))

    def judged(self, verdict: ToolVerdict) -> Steps:
        judged = self._open.pop(verdict.request_id, None)
        if judged is None or not isinstance(judged.request, JudgeTool):
            return Steps()
        judge = judged.request
        return _decided(
            verdict.request_id, judge.subtask_id, judge.tool_name, judge.tool_input, verdict.allow, verdict.reason
        )

    def _ask(
        self,
        request_id: str,
        subtask_id: str,
        task: str,
        questions: list[AgentQuestion],
        tool_input: dict[str, Any] | None,
    ) -> Steps:
        ask = Ask(
            worker=self.worker,
            subtask_id=subtask_id,
            request_id=request_id,
            questions=questions,
            task=task,
            transcript_tail=self.activity.tail(),
        )
        self._open[request_id] = OpenRequest(ask, tool_input)
        via: Literal["tool", "final_text"] = "tool" if tool_input is not None else "final_text"
        return Steps(events=(QuestionAsked(subtask_id=subtask_id, questions=questions, via=via),), to_clarifier=ask)


def _decided(
    request_id: str, subtask_id: str, tool: str, tool_input: dict[str, Any], allow: bool, reason: str
) -> Steps:
    return Steps(
        events=(ToolDecided(subtask_id=subtask_id, tool=tool, allowed=allow, reason=reason),),
        to_agent=wire.allow(request_id, tool_input) if allow else wire.deny(request_id, reason),
    )


def questions_from_tool(tool_input: dict[str, Any]) -> list[AgentQuestion]:
    """The questions of an AskUserQuestion call."""
    questions = []
    for raw in tool_input.get("questions") or []:
        options = [
            Option(label=str(o.get("label", "")), description=str(o.get("description", "")))
            for o in raw.get("options") or []
            if isinstance(o, dict)
        ]
        questions.append(
            AgentQuestion(
                question=str(raw.get("question", "")),
                header=str(raw.get("header", "")),
                options=options,
                multi_select=bool(raw.get("multiSelect", False)),
            )
        )
    return questions


def tool_decision(cwd: Path, options: RunOptions, tool_name: str, tool_input: dict[str, Any]) -> Decision:
    """The ApprovalPolicy's verdict on a tool call: allow, deny, or ask the Clarifier."""
    from agentproxy.policy import ApprovalPolicy  # lazy: see warm_up

    return ApprovalPolicy(cwd, options.deny_patterns, allow_tools=options.allow_tools).decide(tool_name, tool_input)


def question_in(text: str, made_changes: bool | None) -> AgentQuestion | None:
    """The question a final answer really is, or None when it reports the work done."""
    from agentproxy.questions import looks_like_question, question_from_text  # lazy: see warm_up

    return question_from_text(text) if looks_like_question(text, made_changes=made_changes) else None


@functools.cache
def warm_up() -> None:
    """Once per process, while the first agent starts: load what its first tool call and final answer
    need (the policy's and the question detector's regexes, bashlex's parser tables: ~0.3 s)."""

    def load() -> None:
        from agentproxy import policy, questions, shell  # noqa: F401 - imported for their side effect

        shell.load_bashlex()

    threading.Thread(target=load, name="warm-up", daemon=True).start()
