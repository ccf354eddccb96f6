"""The server's runs: each one's events numbered in its session and followed live by any number of
clients (each on the event loop, woken from the run's thread), and the sessions they belong to.

A session's events are numbered from 1 across all its runs: a continued session's earlier events
come from the store, the running one's from memory, so a client that reconnects with Last-Event-ID
gets exactly what it missed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentproxy.errors import UnknownSessionError, UsageError
from agentproxy.messages import AnyEvent

FINISHED = object()  # a follower's end


@dataclass
class SessionLog:
    """One run's session: the events before it (a continued session) and its own, as they come."""

    session_id: str
    working_dir: Path
    run: Any  # agentproxy.api.Run
    events: list[AnyEvent] = field(default_factory=list)
    earlier: int = 0  # how many of the events are the session's earlier runs'
    outcome: Any = None  # the RunOutcome, once the run ended
    lock: threading.Lock = field(default_factory=threading.Lock)
    waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    def pump(self) -> None:
        """On a thread of its own: the run's events, in order, then its outcome."""
        for event in self.run.events():
            with self.lock:
                self.events.append(event)
                self._wake()
        self.finish(self.run.wait(None))

    def finish(self, outcome: Any) -> None:
        with self.lock:
            self.outcome = outcome
            self._wake()

    def _wake(self) -> None:
        for loop, ready in self.waiters:
            loop.call_soon_threadsafe(ready.set)

    async def follow(self, after: int) -> AsyncIterator[tuple[int, AnyEvent] | object]:
        """(sequence number, event) after the given number, live; then FINISHED once the run ended."""
        ready = asyncio.Event()
        waiter = (asyncio.get_running_loop(), ready)
        with self.lock:
            self.waiters.append(waiter)
        try:
            while True:
                ready.clear()
                with self.lock:
                    fresh, finished = self.events[after:], self.finished
                for offset, event in enumerate(fresh, start=after + 1):
                    yield offset, event
                after += len(fresh)
                if finished and not fresh:
                    yield FINISHED
                    return
                if not fresh:
                    await ready.wait()
        finally:
            with self.lock:
                self.waiters.remove(waiter)


class Runs:
    """The runs this server started, by session; at most one at a time per working directory."""

    def __init__(self) -> None:
        self.logs: dict[str, SessionLog] = {}
        self.lock = threading.Lock()

    def start(self, task: str, working_dir: Path, session_id: str | None, **options: Any) -> SessionLog:
        from agentproxy import api

        with self.lock:
            busy = [log for log in self.logs.values() if not log.finished and log.working_dir == working_dir]
            if busy:
                raise Busy(f"session {busy[0].session_id} is running in {working_dir}: one run per directory")
            before = api.get_session(session_id).events if session_id else []
            run = api.start_task(task, working_dir, session_id=session_id, **options)
            opened = run.session_id
            if opened is None:
                run.wait(timeout=30)
                raise UsageError(str(run.error or "the run did not start"))
            log = SessionLog(
                session_id=opened, working_dir=working_dir, run=run, events=list(before), earlier=len(before)
            )
            self.logs[opened] = log
        threading.Thread(target=log.pump, name=f"events-{opened}", daemon=True).start()
        return log

    def active(self) -> list[SessionLog]:
        with self.lock:
            return [log for log in self.logs.values() if not log.finished]

    def log_of(self, session_id: str) -> SessionLog | None:
        with self.lock:
            return self.logs.get(session_id)

    def session(self, id_or_prefix: str) -> Any:
        """The stored session (agentproxy.api.get_session), its full id resolved from a unique prefix."""
        from agentproxy import api

        try:
            return api.get_session(id_or_prefix)
        except UnknownSessionError:
            raise
        except UsageError as exc:
            raise UnknownSessionError(str(exc)) from exc

    def stop(self, session_id: str) -> bool:
        log = self.log_of(session_id)
        if log is None or log.finished:
            return False
        log.run.stop("stopped through pa-server")
        return True


class Busy(UsageError):
    """Another run holds the working directory: 409."""
