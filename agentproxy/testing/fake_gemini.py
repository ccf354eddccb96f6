"""A local, per-test scripted fake of the Gemini API (generativelanguage) for the google-genai SDK.

Point a client at it with ``genai.Client(api_key=..., http_options=types.HttpOptions(base_url=fake.url))``.
Each ``generateContent`` / ``streamGenerateContent`` call consumes the next scripted reply, so a test's
script reads like the brain's conversation; ``countTokens`` is recorded but answered from the request
alone. Successes and errors carry the real API's JSON shapes, so the SDK's own parsing, error
mapping and retry logic run exactly as in production.

    with FakeGemini(Status(429), Json({"verdict": "ok"})) as api:
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=api.url, ...))
        ...
        assert api.requests[-1].schema
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from agentproxy.testing.scripted_server import ScriptedServer

_ROUTE = re.compile(r"^/(v1|v1beta)/models/([^/:]+):(generateContent|streamGenerateContent|countTokens)$")

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
    name: str
    args: Mapping[str, Any]


@dataclass(frozen=True)
class Status:
    """An HTTP error with Google's error body; ``status`` defaults to the code's google.rpc name."""

    code: int
    message: str = "Fake error from FakeGemini."
    status: str | None = None


@dataclass(frozen=True)
class Hang:
    """Read the request and say nothing for ``seconds`` (cut short when the fake closes)."""

    seconds: float


@dataclass(frozen=True)
class Disconnect:
    """Read the request and close the socket without an answer."""


Reply = Json | RawText | FunctionCall | Status | Hang | Disconnect | Callable[[GeminiRequest], "Reply"]


class FakeGemini(ScriptedServer[GeminiRequest, Reply]):
    """The fake server; a context manager that serves on 127.0.0.1 with a random port.

    ``requests`` holds every routed request in arrival order (recorded before answering, so a
    ``Hang`` or ``Disconnect`` still counts), which is what retry tests need to count attempts.
    """

    def __init__(self, *replies: Reply, default: Reply | None = None) -> None:
        super().__init__(replies, default or Json({}), _handler_for(self), "fake-gemini")

    def describe(self, request: GeminiRequest) -> str:
        return f"{request.method}: {request.text[:60]}"

    def _take(self, request: GeminiRequest) -> Reply | None:
        """Record the request; the next scripted reply, or None for countTokens (never scripted)."""
        return self.record(request, scripted=request.method != "countTokens")


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _usage(request: GeminiRequest, reply_text: str, reply: Json | RawText | FunctionCall) -> dict[str, int]:
    prompt = reply.input_tokens if isinstance(reply, Json) and reply.input_tokens is not None else _tokens(request.text)
    output = reply.output_tokens if isinstance(reply, Json) and reply.output_tokens is not None else _tokens(reply_text)
    return {"promptTokenCount": prompt, "candidatesTokenCount": output, "totalTokenCount": prompt + output}


def _response(request: GeminiRequest, reply: Json | RawText | FunctionCall) -> dict[str, Any]:
    if isinstance(reply, FunctionCall):
        part: dict[str, Any] = {"functionCall": {"name": reply.name, "args": dict(reply.args)}}
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
            reply = fake._take(request)
            if reply is None:
                self._send_json(200, {"totalTokens": _tokens(request.text)})
            else:
                self._answer(request, reply)

        def _not_found(self) -> None:
            self._send_json(404, _error_body(404, f"Requested entity was not found: {self.path}", "NOT_FOUND"))

        def _answer(self, request: GeminiRequest, reply: Reply) -> None:
            if isinstance(reply, Hang):
                fake.closing.wait(reply.seconds)
                self.close_connection = True
                return
            if isinstance(reply, Disconnect):
                # shutdown() makes the client see EOF now, not when this handler thread unwinds.
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
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
