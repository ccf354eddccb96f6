"""What every agentproxy actor shares: addressing by name, supervision, recording events."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

import pykka

from agentproxy.messages import ActorFailed, AnyEvent, Msg, Record, RecordAll

log = logging.getLogger("agentproxy.actors")

SUPERVISOR = "supervisor"
CONTEXT_KEEPER = "context_keeper"
PLANNER = "planner"
DISPATCHER = "dispatcher"
CLARIFIER = "clarifier"
VERIFIER = "verifier"
INTEGRATOR = "integrator"
BRIDGE = "bridge"
WORKER_PREFIX = "worker:"

# Every ask between actors waits at most this long.
ASK_TIMEOUT_S = 10.0


class Directory:
    """Actor names -> the instance that currently answers to the name; rebound on restart.

    Thread-safe: every actor thread and the runtime's thread use it.
    """

    def __init__(self) -> None:
        self._refs: dict[str, pykka.ActorRef] = {}
        self._lock = threading.Lock()

    def bind(self, name: str, ref: pykka.ActorRef) -> None:
        with self._lock:
            self._refs[name] = ref

    def unbind(self, name: str) -> pykka.ActorRef | None:
        with self._lock:
            return self._refs.pop(name, None)

    def get(self, name: str) -> pykka.ActorRef | None:
        with self._lock:
            return self._refs.get(name)

    def names(self) -> list[str]:
        with self._lock:
            return list(self._refs)

    def tell(self, name: str, message: Msg) -> bool:
        """Deliver if someone answers to name; False when nobody does (it is being restarted)."""
        ref = self.get(name)
        if ref is None:
            return False
        try:
            ref.tell(message)
            return True
        except pykka.ActorDeadError:
            return False

    def ask(self, name: str, message: Msg, timeout: float = ASK_TIMEOUT_S):
        ref = self.get(name)
        if ref is None:
            raise pykka.ActorDeadError(f"no actor answers to {name!r}")
        return ref.ask(message, timeout=timeout)


def tell_quietly(ref: pykka.ActorRef, message: Any) -> None:
    """Reader, ticker and timer threads outlive a stopped actor: their last words may go nowhere."""
    with contextlib.suppress(pykka.ActorDeadError):  # the actor was stopped or restarted
        ref.tell(message)


class SupervisedActor(pykka.ThreadingActor):
    """An actor whose crash is reported to the Supervisor, which starts a fresh instance.

    pykka stops an actor whose on_receive raises on a tell; on_failure runs on the actor's own
    thread just before it stops, and is where subclasses release what they hold (``release``).
    """

    use_daemon_thread = True

    def __init__(self, name: str, directory: Directory) -> None:
        super().__init__()
        self.name = name
        self.directory = directory
        self.unrecorded: list[AnyEvent] | None = None  # inside recording_together: the events, in order

    def record(self, event: AnyEvent) -> None:
        if self.unrecorded is None:
            self.directory.tell(CONTEXT_KEEPER, Record(event=event))
        else:
            self.unrecorded.append(event)

    @contextlib.contextmanager
    def recording_together(self) -> Iterator[None]:
        """The events recorded inside go to the ContextKeeper as one message (a flood of agent lines)."""
        self.unrecorded = []
        try:
            yield
        finally:
            self.send_unrecorded()
            self.unrecorded = None

    def tell(self, name: str, message: Msg) -> None:
        """Tell another actor, after recording what led to it: the events stay in the order they happened."""
        self.send_unrecorded()
        self.directory.tell(name, message)

    def send_unrecorded(self) -> None:
        if self.unrecorded:
            self.directory.tell(CONTEXT_KEEPER, RecordAll(events=self.unrecorded))
            self.unrecorded = []

    def run_aside(self, handler: Callable[[Any], None], request: Any, slots: threading.Semaphore) -> threading.Thread:
        """handler(request) on a thread of its own once one of slots is free, so the mailbox stays free.

        A crash there is this actor's crash: the exception is told to the actor, whose on_receive raises it.
        """

        def run() -> None:
            with slots:
                try:
                    handler(request)
                except Exception as exc:
                    tell_quietly(self.actor_ref, exc)

        thread = threading.Thread(target=run, name=f"{self.name}-{type(request).__name__.lower()}", daemon=True)
        thread.start()
        return thread

    def release(self) -> None:
        """Free external resources (processes, files). Called on stop and on failure."""

    def on_stop(self) -> None:
        self.release()

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.release()
        finally:
            error = f"{exception_type.__name__ if exception_type else 'Error'}: {exception_value}"
            self.directory.tell(SUPERVISOR, ActorFailed(name=self.name, error=error[:500]))
