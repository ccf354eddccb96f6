"""What a Claude Code agent's turns amount to, read from its stream-json lines, apart from the actor.

The ClaudeWorker owns one ``AgentActivity`` and uses it on its own thread only: it turns the agent's
lines into events, keeps the transcript the agent's questions are asked with, and notices loops. The
texts the host sends the agent between turns are here too.
"""

from __future__ import annotations

import collections
from typing import Any, Literal

from agentproxy.agents import claude_stream as wire
from agentproxy.agents.claude_tools import EDIT_TOOLS
from agentproxy.loops import StuckDetector
from agentproxy.messages import AgentFinished, AgentRetrying, AgentSaid, AgentUsedTool, AnyEvent, Notice, Usage

TRANSCRIPT_LINES = 200
TRANSCRIPT_TAIL_CHARS = 4000
TOOL_DETAIL_CHARS = 200
REFOCUS = (
    "Stop. You are repeating yourself: {loop}. Doing it again will not give a different result. "
    "Step back, say in one sentence why it is not working, then take a different approach to the task."
)
CONTINUE_AFTER_PAUSE = (
    "The API limit that stopped your last turn has passed ({reason}). Continue the task where you left off."
)


class AgentActivity:
    """What the agent said and did in its subtask, and whether it repeats itself.

    An agent caught in a loop is interrupted and refocused the first time, failed the second.
    """

    def __init__(self, stuck_repeats: int) -> None:
        self.transcript: collections.deque[str] = collections.deque(maxlen=TRANSCRIPT_LINES)
        self.detector = StuckDetector(stuck_repeats)
        self.edited = False  # the agent used an edit tool
        self.ran_commands = False
        self.loops_seen = 0
        self.refocus_pending: str | None = None  # the loop an interrupt was sent for; refocus when the turn ends
        self.session_cost_usd = 0.0  # the agent session's running total, as the CLI last reported it
        self.turn_cost_usd = 0.0  # what the last turn cost

    def events_of(self, line: wire.ClaudeLine, subtask_id: str, agent_session_id: str) -> list[AnyEvent]:
        """The events one stdout line records; the session's start is the worker's to tell."""
        match line:
            case wire.SystemLine(subtype="api_retry"):
                return [retrying(subtask_id, line)]
            case wire.AssistantLine(message=message):
                return [event for block in message.content if (event := self.content(subtask_id, block))]
            case wire.ResultLine():
                return [finished(subtask_id, agent_session_id, line, self.cost_of(line))]
            case wire.MalformedLine(error=error):
                return [Notice(level="warning", text=f"unreadable agent output skipped: {error}")]
        return []  # anything else (user echoes, other system lines, lines of a newer CLI) records nothing

    def cost_of(self, result: wire.ResultLine) -> float:
        """What this turn cost: the CLI reports the agent session's running total, kept across --resume."""
        self.turn_cost_usd = max(0.0, result.total_cost_usd - self.session_cost_usd)
        self.session_cost_usd = max(self.session_cost_usd, result.total_cost_usd)
        return self.turn_cost_usd

    def content(self, subtask_id: str, block: wire.ContentBlock) -> AgentSaid | AgentUsedTool | None:
        """The event one content block of an assistant line is, if any."""
        if block.type == "text" and block.text.strip():
            self.transcript.append(block.text)
            return AgentSaid(subtask_id=subtask_id, text=block.text)
        if block.type == "tool_use":
            self.detector.called(block.id, block.name, block.input)
            self.edited = self.edited or block.name in EDIT_TOOLS
            self.ran_commands = self.ran_commands or block.name == "Bash"
            detail = tool_detail(block.input)
            self.transcript.append(f"[{block.name}] {detail}")
            return AgentUsedTool(subtask_id=subtask_id, tool=block.name, detail=detail)
        return None

    def loop_closed_by(self, echo: wire.UserLine) -> str | None:
        """The first loop the echoed tool results complete; every result is recorded."""
        loops = [self.detector.returned(r.tool_use_id, r.content, r.is_error) for r in echo.tool_results()]
        return next((loop for loop in loops if loop), None)

    def on_loop(self, loop: str) -> Literal["refocus", "failed"] | None:
        """What to do about a loop: nothing while a refocus is already on its way."""
        if self.refocus_pending is not None:
            return None
        self.loops_seen += 1
        if self.loops_seen > 1:
            return "failed"
        self.refocus_pending = loop
        return "refocus"

    def refocus_turn(self) -> str | None:
        """The turn that refocuses the interrupted agent, once, with its loop forgotten; None if not due."""
        loop, self.refocus_pending = self.refocus_pending, None
        if loop is None:
            return None
        self.detector.forget()
        return REFOCUS.format(loop=loop)

    def made_changes(self) -> bool | None:
        """Whether the agent changed anything: edits say yes; commands alone may or may not have."""
        if self.edited:
            return True
        return None if self.ran_commands else False

    def tail(self) -> str:
        return "\n".join(self.transcript)[-TRANSCRIPT_TAIL_CHARS:]


def tool_detail(tool_input: dict[str, Any]) -> str:
    """The one argument that says what a tool call is about (its file, command, pattern...)."""
    for key in ("file_path", "command", "path", "pattern", "url", "description"):
        if key in tool_input:
            return str(tool_input[key])[:TOOL_DETAIL_CHARS]
    return ""


def retrying(subtask_id: str, retry: wire.SystemLine) -> AgentRetrying:
    return AgentRetrying(
        subtask_id=subtask_id,
        attempt=retry.attempt,
        error_status=retry.error_status,
        delay_ms=int(retry.retry_delay_ms),
    )


def finished(subtask_id: str, agent_session_id: str, result: wire.ResultLine, cost_usd: float) -> AgentFinished:
    """The event of a turn's result line, with what the turn used."""
    return AgentFinished(
        subtask_id=subtask_id,
        agent_session_id=result.session_id or agent_session_id,
        is_error=result.is_error,
        result=result.result or "",
        usage=Usage(
            input_tokens=result.usage.input_tokens,
            output_tokens=result.usage.output_tokens,
            cost_usd=cost_usd,
        ),
        num_turns=result.num_turns,
        api_error_status=result.api_error_status,
    )


def failure(result: wire.ResultLine) -> str:
    """Why a turn that ended in an error (not a limit) failed."""
    status = f"API error {result.api_error_status}: " if result.api_error_status else ""
    return f"agent failed ({result.subtype or 'error'}): {status}{(result.result or '').strip()[:300]}"
