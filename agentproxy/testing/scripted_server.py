"""What the fake APIs share: a local HTTP server on a random port, run as a context manager,
answering from per-test scripts of replies and recording every request it answers."""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Generic, TypeVar

R = TypeVar("R")  # a request as the fake records it
P = TypeVar("P")  # a scripted reply
HOST = "127.0.0.1"
POSITIONAL = ""  # the conversation key of the positional script: requests no conversation claims


class ScriptedServer(Generic[R, P]):
    """Replies are consumed in order, one script per conversation; when a script runs out,
    ``default`` answers. Conversations let concurrent clients each follow their own script."""

    def __init__(
        self,
        replies: tuple[P, ...],
        default: P,
        handler: type[BaseHTTPRequestHandler],
        name: str,
        conversations: Mapping[str, Iterable[P]] | None = None,
    ) -> None:
        self._scripts: dict[str, collections.deque[P]] = {POSITIONAL: collections.deque(replies)}
        for key, script in (conversations or {}).items():
            self._scripts.setdefault(key, collections.deque()).extend(script)
        self._default = default
        self._cond = threading.Condition()
        self.closing = threading.Event()  # a hanging reply waits on this, so closing cuts it short
        self.requests: list[R] = []
        self._server = ThreadingHTTPServer((HOST, 0), handler)
        self._server.daemon_threads = True
        # A short poll interval: shutdown() waits up to one interval, and tests open a fake each.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_port}"

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def add(self, *replies: P, conversation: str = POSITIONAL) -> None:
        """Append to a conversation's script; a new key starts a conversation (matched after older ones)."""
        with self._cond:
            self._scripts.setdefault(conversation, collections.deque()).extend(replies)

    def conversation_of(self, text: str) -> str:
        """The first conversation key (in the order given) found in ``text``, else POSITIONAL."""
        with self._cond:
            return next((key for key in self._scripts if key and key in text), POSITIONAL)

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> list[R]:
        """Block until ``n`` requests arrived; TimeoutError (naming what did arrive) if not."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= n, timeout):
                seen = [self.describe(r) for r in self.requests]
                raise TimeoutError(f"{len(seen)} of {n} requests after {timeout}s: {seen}")
            return list(self.requests)

    def record(
        self, request: R, scripted: bool = True, into: list[R] | None = None, conversation: str = POSITIONAL
    ) -> P | None:
        """Keep the request; when scripted, the next reply of its conversation (callables resolved on it)."""
        with self._cond:
            (self.requests if into is None else into).append(request)
            script = self._scripts.get(conversation)
            reply: Any = (script.popleft() if script else self._default) if scripted else None
            self._cond.notify_all()
        return resolve(reply, request)

    def describe(self, request: R) -> str:
        return repr(request)[:80]


@dataclass(frozen=True)
class Hang:
    """Read the request and say nothing for ``seconds`` (None: until the fake closes, which cuts it short)."""

    seconds: float | None = None


@dataclass(frozen=True)
class Delay:
    """``reply`` after ``seconds`` of silence; other requests are served meanwhile, closing the fake drops it."""

    seconds: float
    reply: Any


def waited_out(reply: Any, request: Any, closing: threading.Event) -> Any:
    """The reply to send once Delays (resolved on the request) and a Hang are waited out; None: the fake
    closed, or the reply is to hang up without an answer."""
    while isinstance(reply, Delay):
        if closing.wait(reply.seconds):
            return None
        reply = resolve(reply.reply, request)
    if isinstance(reply, Hang):
        closing.wait(reply.seconds)
        return None
    return reply


def resolve(reply: Any, request: Any) -> Any:
    """A scripted reply may be a function of the request (or return one): call until it is data."""
    while callable(reply):
        reply = reply(request)
    return reply
