"""Bridge: the supervisor's side of the remote workers (docs/bridge.md), behind the broker's thread.

It keeps the live workers and their slots, assigns remote subtasks (each with a new epoch), sends an
assignment its base as a git bundle, and passes messages between the supervisor's actors and each
assignment's actors on its worker. Fencing: a message is let through only when its assignment and
epoch are current and it comes from the worker that holds them; anything else is dropped, so a
worker declared dead and back later can neither merge nor record anything. A lost worker's subtasks
go back to the Dispatcher, which starts them again (a new epoch, elsewhere).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentproxy.actors.base import CLARIFIER, CONTEXT_KEEPER, DISPATCHER, Directory, SupervisedActor
from agentproxy.actors.shipping import Assignment, Shipping

from agentproxy import config
from agentproxy.brain import Brain
from agentproxy.bridge import bundles, protocol
from agentproxy.bridge.fleet import Fleet
from agentproxy.knowledge import KnowledgeBoard
from agentproxy.messages import (
    Ask,
    AssignmentLost,
    AssignSubtask,
    BrainVerdict,
    BundleReady,
    EndAssignment,
    JudgeTool,
    Msg,
    Notice,
    PeerLost,
    PeersSaid,
    Record,
    RecordAll,
    RemoteSlots,
    ResultFetched,
    ToAgent,
    WorkerJoined,
    WorkerLeft,
)
from agentproxy.options import RunOptions


@dataclass
class Worker:
    name: str
    slots: int
    repos: dict[str, list[str]]  # repository id -> commits its clone holds: bundles are made against them


class Bridge(SupervisedActor):
    def __init__(
        self,
        name: str,
        directory: Directory,
        options: RunOptions,
        fleet: Fleet,
        run_key: str,
        brain: Brain,
        board: KnowledgeBoard,
    ) -> None:
        super().__init__(name, directory)
        self.options = options
        self.fleet = fleet
        self.run_key = run_key  # how the fleet knows this run
        self.brain = brain
        self.board = board
        self.workers: dict[bytes, Worker] = {}
        self.assignments: dict[str, Assignment] = {}  # subtask id -> its current assignment
        self.epochs: dict[str, int] = {}  # subtask id -> its latest epoch
        self.repo = ""
        self.spool = Path(tempfile.mkdtemp(prefix="bridge-", dir=config.data_dir()))  # bundles in and out
        self.shipping = Shipping(self)

    def on_start(self) -> None:
        self.repo = bundles.repo_id(self.options.working_dir)

    def release(self) -> None:
        shutil.rmtree(self.spool, ignore_errors=True)

    def on_receive(self, message: Any) -> Any:
        match message:
            case PeersSaid(said=said):
                for peer, frame in said:
                    self.on_peer_said(peer, frame)
            case PeerLost(peer=peer, reason=reason):
                self.lose(peer, reason)
            case AssignSubtask():
                self.queue(message)
            case ToAgent(subtask_id=subtask_id, message=inner):
                self.to_agent(subtask_id, inner)
            case EndAssignment(subtask_id=subtask_id, merged=merged):
                self.end(subtask_id, merged)
            case ResultFetched():
                self.shipping.on_result_fetched(message)
            case BundleReady():
                self.shipping.on_bundle_ready(message)
            case BrainVerdict():
                self.shipping.on_brain_verdict(message)
        return None

    # -- workers ---------------------------------------------------------------------------

    def on_peer_said(self, peer: bytes, said: protocol.AnyBridgeMsg) -> None:
        if isinstance(said, protocol.Hello):
            self.on_hello(peer, said)
            return
        worker = self.workers.get(peer)
        if worker is None:
            if not isinstance(said, protocol.Heartbeat):
                self.drop_stale(peer, said, "from a worker the bridge does not know (declared dead, or new)")
            self.fleet.send(peer, protocol.Disconnect(reason="unknown worker: announce yourself again"))
            return
        match said:
            case protocol.Report() | protocol.Chunk() | protocol.ResultReady() | protocol.Judge():
                self.from_assignment(peer, said)
            case protocol.Leaving(reason=reason):
                self.lose(peer, f"it is stopping ({reason or 'SIGTERM'}); its work is handed back")

    def on_hello(self, peer: bytes, hello: protocol.Hello) -> None:
        known = peer in self.workers
        self.workers[peer] = Worker(name=hello.name, slots=hello.slots, repos=hello.repos)
        self.fleet.send(peer, protocol.Welcome(heartbeat_s=self.heartbeat_s, liveness=self.liveness))
        for held in hello.running:
            current = self.current(held.assignment, held.epoch, peer)
            if current is None and not self.fleet.another_runs(held.assignment, self.run_key):
                self.fleet.send(
                    peer, protocol.Revoke(assignment=held.assignment, epoch=held.epoch, reason="no longer yours")
                )
        if not known:
            self.record(WorkerJoined(worker=hello.name, slots=hello.slots, capabilities=hello.capabilities))
            self.slots_changed()
        self.assign_queued()

    def lose(self, peer: bytes, reason: str) -> None:
        worker = self.workers.pop(peer, None)
        if worker is None:
            return
        self.record(WorkerLeft(worker=worker.name, reason=reason))
        for assignment in [a for a in self.assignments.values() if a.peer == peer]:
            del self.assignments[assignment.request.subtask_id]
            lost = AssignmentLost(subtask_id=assignment.request.subtask_id, worker=worker.name, reason=reason)
            self.directory.tell(DISPATCHER, lost)
        self.slots_changed()

    def slots_changed(self) -> None:
        self.directory.tell(DISPATCHER, RemoteSlots(slots=sum(w.slots for w in self.workers.values())))

    @property
    def heartbeat_s(self) -> float:
        return self.fleet.broker.heartbeat_s

    @property
    def liveness(self) -> int:
        return self.fleet.broker.liveness

    # -- assigning -------------------------------------------------------------------------

    def queue(self, request: AssignSubtask) -> None:
        epoch = self.epochs.get(request.subtask_id, 0) + 1
        self.epochs[request.subtask_id] = epoch
        assignment = Assignment(id=uuid.uuid4().hex, epoch=epoch, request=request)
        self.assignments[request.subtask_id] = assignment
        self.fleet.claim(assignment.id, self.run_key)
        self.assign_queued()

    def assign_queued(self) -> None:
        for assignment in self.assignments.values():
            if assignment.peer:
                continue
            peer = self.freest_worker()
            if peer is None:
                return  # every slot is busy (this run's assignments, or other runs' on the same workers)
            assignment.peer = peer
            self.shipping.write_bundle(assignment, self.workers[peer].repos.get(self.repo, []))

    def freest_worker(self) -> bytes | None:
        """The worker with the most free slots, one of them reserved; None if none has one."""
        by_free = sorted(self.workers, key=lambda peer: -self.fleet.free(peer, self.workers[peer].slots))
        return next((peer for peer in by_free if self.fleet.reserve(peer, self.workers[peer].slots)), None)

    def to_agent(self, subtask_id: str, message: Msg) -> None:
        assignment = self.assignments.get(subtask_id)
        if assignment is None:
            return  # lost or ended: what it was told no longer matters
        if assignment.sent:
            self.deliver(assignment, message)
        else:
            assignment.pending.append(message)

    def deliver(self, assignment: Assignment, message: Msg) -> None:
        deliver = protocol.Deliver(assignment=assignment.id, epoch=assignment.epoch, message=message)  # type: ignore[arg-type]
        self.fleet.send(assignment.peer, deliver)

    def end(self, subtask_id: str, merged: bool) -> None:
        assignment = self.assignments.pop(subtask_id, None)
        if assignment is None:
            return
        if assignment.peer in self.workers:
            self.fleet.release(assignment.peer)
            self.fleet.send(
                assignment.peer, protocol.Finish(assignment=assignment.id, epoch=assignment.epoch, keep=not merged)
            )
        self.assign_queued()

    # -- from assignments ------------------------------------------------------------------

    def current(self, assignment_id: str, epoch: int, peer: bytes) -> Assignment | None:
        """The assignment, if this worker holds it under this epoch now."""
        return next(
            (a for a in self.assignments.values() if a.id == assignment_id and a.epoch == epoch and a.peer == peer),
            None,
        )

    def from_assignment(self, peer: bytes, said: Any) -> None:
        if isinstance(said, protocol.Chunk):
            assignment = next((a for a in self.assignments.values() if a.id == said.transfer and a.peer == peer), None)
        else:
            assignment = self.current(said.assignment, said.epoch, peer)
        if assignment is None:
            self.drop_stale(peer, said, "of an assignment that is not current (fenced off)")
            return
        match said:
            case protocol.Chunk():
                self.shipping.on_chunk(assignment, said)
            case protocol.ResultReady():
                self.shipping.on_result_ready(assignment, said)
            case protocol.Judge():
                self.shipping.judge(assignment, said)
            case protocol.Report(message=message) if assignment.held is not None:
                assignment.held.append(message)
            case protocol.Report(message=message):
                self.route(message)

    def route(self, message: Msg) -> None:
        match message:
            case Record() | RecordAll():
                self.directory.tell(CONTEXT_KEEPER, message)
            case Ask() | JudgeTool():
                self.directory.tell(CLARIFIER, message)
            case _:
                self.directory.tell(DISPATCHER, message)

    def drop_stale(self, peer: bytes, said: Any, why: str) -> None:
        what = type(said).__name__
        name = self.workers[peer].name if peer in self.workers else peer.decode("utf-8", "replace")
        self.record(Notice(level="warning", text=f"dropped a {what} from worker {name}: {why}"))
