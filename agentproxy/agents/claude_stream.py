"""Claude Code's stream-json wire format: the lines its stdout prints and the lines the host writes.

Only the fields agentproxy uses are declared; msgspec ignores the rest, so newer CLI versions
that add fields still parse. A line of an unknown ``type`` parses to ``UnknownLine``; a line that
is not JSON at all parses to ``MalformedLine`` carrying the decoder's message (with its ``$.path``).
"""

from __future__ import annotations

from typing import Any

import msgspec


class _Line(msgspec.Struct, tag_field="type", frozen=True):
    """Base of the stdout lines of the CLI, told apart by their "type".

    Subclasses repeat ``frozen=True``: type checkers (PEP 681) do not inherit it as msgspec does.
    """


class SystemLine(_Line, tag="system", frozen=True):
    subtype: str = ""
    session_id: str = ""
    model: str = ""
    cwd: str = ""
    permissionMode: str = ""
    # api_retry
    attempt: int = 0
    retry_delay_ms: float = 0
    error_status: int | None = None
    error: str = ""
    # session_state_changed
    state: str = ""


class ContentBlock(msgspec.Struct, frozen=True):
    type: str
    text: str = ""
    thinking: str = ""
    id: str = ""
    name: str = ""
    input: dict[str, Any] = {}


class AssistantMessage(msgspec.Struct, frozen=True):
    id: str = ""
    model: str = ""
    content: list[ContentBlock] = []


class AssistantLine(_Line, tag="assistant", frozen=True):
    message: AssistantMessage
    session_id: str = ""
    is_api_error_message: bool = False


class UserContentBlock(msgspec.Struct, frozen=True):
    type: str = ""
    tool_use_id: str = ""
    content: Any = None  # a string, or a list of blocks
    is_error: bool = False


class UserMessage(msgspec.Struct, frozen=True):
    content: str | list[UserContentBlock] = ""


class UserLine(_Line, tag="user", frozen=True):
    """What the CLI echoes of the user's side: tool results, and notes such as an interruption."""

    message: UserMessage = UserMessage()
    session_id: str = ""

    def tool_results(self) -> list[UserContentBlock]:
        content = self.message.content
        return [] if isinstance(content, str) else [block for block in content if block.type == "tool_result"]


class ResultUsage(msgspec.Struct, frozen=True):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0


class ResultLine(_Line, tag="result", frozen=True):
    subtype: str = ""
    is_error: bool = False
    result: str | None = ""  # null when the turn was interrupted
    session_id: str = ""
    num_turns: int = 0
    total_cost_usd: float = 0.0
    usage: ResultUsage = ResultUsage()
    api_error_status: int | None = None
    api_error_type: str = ""
    terminal_reason: str = ""
    duration_ms: int = 0


class ControlRequestBody(msgspec.Struct, frozen=True):
    subtype: str
    tool_name: str = ""
    input: dict[str, Any] = {}
    tool_use_id: str = ""


class ControlRequestLine(_Line, tag="control_request", frozen=True):
    request_id: str
    request: ControlRequestBody


class ControlResponseLine(_Line, tag="control_response", frozen=True):
    response: dict[str, Any] = {}


class RateLimitInfo(msgspec.Struct, frozen=True):
    status: str = ""
    resetsAt: int | None = None


class RateLimitLine(_Line, tag="rate_limit_event", frozen=True):
    rate_limit_info: RateLimitInfo = RateLimitInfo()


class UnknownLine(msgspec.Struct, frozen=True):
    type: str


class MalformedLine(msgspec.Struct, frozen=True):
    raw: str
    error: str


KnownLine = (
    SystemLine | AssistantLine | UserLine | ResultLine | ControlRequestLine | ControlResponseLine | RateLimitLine
)
ClaudeLine = KnownLine | UnknownLine | MalformedLine

_known_decoder = msgspec.json.Decoder(KnownLine)
_type_only_decoder = msgspec.json.Decoder(UnknownLine)
_encoder = msgspec.json.Encoder()


def parse_line(line: str | bytes) -> ClaudeLine:
    """Parse one stdout line; never raises."""
    try:
        return _known_decoder.decode(line)
    except msgspec.ValidationError as known_error:
        try:
            # A well-formed line of a type this version doesn't know about is fine to skip.
            unknown = _type_only_decoder.decode(line)
        except msgspec.DecodeError:
            return MalformedLine(raw=_text(line)[:500], error=str(known_error))
        if unknown.type in _KNOWN_TYPES:
            return MalformedLine(raw=_text(line)[:500], error=str(known_error))
        return unknown
    except msgspec.DecodeError as exc:
        return MalformedLine(raw=_text(line)[:500], error=str(exc))


_KNOWN_TYPES = frozenset(
    {"system", "assistant", "user", "result", "control_request", "control_response", "rate_limit_event"}
)


def _text(line: str | bytes) -> str:
    return line.decode("utf-8", "replace") if isinstance(line, bytes) else line


# ---------------------------------------------------------------------------------------------
# Lines the host writes to the CLI's stdin.


def user_turn(text: str) -> bytes:
    return _encoder.encode({"type": "user", "message": {"role": "user", "content": text}}) + b"\n"


def allow(request_id: str, updated_input: dict[str, Any]) -> bytes:
    return _control_response(request_id, {"behavior": "allow", "updatedInput": updated_input})


def deny(request_id: str, message: str) -> bytes:
    return _control_response(request_id, {"behavior": "deny", "message": message, "interrupt": False})


def interrupt(request_id: str) -> bytes:
    """Ask the CLI to stop the turn now; it ends the turn with an error_during_execution result."""
    return (
        _encoder.encode({"type": "control_request", "request_id": request_id, "request": {"subtype": "interrupt"}})
        + b"\n"
    )


def control_error(request_id: str, message: str) -> bytes:
    body = {"type": "control_response", "response": {"subtype": "error", "request_id": request_id, "error": message}}
    return _encoder.encode(body) + b"\n"


def _control_response(request_id: str, response: dict[str, Any]) -> bytes:
    body = {
        "type": "control_response",
        "response": {"subtype": "success", "request_id": request_id, "response": response},
    }
    return _encoder.encode(body) + b"\n"
