"""Where the Dispatcher's subtasks run: here (up to --local-slots) or on the worker hosts the Bridge
knows (as many as their slots), and what happens to a subtask whose worker host is lost.

A remote subtask is a branch the Integrator starts without a worktree, an assignment the Bridge
sends to a worker host with its base as a bundle, and a RemoteAgent that stands where its
ClaudeWorker would. A lost worker's subtask starts again from its base as its next attempt: a new
assignment, a new epoch, whichever worker has room.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from agentproxy.actors.base import BRIDGE

from agentproxy.messages import AssignmentLost, AssignSubtask, EndAssignment, Notice, TreeReady
from agentproxy.options import RunOptions
from agentproxy.run_plan import OWN_TREE, SETTLED, SubtaskState

if TYPE_CHECKING:
    from agentproxy.actors.dispatcher import Dispatcher

Place = Literal["local", "remote"]


class Placement:
    """The Dispatcher's part that places subtasks; runs on its thread, with its state."""

    def __init__(self, dispatcher: Dispatcher, options: RunOptions) -> None:
        self.dispatcher = dispatcher
        self.listen = options.listen
        self.parallel = options.parallel
        given = self.listen.local_slots if self.listen is not None else None
        self.local_slots = self.parallel if given is None else given
        self.remote_slots = 0  # what the live worker hosts can run at once, as the Bridge last said
        self.told_waiting = False

    def free_slot(self, state: SubtaskState) -> Place | None:
        """Where the subtask can start now, if anywhere. Resolves and fixes work in the integration
        worktree: always here."""
        d = self.dispatcher
        active = d.plan.active()
        if state.kind not in OWN_TREE:
            return "local"
        if not d.isolated:
            return "local" if not active else None
        if sum(1 for s in active if not s.remote and s.kind in OWN_TREE) < min(self.local_slots, self.parallel):
            return "local"
        # Worker hosts run Claude Code: another vendor's subtask, or a best-of attempt, waits for a local slot.
        remote_fits = state.kind == "plan" and d.agent_for(state.subtask) == "claude"
        if remote_fits and sum(1 for s in active if s.remote) < self.remote_slots:
            return "remote"
        self.tell_waiting_for_workers()
        return None

    def tell_waiting_for_workers(self) -> None:
        """Once a run: nothing can start until a worker host joins (--local-slots 0)."""
        d = self.dispatcher
        if self.remote_slots or self.local_slots or d.plan.active() or self.told_waiting or self.listen is None:
            return
        self.told_waiting = True
        d.record(Notice(text=f"waiting for a worker host: pa-worker --connect {self.listen.endpoint} (docs/remote.md)"))

    def on_remote_slots(self, slots: int) -> None:
        self.remote_slots = slots
        if self.dispatcher.base_commit:  # the run has begun
            self.dispatcher.schedule()

    def assign(self, state: SubtaskState, ready: TreeReady) -> None:
        """Its branch is made: the Bridge sends it to a worker host; its RemoteAgent stands in here."""
        d = self.dispatcher
        assert d.run is not None
        d.directory.tell(
            BRIDGE,
            AssignSubtask(
                subtask_id=state.id, session_id=d.run.session_id, branch=ready.branch, base=ready.base_commit
            ),
        )
        d.agents.start_worker(state)

    def on_assignment_lost(self, lost: AssignmentLost) -> None:
        """Its worker host is gone: the subtask starts again from its base, as its next attempt, elsewhere."""
        d = self.dispatcher
        state = d.plan.get(lost.subtask_id)
        if state is None or not state.remote or state.status == "pending" or state.status in SETTLED:
            return
        if state.verified:
            return  # its verified branch is here already (fetched before the review's verdict): it merges on
        d.forget(state.id)
        state.attempt += 1
        state.status, state.worker_started, state.agent_session_id, state.agent_cost_usd = "pending", False, None, 0.0
        text = f"[{state.id}] worker {lost.worker} lost ({lost.reason}): started again as attempt {state.attempt}"
        d.record(Notice(level="warning", text=text))
        d.schedule()

    def on_bridge_restarted(self) -> None:
        """What the Bridge knew of the worker hosts died with it: their subtasks start again."""
        for state in self.dispatcher.plan:
            self.on_assignment_lost(AssignmentLost(subtask_id=state.id, worker="?", reason="the bridge restarted"))

    def end(self, state: SubtaskState, merged: bool) -> None:
        """A remote subtask ended: its worker host removes its worktree, or keeps it when not merged."""
        if state.remote:
            self.dispatcher.directory.tell(BRIDGE, EndAssignment(subtask_id=state.id, merged=merged))
