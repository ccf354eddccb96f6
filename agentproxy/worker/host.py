"""The worker host: takes what the supervisor sends and hands each assignment's messages to its actor.

It runs at most --slots assignments, each an Assignment actor of its own; what it holds (its running
assignments, the commits its cached clones hold) goes into every Hello, so that a supervisor that
lost sight of it can fence off what is no longer this worker's and send smaller bundles.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pykka

from agentproxy.actors.base import tell_quietly
from agentproxy.bridge import bundles, protocol
from agentproxy.messages import AssignmentEnded, HandBack
from agentproxy.worker.assignment import Assignment

log = logging.getLogger("agentproxy.worker")


class WorkerHost(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(
        self,
        name: str,
        slots: int,
        repos: bundles.WorkerRepos,
        agent_command: tuple[str, ...],
        capabilities: dict[str, str],
        send: Callable[[protocol.BridgeMsg], None],
    ) -> None:
        super().__init__()
        self.name = name
        self.slots = slots
        self.repos = repos
        self.agent_command = agent_command
        self.capabilities = capabilities
        self.send = send
        self.running: dict[str, tuple[int, pykka.ActorRef]] = {}  # assignment -> its epoch and actor
        self.heads: dict[str, list[str]] = {}

    def on_start(self) -> None:
        self.heads = self.repos.all_heads()

    def hello(self) -> protocol.Hello:
        """What the link announces (asked through a proxy: it runs on this actor's thread)."""
        running = [protocol.Held(assignment, epoch) for assignment, (epoch, _) in self.running.items()]
        return protocol.Hello(
            name=self.name, slots=self.slots, capabilities=self.capabilities, repos=dict(self.heads), running=running
        )

    def on_receive(self, message: Any) -> Any:
        match message:
            case protocol.Assign():
                self.start_assignment(message)
            case protocol.Chunk(transfer=transfer):
                self.to_assignment(transfer, None, message)
            case protocol.Deliver() | protocol.Judged() | protocol.Revoke() | protocol.Finish():
                self.to_assignment(message.assignment, message.epoch, message)
            case AssignmentEnded(assignment=assignment):
                self.running.pop(assignment, None)
                self.heads = self.repos.all_heads()
            case HandBack():
                self.hand_back()
        return None

    def start_assignment(self, assign: protocol.Assign) -> None:
        if assign.assignment in self.running:
            return
        ref = self.actor_ref
        actor = Assignment.start(
            assign,
            self.repos,
            self.agent_command,
            self.send,
            lambda assignment: ref.tell(AssignmentEnded(assignment=assignment)),
        )
        self.running[assign.assignment] = (assign.epoch, actor)
        log.info("assigned %s (epoch %d): %s", assign.subtask_id, assign.epoch, assign.assignment[:8])

    def to_assignment(self, assignment: str, epoch: int | None, message: Any) -> None:
        held = self.running.get(assignment)
        if held is None or (epoch is not None and epoch != held[0]):
            return  # ended here already, or of an epoch fenced off
        tell_quietly(held[1], message)

    def hand_back(self) -> None:
        """SIGTERM (the supervisor was told already, by the link): stop every assignment, its worktree kept."""
        for assignment, (epoch, actor) in list(self.running.items()):
            actor.tell(protocol.Revoke(assignment=assignment, epoch=epoch, reason="the worker is stopping"))

    def busy(self) -> bool:
        return bool(self.running)
