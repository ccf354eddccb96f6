"""A local, per-test scripted fake of the Anthropic Messages API for the real Claude Code CLI.

Point the CLI at ``FakeAnthropic().url`` through ANTHROPIC_BASE_URL (see ``claude_env``). Each
main-loop ``POST /v1/messages`` consumes the next scripted reply; the CLI's side requests (title,
summary, quota probes) get a canned text and never touch the script, so a test's script reads like
the conversation it expects. Streaming replies are SSE shaped exactly like the real API's.

    with FakeAnthropic(ToolUse("Write", lambda r: {"file_path": f"{r.cwd}/a.txt", "content": "x"}),
                       Text("written")) as api:
        run claude with ANTHROPIC_BASE_URL=api.url ...
        assert api.requests[1].tool_results

Several CLIs at once each follow their own script: a conversation is picked by a key found in the
request's first user message (every request carries the whole history, so follow-ups and resumed
sessions stay in it); requests no key matches take the positional script. Replies run in parallel:
``Delay`` holds one back without holding up the others, and the recorded times show the overlap.

    with FakeAnthropic(conversations={"alpha": [write_file("a.txt", "a"), Delay(2, Text("done"))],
                                      "beta": [Text("beta done")]}) as api:
        run `claude -p "alpha: ..."` and `claude -p "beta: ..."` at once ...
        assert api.turns("alpha")[1].overlaps(api.turns("beta")[0])
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from agentproxy.testing.scripted_server import POSITIONAL, Delay, Hang, ScriptedServer, waited_out

_CWD_MARKER = "Primary working directory:"
SIDE_REPLY_TEXT = "Fake session"


@dataclass(frozen=True)
class CapturedRequest:
    """One request the fake received, with the fields tests usually assert on already parsed."""

    path: str
    body: dict[str, Any]
    side: bool = False
    conversation: str = POSITIONAL  # the key whose script answered it; "" for the positional script
    received_at: float = 0.0  # time.monotonic() when it arrived
    # time.monotonic() once the reply's last byte is written; None while pending (or never: Hang).
    answered_at: float | None = field(default=None, compare=False)

    @property
    def cwd(self) -> str:
        """The CLI's working directory: it only travels in the prompt's environment section."""
        for text in _prompt_texts(self.body):
            for line in text.splitlines():
                if _CWD_MARKER in line:
                    return line.split(_CWD_MARKER, 1)[1].strip()
        return ""

    @property
    def last_user_text(self) -> str:
        """What the user said last, without the CLI's injected <system-reminder> blocks."""
        return _spoken_text(_user_turns(self.body)[-1:])

    @property
    def first_user_text(self) -> str:
        """What the user said first (the task): the same for every request of one CLI session."""
        return _spoken_text(_user_turns(self.body)[:1])

    @property
    def tool_results(self) -> list[dict[str, Any]]:
        return [block for turn in _user_turns(self.body)[-1:] for block in turn if block.get("type") == "tool_result"]

    @property
    def tools(self) -> list[str]:
        return [tool.get("name", "") for tool in self.body.get("tools") or []]

    @property
    def system_text(self) -> str:
        return "\n".join(_texts(self.body.get("system")))

    def overlaps(self, other: CapturedRequest) -> bool:
        """Both were in flight at once: each arrived before the other's reply was out."""
        if self.answered_at is None or other.answered_at is None:
            return False
        return self.received_at < other.answered_at and other.received_at < self.answered_at


def _user_turns(body: Mapping[str, Any]) -> list[list[dict[str, Any]]]:
    """The content blocks of each user message; `messages` may also hold {"role": "system"} entries."""
    turns = []
    for message in body.get("messages") or []:
        if message.get("role") == "user":
            content = message.get("content")
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
            turns.append([block for block in blocks if isinstance(block, dict)])
    return turns


def _spoken_text(turns: list[list[dict[str, Any]]]) -> str:
    """The text blocks of ``turns`` without the CLI's injected <system-reminder> blocks."""
    return "\n".join(
        block.get("text", "")
        for turn in turns
        for block in turn
        if block.get("type") == "text" and not block.get("text", "").startswith("<system-reminder>")
    )


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [block.get("text", "") for block in content or [] if isinstance(block, dict)]


def _prompt_texts(body: Mapping[str, Any]) -> list[str]:
    """Where the environment section can be: 2.1.330 puts it in a {"role": "system"} message
    (Opus default) or a <system-reminder> of the first user message (--model sonnet), not ``system``."""
    texts = _texts(body.get("system"))
    for message in body.get("messages") or []:
        texts += _texts(message.get("content"))
    return texts


@dataclass(frozen=True)
class ToolUse:
    """A tool call; ``input`` may be computed from the request (e.g. a path inside its cwd)."""

    name: str
    input: Mapping[str, Any] | Callable[[CapturedRequest], Mapping[str, Any]]
    text: str = ""


def write_file(name: str, content: str) -> ToolUse:
    """The model writing ``name`` (relative) in the CLI's working directory."""
    return ToolUse("Write", lambda request: {"file_path": f"{request.cwd}/{name}", "content": content})


@dataclass(frozen=True)
class Turn:
    """One assistant message: optional text, then any number of tool calls."""

    text: str = ""
    tool_uses: tuple[ToolUse, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "tool_uses", tuple(self.tool_uses))


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Error:
    """An HTTP error with the real API's JSON body ({"type": "error", "error": {...}})."""

    status: int
    error_type: str = "api_error"
    message: str = "Internal server error"


Reply = Text | ToolUse | Turn | Error | Hang | Delay | Callable[[CapturedRequest], "Reply"]


def is_side_request(body: Mapping[str, Any]) -> bool:
    # Rule (2.1.330): main-loop and subagent calls always declare tools; side calls don't
    # (session title: `tools: []`, same model; quota_check / model_validation: max_tokens 1, no `tools`).
    return not body.get("tools")


class FakeAnthropic(ScriptedServer[CapturedRequest, Reply]):
    """The fake server; a context manager that serves on 127.0.0.1 with a random port.

    ``requests`` holds the main-loop calls (each consumed one scripted reply), ``side_requests``
    the CLI's side calls (answered with SIDE_REPLY_TEXT), so counts in tests stay deterministic.
    ``conversations`` maps a key to its own script: a main-loop request whose first user text
    contains the key (the first key that does, in the order given) takes its replies from it, and
    ``default`` once it runs out; the positional ``replies`` answer requests no key matches.
    """

    def __init__(
        self,
        *replies: Reply,
        default: Reply | None = None,
        conversations: Mapping[str, Iterable[Reply]] | None = None,
    ) -> None:
        super().__init__(replies, default or Text("done"), _handler_for(self), "fake-anthropic", conversations)
        self.side_requests: list[CapturedRequest] = []

    def describe(self, request: CapturedRequest) -> str:
        text = request.last_user_text[:60]
        return f"{request.conversation}: {text}" if request.conversation else text

    def turns(self, conversation: str) -> list[CapturedRequest]:
        """The main-loop requests of one conversation, in arrival order."""
        with self._cond:
            return [request for request in self.requests if request.conversation == conversation]

    def _take(self, path: str, body: dict[str, Any]) -> tuple[CapturedRequest, Reply]:
        conversation = self.conversation_of(_spoken_text(_user_turns(body)[:1]))
        request = CapturedRequest(path, body, is_side_request(body), conversation, received_at=time.monotonic())
        if request.side:
            self.record(request, scripted=False, into=self.side_requests)
            return request, Text(SIDE_REPLY_TEXT)
        reply = self.record(request, conversation=conversation)
        assert reply is not None
        return request, reply

    def _answered(self, request: CapturedRequest) -> None:
        with self._cond:
            # The one field set after recording: requests stay frozen for the tests that read them.
            object.__setattr__(request, "answered_at", time.monotonic())
            self._cond.notify_all()


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def _as_turn(reply: Text | ToolUse | Turn) -> Turn:
    if isinstance(reply, Text):
        return Turn(text=reply.text)
    if isinstance(reply, ToolUse):
        return Turn(text=reply.text, tool_uses=(reply,))
    return reply


def _content_blocks(turn: Turn, request: CapturedRequest) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if turn.text or not turn.tool_uses:
        blocks.append({"type": "text", "text": turn.text})
    for use in turn.tool_uses:
        tool_input = use.input(request) if callable(use.input) else use.input
        blocks.append({"type": "tool_use", "id": _new_id("toolu_"), "name": use.name, "input": dict(tool_input)})
    return blocks


def _usage(request: CapturedRequest, output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": max(1, len(json.dumps(request.body)) // 4),
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def _message(request: CapturedRequest, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    output_tokens = max(1, len(json.dumps(blocks)) // 4)
    return {
        "id": _new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": request.body.get("model", "claude-fake"),
        "content": blocks,
        "stop_reason": "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn",
        "stop_sequence": None,
        "usage": _usage(request, output_tokens),
    }


def _halves(text: str) -> list[str]:
    """Split a delta in two so clients must really concatenate partial chunks."""
    cut = len(text) // 2
    return [part for part in (text[:cut], text[cut:]) if part] or [""]


def _sse_events(message: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    start = {**message, "content": [], "stop_reason": None, "usage": {**message["usage"], "output_tokens": 1}}
    yield "message_start", {"type": "message_start", "message": start}
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            opening: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": part} for part in _halves(block["text"])]
        else:
            opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            deltas = [
                {"type": "input_json_delta", "partial_json": part} for part in _halves(json.dumps(block["input"]))
            ]
        yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": opening}
        for delta in deltas:
            yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": message["usage"]["output_tokens"]},
        },
    )
    yield "message_stop", {"type": "message_stop"}


def _handler_for(fake: FakeAnthropic) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: pytest output is for assertions, not access logs."""

        def do_HEAD(self) -> None:
            self._send_json(200, {}, with_body=False)

        def do_GET(self) -> None:
            self._send_json(200, {})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw or b"{}")
            path = self.path.split("?", 1)[0]
            if path == "/v1/messages/count_tokens":
                self._send_json(200, {"input_tokens": max(1, len(raw) // 4)})
            elif path == "/v1/messages":
                self._answer(*fake._take(self.path, body))
            else:
                self._send_json(200, {})

        def _answer(self, request: CapturedRequest, reply: Reply) -> None:
            reply = waited_out(reply, request, fake.closing)
            if reply is None:
                self.close_connection = True
                return
            self._send_reply(request, reply)
            fake._answered(request)

        def _send_reply(self, request: CapturedRequest, reply: Reply) -> None:
            if isinstance(reply, Error):
                error = {"type": "error", "error": {"type": reply.error_type, "message": reply.message}}
                self._send_json(reply.status, error)
                return
            assert isinstance(reply, (Text, ToolUse, Turn)), f"not a reply: {reply!r}"
            message = _message(request, _content_blocks(_as_turn(reply), request))
            if request.body.get("stream"):
                self._send_sse(message)
            else:
                self._send_json(200, message)

        def _send_json(self, status: int, payload: Mapping[str, Any], with_body: bool = True) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("request-id", _new_id("req_"))
            self.end_headers()
            if with_body:
                self.wfile.write(data)

        def _send_sse(self, message: dict[str, Any]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("request-id", _new_id("req_"))
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            for event, data in _sse_events(message):
                self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()

    return Handler
