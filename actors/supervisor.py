"""Supervisor: starts the actor tree, restarts crashed actors OTP-style, escalates crash loops.

A stopped pykka actor cannot be restarted: the Supervisor starts a fresh instance from the same
factory, rebinds the name in the Directory and tells everyone ``Restarted(name)`` so that whoever
was waiting on the old instance sends its request again. More than ``intensity`` restarts of one
name within ``period_s`` seconds is a crash loop: the Supervisor stops restarting it and tells the
Dispatcher ``Escalated``, which ends the session with the reason. The Dispatcher's own crash
escalates at once: its record of outstanding work died with it (the session stays resumable).
A restart waits out its backoff on a timer that tells the Supervisor ``RestartDue``: the mailbox stays
free for other workers meanwhile, and a StopWorker of the name before then cancels the restart.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pykka
from agentproxy.actors.base import CONTEXT_KEEPER, DISPATCHER, SUPERVISOR, WORKER_PREFIX, Directory, tell_quietly

from agentproxy.messages import (
    ActorFailed,
    ActorRestarted,
    Escalated,
    Record,
    RestartDue,
    Restarted,
    StartWorker,
    StopWorker,
)

# Starts one actor under a name and returns its ref.
Factory = Callable[[str], pykka.ActorRef]
# Starts a worker under a name for an agent backend (claude, codex, gemini) and returns its ref.
WorkerFactory = Callable[[str, str], pykka.ActorRef]

BACKOFF_BASE_S = 0.05
BACKOFF_MAX_S = 2.0
# Workers kill their agent's process group and the ContextKeeper flushes the store when they stop:
# they get the time that takes. Any other actor may be stuck in a brain call: it is not waited for.
STOP_TIMEOUT_S = 15.0
QUICK_STOP_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class PendingRestart:
    timer: threading.Timer
    error: str
    restarts: int  # of the name within the period, this one included


class Supervisor(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(
        self,
        directory: Directory,
        factories: Mapping[str, Factory],
        worker_factory: WorkerFactory,
        *,
        remote_worker_factory: Factory | None = None,
        intensity: int = 3,
        period_s: float = 60.0,
        on_escalate: Callable[[str, str], None] | None = None,
    ) -> None:
        super().__init__()
        self.directory = directory
        self.factories = dict(factories)  # in start order
        self.worker_factory = worker_factory
        self.remote_worker_factory = remote_worker_factory
        self.remote: set[str] = set()  # the workers that stand for agents on worker hosts
        self.agents: dict[str, str] = {}  # worker name -> the backend it drives, for restarts
        self.intensity = intensity
        self.period_s = period_s
        self.on_escalate = on_escalate
        self.crashes: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self.restarts_due: dict[str, PendingRestart] = {}
        # Bound here, on the caller's thread, so the tree is addressable as soon as start() returns.
        self.directory.bind(SUPERVISOR, self.actor_ref)
        for name in self.factories:
            self.directory.bind(name, self.factories[name](name))

    def on_receive(self, message: Any) -> Any:
        match message:
            case StartWorker(name=name, remote=remote, agent=agent):
                self.cancel_restart(name)
                if old := self.directory.unbind(name):
                    old.stop(block=False)  # a subtask started again (its worker host was lost)
                self.remote.discard(name)
                if remote:
                    self.remote.add(name)
                self.agents[name] = agent
                self.directory.bind(name, self.factory_of(name)(name))
                return True
            case StopWorker(name=name):
                self.cancel_restart(name)  # its work ended: a restart now would be a zombie
                ref = self.directory.unbind(name)
                if ref is not None:
                    ref.stop(block=False)
            case ActorFailed(name=name, error=error):
                self.on_actor_failed(name, error)
            case RestartDue(name=name):
                self.restart(name)
        return None

    def on_actor_failed(self, name: str, error: str) -> None:
        if name.startswith(WORKER_PREFIX) and self.directory.get(name) is None:
            return  # stopped by a StopWorker before its crash was reported: its work has ended
        now = time.monotonic()
        crashes = self.crashes[name]
        crashes.append(now)
        while crashes and now - crashes[0] > self.period_s:
            crashes.popleft()
        if name == DISPATCHER or len(crashes) > self.intensity:
            self.escalate(name, error)
            return
        backoff_s = min(BACKOFF_BASE_S * 2 ** (len(crashes) - 1), BACKOFF_MAX_S)
        timer = threading.Timer(backoff_s, tell_quietly, args=(self.actor_ref, RestartDue(name=name)))
        timer.daemon = True
        self.cancel_restart(name)
        self.restarts_due[name] = PendingRestart(timer=timer, error=error, restarts=len(crashes))
        timer.start()

    def restart(self, name: str) -> None:
        due = self.restarts_due.pop(name, None)
        if due is None:
            return  # cancelled after its timer had fired
        self.directory.bind(name, self.factory_of(name)(name))
        self.directory.tell(
            CONTEXT_KEEPER,
            Record(event=ActorRestarted(actor=name, reason=due.error, restarts=due.restarts)),
        )
        told = set()  # one actor may answer to several names (a worker host's Assignment): told once
        for other in self.directory.names():
            ref = self.directory.get(other)
            if other in (name, SUPERVISOR) or ref is None or ref.actor_urn in told:
                continue
            told.add(ref.actor_urn)
            tell_quietly(ref, Restarted(name=name))

    def factory_of(self, name: str) -> Factory:
        if name in self.remote and self.remote_worker_factory is not None:
            return self.remote_worker_factory
        if name.startswith(WORKER_PREFIX):
            agent = self.agents.get(name, "claude")
            return lambda worker_name: self.worker_factory(worker_name, agent)
        return self.factories[name]

    def escalate(self, name: str, error: str) -> None:
        self.directory.unbind(name)
        reason = f"{error} ({len(self.crashes[name])} crashes within {self.period_s:g}s)"
        told_dispatcher = name != DISPATCHER and self.directory.tell(DISPATCHER, Escalated(name=name, reason=reason))
        if not told_dispatcher and self.on_escalate is not None:
            self.on_escalate(name, reason)

    def cancel_restart(self, name: str) -> None:
        due = self.restarts_due.pop(name, None)
        if due is not None:
            due.timer.cancel()

    def on_stop(self) -> None:
        """Cancel the restarts due, then stop children in reverse start order (workers first), each bounded."""
        for name in list(self.restarts_due):
            self.cancel_restart(name)
        names = [n for n in self.directory.names() if n != SUPERVISOR]
        names.sort(
            key=lambda n: (
                not n.startswith(WORKER_PREFIX),
                -list(self.factories).index(n) if n in self.factories else 0,
            )
        )
        for name in names:
            ref = self.directory.unbind(name)
            if ref is not None:
                holds_resources = name.startswith(WORKER_PREFIX) or name == CONTEXT_KEEPER
                with contextlib.suppress(pykka.Timeout):
                    ref.stop(block=True, timeout=STOP_TIMEOUT_S if holds_resources else QUICK_STOP_TIMEOUT_S)
