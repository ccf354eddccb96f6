"""A local, per-test scripted fake of the Gemini API (generativelanguage), for the google-genai SDK
and for the real Gemini CLI.

Point a client at it with ``genai.Client(api_key=..., http_options=types.HttpOptions(base_url=fake.url))``,
or the CLI through GOOGLE_GEMINI_BASE_URL (see ``gemini_cli_env``). Each ``generateContent`` /
``streamGenerateContent`` call consumes the next scripted reply, so a test's script reads like the
conversation; ``countTokens`` is recorded but answered from the request alone. Successes and errors
carry the real API's JSON shapes, so the client's own parsing, error mapping and retry logic run
exactly as in production.

    with FakeGemini(Status(429), Json({"verdict": "ok"})) as api:
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=api.url, ...))
        ...
        assert api.requests[-1].schema

The CLI's side calls (the routing classifier under ``-m auto``, session summaries, token counts)
get a neutral answer and never touch the script; they land in ``side_requests``. Several CLIs at
once each follow their own script: a conversation is picked by a key found in the task (the user's
text of the first message, which every request of a session repeats, resumed ones too); requests
no key matches take the positional script. ``Delay`` holds one reply back without holding up the
others, and the recorded times show the overlap.

    with FakeGemini(conversations={"alpha": [Delay(2, write_file("a.txt", "a")), RawText("done")],
                                   "beta": [RawText("beta done")]}) as api:
        run `gemini -p "alpha: ..."` and `gemini -p "beta: ..."` at once ...
        assert api.turns("alpha")[0].overlaps(api.turns("beta")[0])
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from agentproxy.testing.scripted_server import POSITIONAL, Delay, Hang, ScriptedServer, waited_out

_ROUTE = re.compile(r"^/(v1|v1beta)/models/([^/:]+):(generateContent|streamGenerateContent|countTokens)$")
_CLI_USER_AGENT = "GeminiCLI"  # 0.61.0 sends e.g. "GeminiCLI-tui/0.61.0/gemini-3.1-pro-preview (linux; x64; terminal)"
_SESSION_CONTEXT = "<session_context>"  # the CLI's environment part, opening the first user message
_WORKSPACE_MARKER = "- **Workspace Directories:**\n"
SIDE_REPLY_TEXT = "Fake summary"

# google.rpc.Code names the real API puts in error.status for the HTTP codes tests use.
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@dataclass(frozen=True)
class GeminiRequest:
    """One request the fake received, with the fields tests usually assert on already parsed."""

    api_version: str
    model: str
    method: str
    body: dict[str, Any]
    api_key: str
    headers: Mapping[str, str] = field(default_factory=dict)
    side: bool = False  # a CLI side call, answered neutrally outside the script
    conversation: str = POSITIONAL  # the key whose script answered it; "" for the positional script
    received_at: float = 0.0  # time.monotonic() when it arrived
    # time.monotonic() once the reply's last byte is written; None while pending (or never: Hang).
    answered_at: float | None = field(default=None, compare=False)

    @property
    def user_agent(self) -> str:
        return next((value for name, value in self.headers.items() if name.lower() == "user-agent"), "")

    @property
    def task_text(self) -> str:
        """What the user said first (the task), without the CLI's <session_context> part."""
        return _spoken_text(_user_parts(self.body)[:1])

    @property
    def last_user_text(self) -> str:
        """What the user said last; empty when the last user message only carries tool results."""
        return _spoken_text(_user_parts(self.body)[-1:])

    @property
    def cwd(self) -> str:
        """The CLI's working directory: it only travels as the first workspace directory of the
        <session_context> part ("- **Workspace Directories:**" then "  - /path")."""
        for text in _part_texts([part for parts in _user_parts(self.body)[:1] for part in parts]):
            _, found, rest = text.partition(_WORKSPACE_MARKER)
            if found and rest:
                return rest.splitlines()[0].strip().removeprefix("- ")
        return ""

    @property
    def function_responses(self) -> list[dict[str, Any]]:
        """The tool results the last user message carries ({"id", "name", "response"} each)."""
        return [
            part["functionResponse"]
            for parts in _user_parts(self.body)[-1:]
            for part in parts
            if "functionResponse" in part
        ]

    @property
    def tools(self) -> list[str]:
        """The names of the functions the request declares."""
        return [
            declaration.get("name", "")
            for tool in self.body.get("tools") or []
            for declaration in tool.get("functionDeclarations") or []
        ]

    def overlaps(self, other: GeminiRequest) -> bool:
        """Both were in flight at once: each arrived before the other's reply was out."""
        if self.answered_at is None or other.answered_at is None:
            return False
        return self.received_at < other.answered_at and other.received_at < self.answered_at

    @property
    def system_text(self) -> str:
        return "\n".join(_part_texts(_content_parts(self.body.get("systemInstruction"))))

    @property
    def text(self) -> str:
        """Every text part the model would read: system instruction first, then the contents."""
        texts = _part_texts(_content_parts(self.body.get("systemInstruction")))
        for content in self.body.get("contents") or []:
            texts += _part_texts(_content_parts(content))
        return "\n".join(texts)

    @property
    def images(self) -> list[tuple[str, int]]:
        """(mime type, decoded byte length) of each inline blob; the SDK may send either spelling."""
        blobs = []
        for content in self.body.get("contents") or []:
            for part in _content_parts(content):
                blob = part.get("inlineData") or part.get("inline_data")
                if isinstance(blob, dict):
                    mime = blob.get("mimeType") or blob.get("mime_type") or ""
                    blobs.append((mime, len(base64.b64decode(blob.get("data") or ""))))
        return blobs

    @property
    def schema(self) -> Any:
        """The structured-output schema, whichever field the SDK chose to put it in."""
        config = self._generation_config
        for key in ("responseSchema", "responseJsonSchema", "response_json_schema"):
            if key in config:
                return config[key]
        return None

    @property
    def temperature(self) -> float | None:
        return self._generation_config.get("temperature")

    @property
    def _generation_config(self) -> dict[str, Any]:
        return self.body.get("generationConfig") or {}


def _content_parts(content: Any) -> list[dict[str, Any]]:
    """Parts of a Content; a bare string (allowed for systemInstruction) counts as one text part."""
    if isinstance(content, str):
        return [{"text": content}]
    if isinstance(content, dict):
        return [part for part in content.get("parts") or [] if isinstance(part, dict)]
    return []


def _part_texts(parts: list[dict[str, Any]]) -> list[str]:
    return [part["text"] for part in parts if isinstance(part.get("text"), str)]


def _user_parts(body: Mapping[str, Any]) -> list[list[dict[str, Any]]]:
    """The parts of each user message, in order (a message without a role counts as the user's)."""
    return [_content_parts(content) for content in body.get("contents") or [] if content.get("role", "user") == "user"]


def _spoken_text(messages: list[list[dict[str, Any]]]) -> str:
    """The text parts of ``messages`` without the CLI's <session_context> part."""
    texts = [text for parts in messages for text in _part_texts(parts)]
    return "\n".join(text for text in texts if not text.startswith(_SESSION_CONTEXT))


def is_side_request(request: GeminiRequest) -> bool:
    # Rule (CLI 0.61.0): main-loop calls always declare tools; the CLI's utility calls never do
    # (routing classifier, session summary, countTokens). SDK callers are never side: they script all.
    return request.user_agent.startswith(_CLI_USER_AGENT) and not request.body.get("tools")


def _neutral_value(schema: Any) -> Any:
    """The plainest value a response schema allows, for side calls that ask for JSON."""
    if not isinstance(schema, Mapping):
        return None
    kind = str(schema.get("type", "")).upper()
    if schema.get("enum"):
        return schema["enum"][0]
    if kind == "OBJECT":
        return {name: _neutral_value(sub) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "ARRAY":
        return []
    # The classifier's complexity_score is an INTEGER from 1; a NUMBER (loop-detector confidence) 0 is harmless.
    if kind == "INTEGER":
        return schema.get("minimum", 1)
    if kind == "NUMBER":
        return schema.get("minimum", 0)
    if kind == "BOOLEAN":
        return False
    return SIDE_REPLY_TEXT


def _side_reply(request: GeminiRequest) -> Json | RawText | None:
    """countTokens gets None (answered from the request); JSON-asking calls a neutral object; the rest text."""
    if request.method == "countTokens":
        return None
    return RawText(SIDE_REPLY_TEXT) if request.schema is None else Json(_neutral_value(request.schema))


@dataclass(frozen=True)
class Json:
    """A structured answer: one text part holding ``json.dumps(value)``; token counts optional."""

    value: Any
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(frozen=True)
class RawText:
    """A text answer sent verbatim (e.g. malformed JSON the caller must survive)."""

    text: str


@dataclass(frozen=True)
class FunctionCall:
    """A tool call; ``args`` may be computed from the request (e.g. a path inside the CLI's cwd)."""

    name: str
    args: Mapping[str, Any] | Callable[[GeminiRequest], Mapping[str, Any]]


def write_file(name: str, content: str) -> FunctionCall:
    """The model writing ``name`` (relative) in the CLI's working directory with its write_file tool."""
    return FunctionCall("write_file", lambda request: {"file_path": f"{request.cwd}/{name}", "content": content})


@dataclass(frozen=True)
class Status:
    """An HTTP error with Google's error body; ``status`` defaults to the code's google.rpc name."""

    code: int
    message: str = "Fake error from FakeGemini."
    status: str | None = None


@dataclass(frozen=True)
class Disconnect:
    """Read the request and close the socket without an answer."""


Reply = Json | RawText | FunctionCall | Status | Hang | Disconnect | Delay | Callable[[GeminiRequest], "Reply"]


class FakeGemini(ScriptedServer[GeminiRequest, Reply]):
    """The fake server; a context manager that serves on 127.0.0.1 with a random port.

    ``requests`` holds every scripted request in arrival order (recorded before answering, so a
    ``Hang`` or ``Disconnect`` still counts), which is what retry tests need to count attempts;
    ``side_requests`` the CLI's side calls. ``conversations`` maps a key to its own script: a request
    whose task contains the key (the first key that does, in the order given) takes its replies
    from it, and ``default`` once it runs out; the positional ``replies`` answer the rest.
    """

    def __init__(
        self,
        *replies: Reply,
        default: Reply | None = None,
        conversations: Mapping[str, Iterable[Reply]] | None = None,
    ) -> None:
        super().__init__(replies, default or Json({}), _handler_for(self), "fake-gemini", conversations)
        self.side_requests: list[GeminiRequest] = []

    def describe(self, request: GeminiRequest) -> str:
        text = f"{request.method}: {request.text[:60]}"
        return f"{request.conversation}: {text}" if request.conversation else text

    def turns(self, conversation: str) -> list[GeminiRequest]:
        """The scripted requests of one conversation, in arrival order."""
        with self._cond:
            return [request for request in self.requests if request.conversation == conversation]

    def _take(self, request: GeminiRequest) -> tuple[GeminiRequest, Reply | None]:
        """Record the request; its reply, or None for countTokens (never scripted)."""
        request = replace(
            request,
            side=is_side_request(request),
            conversation=self.conversation_of(request.task_text),
            received_at=time.monotonic(),
        )
        if request.side:
            self.record(request, scripted=False, into=self.side_requests)
            return request, _side_reply(request)
        scripted = request.method != "countTokens"
        return request, self.record(request, scripted=scripted, conversation=request.conversation)

    def _answered(self, request: GeminiRequest) -> None:
        with self._cond:
            # The one field set after recording: requests stay frozen for the tests that read them.
            object.__setattr__(request, "answered_at", time.monotonic())
            self._cond.notify_all()


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _usage(request: GeminiRequest, reply_text: str, reply: Json | RawText | FunctionCall) -> dict[str, int]:
    prompt = reply.input_tokens if isinstance(reply, Json) and reply.input_tokens is not None else _tokens(request.text)
    output = reply.output_tokens if isinstance(reply, Json) and reply.output_tokens is not None else _tokens(reply_text)
    return {"promptTokenCount": prompt, "candidatesTokenCount": output, "totalTokenCount": prompt + output}


def _response(request: GeminiRequest, reply: Json | RawText | FunctionCall) -> dict[str, Any]:
    if isinstance(reply, FunctionCall):
        args = reply.args(request) if callable(reply.args) else reply.args
        part: dict[str, Any] = {"functionCall": {"name": reply.name, "args": dict(args)}}
        reply_text = json.dumps(part)
    else:
        reply_text = json.dumps(reply.value) if isinstance(reply, Json) else reply.text
        part = {"text": reply_text}
    return {
        "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": _usage(request, reply_text, reply),
        "modelVersion": request.model,
        "responseId": secrets.token_urlsafe(16),
    }


def _stream_chunks(response: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A text answer split in two chunks (finishReason and usage on the last), as the real API
    streams it, so clients must really concatenate; a function call comes whole."""
    candidate = response["candidates"][0]
    part = candidate["content"]["parts"][0]
    if "text" not in part or len(part["text"]) < 2:
        yield response
        return
    cut = len(part["text"]) // 2
    head_candidate = {"content": {"role": "model", "parts": [{"text": part["text"][:cut]}]}, "index": 0}
    yield {**response, "candidates": [head_candidate]}
    tail_candidate = {**candidate, "content": {"role": "model", "parts": [{"text": part["text"][cut:]}]}}
    yield {**response, "candidates": [tail_candidate]}


def _error_body(code: int, message: str, status: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status or _STATUS_NAMES.get(code, "UNKNOWN")}}


def _handler_for(fake: FakeGemini) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: pytest output is for assertions, not access logs."""

        def do_GET(self) -> None:
            self._not_found()

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            url = urlsplit(self.path)
            route = _ROUTE.match(url.path)
            if not route:
                self._not_found()
                return
            api_version, model, method = route.groups()
            key = self.headers.get("x-goog-api-key") or parse_qs(url.query).get("key", [""])[0]
            request = GeminiRequest(
                api_version=api_version,
                model=model,
                method=method,
                body=json.loads(raw or b"{}"),
                api_key=key,
                headers=dict(self.headers.items()),
            )
            request, reply = fake._take(request)
            if reply is None:
                self._send_json(200, {"totalTokens": _tokens(request.text)})
                fake._answered(request)
            else:
                self._answer(request, reply)

        def _not_found(self) -> None:
            self._send_json(404, _error_body(404, f"Requested entity was not found: {self.path}", "NOT_FOUND"))

        def _answer(self, request: GeminiRequest, reply: Reply) -> None:
            reply = waited_out(reply, request, fake.closing)
            if reply is None:
                self.close_connection = True
                return
            if isinstance(reply, Disconnect):
                # shutdown() makes the client see EOF now, not when this handler thread unwinds.
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self._send_reply(request, reply)
            fake._answered(request)

        def _send_reply(self, request: GeminiRequest, reply: Reply) -> None:
            if isinstance(reply, Status):
                self._send_json(reply.code, _error_body(reply.code, reply.message, reply.status))
                return
            assert isinstance(reply, (Json, RawText, FunctionCall)), f"not a reply: {reply!r}"
            response = _response(request, reply)
            if request.method == "streamGenerateContent":
                self._send_sse(_stream_chunks(response))
            else:
                self._send_json(200, response)

        def _send_json(self, status: int, payload: Mapping[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _send_sse(self, chunks: Iterator[dict[str, Any]]) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            for chunk in chunks:
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()

    return Handler
