"""One assignment on a worker host: its worktree, and the actors that work in it.

They are the same actors as in the supervisor (a ClaudeWorker, a Verifier, under a Supervisor of their
own), in a Directory of their own in which the names of the supervisor's actors (Dispatcher, Clarifier,
ContextKeeper) are this actor: what they are told goes up the bridge as a Report. What comes down
(Deliver) goes to them, with the worktree here as their directory. A verified subtask's branch goes up
as a bundle before its review's verdict does, so that the supervisor holds the work it is told passed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pykka

from agentproxy.actors.base import (
    CLARIFIER,
    CONTEXT_KEEPER,
    DISPATCHER,
    SUPERVISOR,
    VERIFIER,
    WORKER_PREFIX,
    Directory,
)
from agentproxy.actors.claude_worker import ClaudeWorker
from agentproxy.actors.integrator import branch_name
from agentproxy.actors.supervisor import Supervisor
from agentproxy.actors.verifier import Verifier
from agentproxy.blocklist import DEFAULT_DENY
from agentproxy.brain import ReviewInput
from agentproxy.bridge import bundles, protocol
from agentproxy.errors import WorkspaceError
from agentproxy.knowledge import KnowledgeBoard
from agentproxy.messages import (
    Cancel,
    Msg,
    Prepare,
    Record,
    Restarted,
    Review,
    ReviewDone,
    Reviewed,
    RunSubtask,
    SpawnAgent,
    StartWorker,
    SubtaskDone,
    Verdict,
)
from agentproxy.options import RunOptions
from agentproxy.worker.remote_brain import RemoteBrain

log = logging.getLogger("agentproxy.worker")

RESEND_RESULT = "Make sure your work is saved in the working directory, then say that you are done."

STOP_TIMEOUT_S = 20.0


class Assignment(pykka.ThreadingActor):
    use_daemon_thread = True

    def __init__(
        self,
        assign: protocol.Assign,
        repos: bundles.WorkerRepos,
        agent_command: tuple[str, ...],
        send: Callable[[protocol.BridgeMsg], None],
        ended: Callable[[str], None],
    ) -> None:
        super().__init__()
        self.assign = assign
        self.repos = repos
        self.agent_command = agent_command
        self.send_up = send
        self.ended = ended
        self.worker_name = f"{WORKER_PREFIX}{assign.subtask_id}"
        self.spool = repos.root / "spool"
        self.base_bundle = self.spool / f"{assign.assignment}.base.bundle"
        self.incoming = bundles.Reassembly(self.base_bundle) if assign.transfer else None
        # Its own in the clone: an earlier assignment's, kept for inspection, stays apart.
        self.path = repos.root / "worktrees" / assign.session_id / f"{branch_name(assign.subtask_id)}.{assign.epoch}"
        self.branch = f"{assign.branch}-{assign.assignment[:12]}"
        self.directory = Directory()
        self.supervisor: pykka.ActorRef | None = None
        self.brain = RemoteBrain(self.ask_brain)
        self.waiting: list[Msg] = []  # delivered before the worktree was ready
        self.reviewed: list[Msg] = []  # a passed review's event, held until the branch went up
        self.stopping = threading.Event()

    def on_start(self) -> None:
        self.spool.mkdir(parents=True, exist_ok=True)
        if self.incoming is None:
            self.set_up()

    # -- mailbox ---------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        match message:
            case protocol.Chunk(index=index, count=count, data=data) if self.incoming is not None:
                self.on_chunk(index, count, data)
            case protocol.Deliver(message=inner):
                self.down(inner)
            case protocol.Judged(request=request, verdict=verdict):
                self.brain.answered(request, verdict)
            case protocol.Revoke(reason=reason):
                self.end(keep=True, why=f"revoked: {reason}")
            case protocol.Finish(keep=keep):
                self.end(keep=keep, why="finished")
            case Msg():
                self.up(message)
        return None

    # -- the worktree and its actors -------------------------------------------------------

    def on_chunk(self, index: int, count: int, data: bytes) -> None:
        assert self.incoming is not None
        try:
            complete = self.incoming.add(index, count, data)
        except ValueError as exc:
            self.report(SubtaskDone(subtask_id=self.assign.subtask_id, ok=False, reason=f"a bad bundle chunk: {exc}"))
            return
        if complete:
            self.set_up()

    def set_up(self) -> None:
        a = self.assign
        try:
            if self.incoming is not None:
                self.repos.take_bundle(a.repo, self.base_bundle, a.branch)
                self.base_bundle.unlink(missing_ok=True)
            self.repos.make_worktree(a.repo, self.branch, a.base, self.path)
        except WorkspaceError as exc:
            self.report(SubtaskDone(subtask_id=a.subtask_id, ok=False, reason=f"the worker cannot set it up: {exc}"))
            return
        options = options_of(a.settings, self.path, self.agent_command)
        board, stopping = KnowledgeBoard(), self.stopping
        store, envs = self.repos.root / "checks.db", self.repos.root / "envs"
        for name in (DISPATCHER, CLARIFIER, CONTEXT_KEEPER):
            self.directory.bind(name, self.actor_ref)
        directory, brain = self.directory, self.brain
        self.supervisor = Supervisor.start(
            directory,
            {VERIFIER: lambda name: Verifier.start(name, directory, brain, board, options, store, envs, stopping)},
            lambda name, agent: ClaudeWorker.start(name, directory, options),
        )
        directory.ask(SUPERVISOR, StartWorker(name=self.worker_name))
        log.info("assignment %s: %s in %s", a.assignment[:8], a.subtask_id, self.path)
        for message in self.waiting:
            self.down(message)
        self.waiting.clear()

    def down(self, message: Msg) -> None:
        if self.supervisor is None:
            self.waiting.append(message)
            return
        if isinstance(message, RunSubtask | SpawnAgent | Prepare | Review):
            message = msgspec.structs.replace(message, cwd=str(self.path))
        target = VERIFIER if isinstance(message, Prepare | Review) else self.worker_name
        self.directory.tell(target, message)

    def up(self, message: Msg) -> None:
        """What the assignment's actors tell the supervisor's."""
        match message:
            case Restarted(name=name) if name == VERIFIER:
                # The Dispatcher keeps a remote subtask's requests under its worker's name: it sends them again.
                self.report(Restarted(name=self.worker_name))
            case Record(event=Reviewed(verdict=verdict)) if verdict.passed:
                self.reviewed.append(message)
            case ReviewDone(verdict=verdict) if verdict.passed and not message.nothing_changed:
                if failure := self.send_result():
                    self.reviewed.clear()  # its work cannot reach the supervisor: not passed after all
                    verdict = Verdict(passed=False, findings=[failure], follow_up=RESEND_RESULT)
                    message = msgspec.structs.replace(message, verdict=verdict)
                for held in self.reviewed:
                    self.report(held)
                self.reviewed.clear()
                self.report(message)
            case _:
                self.report(message)

    def send_result(self) -> str:
        """The verified work, committed on its branch, up as a bundle (then ResultReady); why not, if not."""
        a = self.assign
        try:
            head = self.repos.commit_work(self.path, f"agentproxy: {a.subtask_id}")
            dest = self.spool / f"{a.assignment}.result.bundle"
            bundle = self.repos.write_result_bundle(a.repo, self.branch, a.base, dest)
        except WorkspaceError as exc:
            return f"the worker could not send the work back: {exc}"
        if bundle is not None:
            for index, count, data in bundles.chunks(bundle):
                self.send_up(protocol.Chunk(transfer=a.assignment, index=index, count=count, data=data))
            bundle.unlink(missing_ok=True)
        self.send_up(protocol.ResultReady(assignment=a.assignment, epoch=a.epoch, transfer=a.assignment, head=head))
        return ""

    def report(self, message: Msg) -> None:
        a = self.assign
        self.send_up(protocol.Report(assignment=a.assignment, epoch=a.epoch, message=message))  # type: ignore[arg-type]

    def ask_brain(self, request: str, review: ReviewInput) -> None:
        """On the Verifier's thread: the supervisor's brain reviews (its key stays there)."""
        a = self.assign
        judge = protocol.Judge(
            assignment=a.assignment,
            epoch=a.epoch,
            request=request,
            task=review.task,
            subtask=review.subtask,
            checks=review.checks,
            verdicts=review.verdicts,
            agent_summary=review.agent_summary,
            diff=review.diff,
        )
        self.send_up(judge)

    # -- the end ---------------------------------------------------------------------------

    def end(self, keep: bool, why: str) -> None:
        log.info("assignment %s (%s) %s", self.assign.assignment[:8], self.assign.subtask_id, why)
        self.release()
        if not keep:
            try:
                self.repos.remove_worktree(self.path)
            except WorkspaceError as exc:
                log.warning("could not remove %s: %s", self.path, exc)
        elif self.path.exists():
            log.info("kept %s for inspection", self.path)
        self.ended(self.assign.assignment)
        self.stop()

    def release(self) -> None:
        """Kill the agent (its process group) and stop the assignment's actors."""
        self.stopping.set()
        if self.supervisor is not None:
            self.directory.tell(self.worker_name, Cancel(reason="the assignment ended"))
            try:
                self.supervisor.stop(block=True, timeout=STOP_TIMEOUT_S)
            except pykka.Timeout:
                log.warning("the actors of %s did not stop in time", self.assign.subtask_id)
            self.supervisor = None

    def on_stop(self) -> None:
        self.release()


def options_of(settings: protocol.Settings, worktree: Path, agent_command: tuple[str, ...]) -> RunOptions:
    """The run's policy and limits as the supervisor sent them, with this host's agent and directory."""
    return RunOptions(
        working_dir=worktree,
        agent_command=agent_command,
        model=settings.model,
        checks=tuple(settings.checks),
        check_timeout_s=settings.check_timeout_s,
        setup=settings.setup,
        setup_timeout_s=settings.setup_timeout_s,
        silence_timeout_s=settings.silence_timeout_s,
        agent_timeout_s=settings.agent_timeout_s,
        deny_patterns=tuple(settings.deny_patterns) or DEFAULT_DENY,
        allow_tools=tuple(settings.allow_tools),
        max_question_follow_ups=settings.max_question_follow_ups,
        stuck_repeats=settings.stuck_repeats,
        rate_limit_max_wait_s=settings.rate_limit_max_wait_s,
        rate_limit_first_wait_s=settings.rate_limit_first_wait_s,
        brain_review=settings.brain_review,
    )
