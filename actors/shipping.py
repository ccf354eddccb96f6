"""The Bridge's part that moves work: an assignment's base down as a bundle, its verified branch back
up (fetched before its review's verdict is let through), and the supervisor's brain reviewing for a
worker's Verifier (the brain's key stays here).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
from agentproxy.actors.base import DISPATCHER, INTEGRATOR

from agentproxy.brain import ReviewInput
from agentproxy.bridge import bundles, protocol
from agentproxy.errors import WorkspaceError
from agentproxy.messages import (
    AssignSubtask,
    BrainVerdict,
    BundleReady,
    FetchResult,
    Msg,
    Notice,
    ResultFetched,
    ReviewDone,
    SubtaskAssigned,
    SubtaskDone,
    Verdict,
)
from agentproxy.options import RunOptions

if TYPE_CHECKING:
    from agentproxy.actors.bridge import Bridge


@dataclass
class Assignment:
    id: str
    epoch: int
    request: AssignSubtask
    peer: bytes = b""  # b"": queued, no worker has it yet
    sent: bool = False  # the Assign and its bundle are on their way: Deliver may follow
    pending: list[Msg] = field(default_factory=list)  # for its actors, before it was sent
    held: list[Msg] | None = None  # from its actors, held while its result is fetched
    result: bundles.Reassembly | None = None
    result_path: Path | None = None


class Shipping:
    """Runs on the Bridge's thread, with its state."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge

    def write_bundle(self, assignment: Assignment, haves: list[str]) -> None:
        """git bundle runs on a thread of its own: a large repository must not stall the mailbox."""
        b = self.bridge
        request, dest = assignment.request, b.spool / f"{assignment.id}.base.bundle"
        ref = b.actor_ref

        def write() -> None:
            try:
                path = bundles.write_base_bundle(b.options.working_dir, request.base, request.branch, dest, haves)
                ref.tell(BundleReady(assignment=assignment.id, path=str(path or "")))
            except WorkspaceError as exc:
                ref.tell(BundleReady(assignment=assignment.id, error=str(exc)))

        threading.Thread(target=write, name=f"bundle-{request.subtask_id}", daemon=True).start()

    def on_bundle_ready(self, ready: BundleReady) -> None:
        b = self.bridge
        assignment = next((a for a in b.assignments.values() if a.id == ready.assignment), None)
        if assignment is None or assignment.peer not in b.workers:
            return  # lost meanwhile: the Dispatcher starts it again
        request = assignment.request
        if ready.error:
            del b.assignments[request.subtask_id]
            b.fleet.release(assignment.peer)
            done = SubtaskDone(subtask_id=request.subtask_id, ok=False, reason=f"cannot send its base: {ready.error}")
            b.directory.tell(DISPATCHER, done)
            return
        transfer = assignment.id if ready.path else ""
        b.fleet.send(
            assignment.peer,
            protocol.Assign(
                assignment=assignment.id,
                epoch=assignment.epoch,
                session_id=request.session_id,
                subtask_id=request.subtask_id,
                repo=b.repo,
                branch=request.branch,
                base=request.base,
                transfer=transfer,
                settings=settings_of(b.options),
            ),
        )
        size = 0
        if ready.path:
            path = Path(ready.path)
            size = path.stat().st_size
            for index, count, data in bundles.chunks(path):
                b.fleet.send(assignment.peer, protocol.Chunk(transfer=transfer, index=index, count=count, data=data))
            path.unlink(missing_ok=True)
        assignment.sent = True
        b.workers[assignment.peer].repos.setdefault(b.repo, []).append(request.base)  # what it holds now
        worker = b.workers[assignment.peer].name
        b.record(
            SubtaskAssigned(subtask_id=request.subtask_id, worker=worker, epoch=assignment.epoch, bundle_bytes=size)
        )
        for message in assignment.pending:
            b.deliver(assignment, message)
        assignment.pending.clear()

    def on_chunk(self, assignment: Assignment, chunk: protocol.Chunk) -> None:
        b = self.bridge
        if assignment.result is None:
            assignment.result_path = b.spool / f"{assignment.id}.result.bundle"
            assignment.result = bundles.Reassembly(assignment.result_path)
        try:
            assignment.result.add(chunk.index, chunk.count, chunk.data)
        except ValueError as exc:
            b.record(Notice(level="warning", text=f"[{assignment.request.subtask_id}] a bad result chunk: {exc}"))

    def on_result_ready(self, assignment: Assignment, ready: protocol.ResultReady) -> None:
        """Fetched before anything after it is let through: a review that passed must find its branch here."""
        b = self.bridge
        assignment.held = []
        bundle = str(assignment.result_path) if assignment.result_path else ""
        fetch = FetchResult(subtask_id=assignment.request.subtask_id, bundle=bundle, head=ready.head)
        b.directory.tell(INTEGRATOR, fetch)

    def on_result_fetched(self, fetched: ResultFetched) -> None:
        b = self.bridge
        assignment = b.assignments.get(fetched.subtask_id)
        if assignment is None or assignment.held is None:
            return
        held, assignment.held, assignment.result = assignment.held, None, None
        if assignment.result_path is not None:
            assignment.result_path.unlink(missing_ok=True)
        for message in held:
            if fetched.error and isinstance(message, ReviewDone) and message.verdict.passed:
                findings = [f"its verified branch could not be fetched from the worker: {fetched.error}"]
                verdict = Verdict(passed=False, findings=findings, follow_up="Commit nothing; finish the task again.")
                message = msgspec.structs.replace(message, verdict=verdict)
            b.route(message)

    def judge(self, assignment: Assignment, judge: protocol.Judge) -> None:
        """The brain's review of a remote subtask, here where its key is; a brain call can take long."""
        b = self.bridge
        review = ReviewInput(
            task=judge.task,
            subtask=judge.subtask,
            checks=judge.checks,
            verdicts=judge.verdicts,
            agent_summary=judge.agent_summary,
            diff=judge.diff,
            knowledge=b.board.read(),
        )
        ref = b.actor_ref

        def call() -> None:
            verdict = b.brain.review(review)
            ref.tell(
                BrainVerdict(assignment=assignment.id, epoch=assignment.epoch, request=judge.request, verdict=verdict)
            )

        threading.Thread(target=call, name=f"judge-{assignment.request.subtask_id}", daemon=True).start()

    def on_brain_verdict(self, answer: BrainVerdict) -> None:
        b = self.bridge
        assignment = next((a for a in b.assignments.values() if a.id == answer.assignment), None)
        if assignment is not None and assignment.epoch == answer.epoch:
            judged = protocol.Judged(
                assignment=answer.assignment, epoch=answer.epoch, request=answer.request, verdict=answer.verdict
            )
            b.fleet.send(assignment.peer, judged)


def settings_of(options: RunOptions) -> protocol.Settings:
    """What of the run's policy and limits an assignment carries to its worker (no secrets among them)."""
    return protocol.Settings(
        model=options.model,
        checks=list(options.checks),
        check_timeout_s=options.check_timeout_s,
        setup=options.setup,
        setup_timeout_s=options.setup_timeout_s,
        silence_timeout_s=options.silence_timeout_s,
        agent_timeout_s=options.agent_timeout_s,
        deny_patterns=list(options.deny_patterns),
        allow_tools=list(options.allow_tools),
        max_question_follow_ups=options.max_question_follow_ups,
        stuck_repeats=options.stuck_repeats,
        rate_limit_max_wait_s=options.rate_limit_max_wait_s,
        rate_limit_first_wait_s=options.rate_limit_first_wait_s,
        brain_review=options.brain_review,
    )
