"""What every agentproxy actor shares: addressing by name, supervision, recording events."""

from __future__ import annotations

import logging
import threading
from types import TracebackType

import pykka

from agentproxy.messages import ActorFailed, AnyEvent, Msg, Record

log = logging.getLogger("agentproxy.actors")

SUPERVISOR = "supervisor"
CONTEXT_KEEPER = "context_keeper"
PLANNER = "planner"
DISPATCHER = "dispatcher"
CLARIFIER = "clarifier"
VERIFIER = "verifier"
INTEGRATOR = "integrator"
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

    def record(self, event: AnyEvent) -> None:
        self.directory.tell(CONTEXT_KEEPER, Record(event=event))

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
