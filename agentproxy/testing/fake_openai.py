"""A local, per-test scripted fake of the OpenAI Responses API for the real Codex CLI.

Point codex at ``FakeOpenAI().base_url`` through its config.toml (see ``codex_env``). Each
``POST /v1/responses`` consumes the next scripted reply and is answered with an SSE stream shaped
like the real API's; anything else codex asks for is a side request, answered with ``{}`` and never
touching the script (codex 0.169 makes none, so tests assert ``side_requests`` stays empty).

    with FakeOpenAI(write_file("a.txt", "x\\n"), Text("written")) as api:
        run `codex exec --json ...` with isolated_codex_env(api.base_url, home) ...
        assert api.requests[1].tool_outputs

Several CLIs at once each follow their own script: a conversation is picked by a key found in the
request's first user message (every request carries the whole history, so tool follow-ups and
``codex exec resume`` stay in it); requests no key matches take the positional script. Replies run
in parallel: ``Delay`` holds one back without holding up the others, and the recorded times show it.

    with FakeOpenAI(conversations={"alpha": [Delay(2, Text("a"))], "beta": [Delay(2, Text("b"))]}) as api:
        run `codex exec "alpha: ..."` and `codex exec "beta: ..."` at once ...
        assert api.turns("alpha")[0].overlaps(api.turns("beta")[0])
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from agentproxy.testing.scripted_server import POSITIONAL, Delay, Hang, ScriptedServer, waited_out

RESPONSES_PATH = "/v1/responses"
SHELL_TOOL = "exec_command"  # codex 0.169 offers no `shell` / `shell_command`: unified exec is on by default
PATCH_TOOL = "apply_patch"  # a freeform (custom) tool: its input is the patch text, not JSON
_CWD = re.compile(r"<cwd>(.*?)</cwd>", re.S)
# What codex injects as user input parts: <environment_context>, <turn_aborted>, ... and AGENTS.md.
_INJECTED = re.compile(r"\s*(<([a-z_]+)>.*</\2>\s*$|# AGENTS\.md instructions for )", re.S)
_TOOL_OUTPUTS = ("function_call_output", "custom_tool_call_output")

# The error (`type`, `code`) the real API puts in its error body for the HTTP codes tests use.
_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", None),
    404: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass(frozen=True)
class CapturedRequest:
    """One request the fake received, with the fields tests usually assert on already parsed."""

    path: str
    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict, compare=False)
    side: bool = False
    conversation: str = POSITIONAL  # the key whose script answered it; "" for the positional script
    received_at: float = 0.0  # time.monotonic() when it arrived
    # time.monotonic() once the reply's last byte is written; None while pending (or never: Hang).
    answered_at: float | None = field(default=None, compare=False)
    usage: Mapping[str, Any] | None = field(default=None, compare=False)  # what response.completed reported

    @property
    def cwd(self) -> str:
        """The CLI's working directory: it only travels in <environment_context><cwd> (the latest wins)."""
        found = [match.group(1).strip() for text in _input_texts(self.body) for match in _CWD.finditer(text)]
        return found[-1] if found else ""

    @property
    def first_user_text(self) -> str:
        """What the user said first (the task): the same for every request of one codex thread."""
        return next(iter(_user_texts(self.body)), "")

    @property
    def last_user_text(self) -> str:
        """What the user said last: still the prompt while tool calls of its turn go back and forth."""
        texts = _user_texts(self.body)
        return texts[-1] if texts else ""

    @property
    def tool_outputs(self) -> list[dict[str, Any]]:
        """The outputs closing the input: codex's answers to the calls of the previous reply."""
        outputs: list[dict[str, Any]] = []
        for item in reversed(self.body.get("input") or []):
            if item.get("type") not in _TOOL_OUTPUTS:
                break
            outputs.insert(0, item)
        return outputs

    @property
    def tools(self) -> list[str]:
        """Names of the tools offered (hosted tools such as web_search by their type)."""
        return [tool.get("name") or tool.get("type", "") for tool in self.body.get("tools") or []]

    @property
    def thread_id(self) -> str:
        """Codex's thread id (as in its `thread.started` event), sent in a header with every request."""
        return self.headers.get("thread-id", "")

    def overlaps(self, other: CapturedRequest) -> bool:
        """Both were in flight at once: each arrived before the other's reply was out."""
        if self.answered_at is None or other.answered_at is None:
            return False
        return self.received_at < other.answered_at and other.received_at < self.answered_at


def _input_texts(body: Mapping[str, Any]) -> list[str]:
    return [text for item in body.get("input") or [] for text in _message_texts(item)]


def _message_texts(item: Mapping[str, Any]) -> list[str]:
    if item.get("type") != "message":
        return []
    return [part.get("text", "") for part in item.get("content") or [] if part.get("type") == "input_text"]


def _user_texts(body: Mapping[str, Any]) -> list[str]:
    """What the user said in each user message, without the parts codex injects (skipping messages of those only)."""
    texts = []
    for item in body.get("input") or []:
        if item.get("role") == "user":
            spoken = [text for text in _message_texts(item) if not _INJECTED.match(text)]
            if spoken:
                texts.append("\n".join(spoken))
    return texts


@dataclass(frozen=True)
class Text:
    """An assistant message; with no call in it, it ends codex's turn (an `agent_message` item)."""

    text: str


@dataclass(frozen=True)
class Shell:
    """The model asking codex to run a bash command in its cwd (a `command_execution` item)."""

    command: str | Callable[[CapturedRequest], str]


def write_file(path: str, content: str) -> Shell:
    """The model writing ``path`` (relative to codex's cwd) through a shell command."""
    return Shell(f"printf %s {shlex.quote(content)} > {shlex.quote(path)}")


@dataclass(frozen=True)
class Patch:
    """The model editing files through apply_patch (a `file_change` item); paths relative to the cwd."""

    patch: str


def add_file_patch(path: str, content: str) -> Patch:
    """An apply_patch that creates ``path`` holding ``content`` (one line per line)."""
    lines = "".join(f"+{line}\n" for line in content.splitlines())
    return Patch(f"*** Begin Patch\n*** Add File: {path}\n{lines}*** End Patch\n")


@dataclass(frozen=True)
class Status:
    """An HTTP error with the real API's JSON body; its `type` and `code` default by status, as the API's."""

    code: int
    message: str = "The server had an error while processing your request. Sorry about that!"
    error_type: str | None = None
    error_code: str | None = None


Reply = Text | Shell | Patch | Status | Hang | Delay | Callable[[CapturedRequest], "Reply"]


class FakeOpenAI(ScriptedServer[CapturedRequest, Reply]):
    """The fake server; a context manager that serves on 127.0.0.1 with a random port.

    ``requests`` holds the ``POST /v1/responses`` calls (each consumed one scripted reply),
    ``side_requests`` everything else. ``conversations`` maps a key to its own script: a request
    whose first user text contains the key (the first key that does, in the order given) takes its
    replies from it, and ``default`` once it runs out; the positional ``replies`` answer the rest.
    """

    def __init__(
        self,
        *replies: Reply,
        default: Reply | None = None,
        conversations: Mapping[str, Iterable[Reply]] | None = None,
    ) -> None:
        super().__init__(replies, default or Text("done"), _handler_for(self), "fake-openai", conversations)
        self.side_requests: list[CapturedRequest] = []

    @property
    def base_url(self) -> str:
        """What codex's model provider `base_url` must be: it appends /responses."""
        return f"{self.url}/v1"

    def describe(self, request: CapturedRequest) -> str:
        text = request.last_user_text[:60]
        return f"{request.conversation}: {text}" if request.conversation else text

    def turns(self, conversation: str) -> list[CapturedRequest]:
        """The Responses calls of one conversation, in arrival order."""
        with self._cond:
            return [request for request in self.requests if request.conversation == conversation]

    def _take(self, path: str, headers: Mapping[str, str], body: dict[str, Any]) -> tuple[CapturedRequest, Reply]:
        received_at = time.monotonic()
        conversation = self.conversation_of(next(iter(_user_texts(body)), ""))
        request = CapturedRequest(path, body, headers, conversation=conversation, received_at=received_at)
        reply = self.record(request, conversation=conversation)
        assert reply is not None
        return request, reply

    def _take_side(self, path: str, headers: Mapping[str, str], body: dict[str, Any]) -> None:
        request = CapturedRequest(path, body, headers, side=True, received_at=time.monotonic())
        self.record(request, scripted=False, into=self.side_requests)

    def _answered(self, request: CapturedRequest, usage: Mapping[str, Any] | None) -> None:
        with self._cond:
            # The fields set after recording: requests stay frozen for the tests that read them.
            object.__setattr__(request, "answered_at", time.monotonic())
            object.__setattr__(request, "usage", usage)
            self._cond.notify_all()


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def _output_item(reply: Text | Shell | Patch, request: CapturedRequest) -> dict[str, Any]:
    if isinstance(reply, Text):
        content = [{"type": "output_text", "text": reply.text, "annotations": []}]
        return {
            "type": "message",
            "id": _new_id("msg_"),
            "role": "assistant",
            "status": "completed",
            "content": content,
        }
    if isinstance(reply, Shell):
        command = reply.command(request) if callable(reply.command) else reply.command
        arguments = json.dumps({"cmd": command})
        return {**_call("fc_"), "type": "function_call", "name": SHELL_TOOL, "arguments": arguments}
    return {**_call("ctc_"), "type": "custom_tool_call", "name": PATCH_TOOL, "input": reply.patch}


def _call(id_prefix: str) -> dict[str, Any]:
    return {"id": _new_id(id_prefix), "call_id": _new_id("call_"), "status": "completed"}


def _usage(request: CapturedRequest, item: Mapping[str, Any]) -> dict[str, Any]:
    input_tokens = max(1, len(json.dumps(request.body)) // 4)
    output_tokens = max(1, len(json.dumps(item)) // 4)
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def _response(request: CapturedRequest, item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": _new_id("resp_"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": request.body.get("model", "gpt-fake"),
        "output": [item],
        "usage": _usage(request, item),
        "error": None,
        "incomplete_details": None,
    }


def _halves(text: str) -> list[str]:
    """Split a delta in two so clients must really concatenate partial chunks."""
    cut = len(text) // 2
    return [part for part in (text[:cut], text[cut:]) if part] or [""]


def _item_events(item: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """How the real API streams one output item: added (empty), deltas, done (whole)."""
    at = {"item_id": item["id"], "output_index": 0}
    if item["type"] == "message":
        part = item["content"][0]
        yield {"type": "response.output_item.added", "output_index": 0, "item": {**item, "content": []}}
        yield {"type": "response.content_part.added", **at, "content_index": 0, "part": {**part, "text": ""}}
        for delta in _halves(part["text"]):
            yield {"type": "response.output_text.delta", **at, "content_index": 0, "delta": delta}
        yield {"type": "response.output_text.done", **at, "content_index": 0, "text": part["text"]}
        yield {"type": "response.content_part.done", **at, "content_index": 0, "part": part}
    else:
        key, stream = (
            ("arguments", "function_call_arguments")
            if item["type"] == "function_call"
            else ("input", "custom_tool_call_input")
        )
        yield {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {**item, key: "", "status": "in_progress"},
        }
        for delta in _halves(item[key]):
            yield {"type": f"response.{stream}.delta", **at, "delta": delta}
        yield {"type": f"response.{stream}.done", **at, key: item[key]}
    yield {"type": "response.output_item.done", "output_index": 0, "item": item}


def _sse_events(response: dict[str, Any]) -> Iterator[dict[str, Any]]:
    pending = {**response, "status": "in_progress", "output": [], "usage": None}
    events = [
        {"type": "response.created", "response": pending},
        {"type": "response.in_progress", "response": pending},
        *_item_events(response["output"][0]),
        {"type": "response.completed", "response": response},
    ]
    for number, event in enumerate(events):
        yield {**event, "sequence_number": number}


def _error_body(reply: Status) -> dict[str, Any]:
    error_type, error_code = _ERRORS.get(reply.code, ("server_error", None))
    error = {"message": reply.message, "type": reply.error_type or error_type, "param": None}
    return {"error": {**error, "code": reply.error_code or error_code}}


def _handler_for(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: pytest output is for assertions, not access logs."""

        def do_GET(self) -> None:
            fake._take_side(self.path, self._headers(), {})
            self._send_json(200, {})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) if length else b"{}")
            if self.path.split("?", 1)[0] == RESPONSES_PATH:
                self._answer(*fake._take(self.path, self._headers(), body))
            else:
                fake._take_side(self.path, self._headers(), body)
                self._send_json(200, {})

        def _headers(self) -> dict[str, str]:
            return {key.lower(): value for key, value in self.headers.items()}

        def _answer(self, request: CapturedRequest, reply: Reply) -> None:
            reply = waited_out(reply, request, fake.closing)
            if reply is None:
                self.close_connection = True
                return
            if isinstance(reply, Status):
                self._send_json(reply.code, _error_body(reply))
                fake._answered(request, None)
                return
            assert isinstance(reply, (Text, Shell, Patch)), f"not a reply: {reply!r}"
            response = _response(request, _output_item(reply, request))
            self._send_sse(_sse_events(response))
            fake._answered(request, response["usage"])

        def _send_json(self, status: int, payload: Mapping[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", _new_id("req_"))
            self.end_headers()
            self.wfile.write(data)

        def _send_sse(self, events: Iterator[dict[str, Any]]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("x-request-id", _new_id("req_"))
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            for event in events:
                self.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()

    return Handler
