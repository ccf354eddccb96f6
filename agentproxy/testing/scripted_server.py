"""What the fake APIs share: a local HTTP server on a random port, run as a context manager,
answering from a per-test script of replies and recording every request it answers."""

from __future__ import annotations

import collections
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Generic, TypeVar

R = TypeVar("R")  # a request as the fake records it
P = TypeVar("P")  # a scripted reply
HOST = "127.0.0.1"


class ScriptedServer(Generic[R, P]):
    """Replies are consumed in order; when they run out, ``default`` answers every request."""

    def __init__(self, replies: tuple[P, ...], default: P, handler: type[BaseHTTPRequestHandler], name: str) -> None:
        self._replies: collections.deque[P] = collections.deque(replies)
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

    def add(self, *replies: P) -> None:
        with self._cond:
            self._replies.extend(replies)

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> list[R]:
        """Block until ``n`` requests arrived; TimeoutError (naming what did arrive) if not."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= n, timeout):
                seen = [self.describe(r) for r in self.requests]
                raise TimeoutError(f"{len(seen)} of {n} requests after {timeout}s: {seen}")
            return list(self.requests)

    def record(self, request: R, scripted: bool = True, into: list[R] | None = None) -> P | None:
        """Keep the request; the next reply (callables resolved on it) when the script answers it."""
        with self._cond:
            (self.requests if into is None else into).append(request)
            reply: Any = (self._replies.popleft() if self._replies else self._default) if scripted else None
            self._cond.notify_all()
        while callable(reply):
            reply = reply(request)
        return reply

    def describe(self, request: R) -> str:
        return repr(request)[:80]
