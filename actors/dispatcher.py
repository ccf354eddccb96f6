"""Dispatcher: runs a plan's subtasks, as many at once as --parallel allows, through their life:
a tree (the Integrator), the environment and the base (the Verifier), the agent (a ClaudeWorker),
review and follow-ups, and the merge of verified work; then the whole is verified and landed.

A plan of one subtask, or --parallel 1, runs in place: one subtask at a time in the user's tree,
the first failure ends the run. Otherwise each subtask runs isolated in its own worktree; a failure
blocks only its dependents, a merge conflict becomes a resolve subtask, and the merged whole gets a
final review (a failure becomes a fix subtask) before it lands on the user's branch.

It keeps its own record of outstanding requests (per actor, per subtask) so that when the Supervisor
restarts an actor the requests it owed are sent again to the fresh instance.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka
from agentproxy.actors.agent_turns import AgentTurns
from agentproxy.actors.base import BRIDGE, INTEGRATOR, PLANNER, SUPERVISOR, WORKER_PREFIX, Directory, SupervisedActor
from agentproxy.actors.best_of import Races
from agentproxy.actors.merging import RUN, Merging
from agentproxy.actors.placement import Placement

from agentproxy.budget import Budget
from agentproxy.messages import (
    AgentCanStart,
    AgentSessionOpened,
    Answer,
    AssignmentLost,
    BeginRun,
    BestPicked,
    Cancel,
    Escalated,
    Integrated,
    LandDone,
    MakeTree,
    Msg,
    Plan,
    PlanMade,
    PlanReady,
    PlanRequest,
    Prepared,
    Release,
    RemoteSlots,
    Restarted,
    Review,
    ReviewDone,
    RunBase,
    RunSubtask,
    RunTask,
    SessionFinished,
    SessionStatus,
    Spent,
    StopWorker,
    Subtask,
    SubtaskDone,
    SubtaskFinished,
    SubtaskStarted,
    TreeReady,
)
from agentproxy.options import RunOptions
from agentproxy.run_plan import OWN_TREE, SETTLED, RunPlan, SubtaskState

RELEASE_TIMEOUT_S = 60.0  # removing worktrees is quick; a stuck git is not waited for longer


@dataclass(frozen=True)
class RunOutcome:
    session_id: str
    status: SessionStatus
    reason: str = ""
    cost_usd: float = 0.0
    commit: str | None = None


class Dispatcher(SupervisedActor):
    def __init__(
        self,
        name: str,
        directory: Directory,
        options: RunOptions,
        on_finished: Callable[[RunOutcome], None],
    ) -> None:
        super().__init__(name, directory)
        self.options = options
        self.on_finished = on_finished
        self.run: RunTask | None = None
        self.plan = RunPlan()
        self.isolated = False
        self.base_commit = ""  # the run's base: the final review reads the whole diff from here
        self.base_tree = ""  # and resolve, fix and final reviews are judged against its check results
        self.user_branch = ""
        self.landed_commit: str | None = None
        self.fixes = 0
        self.outstanding: dict[str, dict[str, Msg]] = {}  # actor name -> key -> the request not answered yet
        self.cost_usd = 0.0  # the agents'
        self.budget = Budget(options.max_budget_usd)  # the agents' and the brain's
        self.stopping_for = ""  # why the run is ending once its interrupted agents have ended their turns
        self.started_at = time.monotonic()
        self.finished = False
        self.places = Placement(self, options)
        self.agents = AgentTurns(self)
        self.merges = Merging(self)
        self.races = Races(self)

    def on_receive(self, message: Any) -> Any:
        if self.finished:
            return None
        if self.stopping_for and not isinstance(message, SubtaskDone | Spent | Cancel | Escalated):
            return None  # the budget is spent: nothing new starts while the interrupted agents end their turns
        match message:
            case RunTask():
                self.on_run_task(message)
            case PlanReady(plan=plan):
                self.on_plan(plan)
            case RunBase():
                self.on_run_base(message)
            case TreeReady():
                self.agents.on_tree_ready(message)
            case AgentCanStart():
                self.agents.on_agent_can_start(message)
            case Prepared():
                self.agents.on_prepared(message)
            case AgentSessionOpened(subtask_id=subtask_id, agent_session_id=agent_session_id):
                self.plan[subtask_id].agent_session_id = agent_session_id
            case SubtaskDone():
                self.on_subtask_done(message)
            case ReviewDone():
                self.on_review_done(message)
            case Answer():
                self.agents.on_answer(message)
            case Integrated():
                self.merges.on_integrated(message)
            case BestPicked():
                self.races.on_picked(message)
            case LandDone():
                self.merges.on_land_done(message)
            case Spent():
                self.agents.on_spent(message)
            case RemoteSlots(slots=slots):
                self.places.on_remote_slots(slots)
            case AssignmentLost():
                self.places.on_assignment_lost(message)
            case Restarted(name=name):
                self.on_restarted(name)
            case Escalated(name=name, reason=reason):
                self.finish("failed", f"the {name} actor kept crashing ({reason}); giving up")
            case Cancel(reason=reason):
                self.finish("budget" if self.stopping_for else "interrupted", reason)
        return None

    # -- the plan --------------------------------------------------------------------------

    def on_run_task(self, run: RunTask) -> None:
        self.run = run
        self.started_at = time.monotonic()
        if run.plan is not None:
            self.record(PlanMade(plan=run.plan, brain="recorded"))
            self.on_plan(run.plan)
        else:
            self.send(PLANNER, RUN, PlanRequest(session_id=run.session_id, task=run.task))

    def on_plan(self, plan: Plan) -> None:
        assert self.run is not None
        self.done_with(PLANNER, RUN)
        self.plan = RunPlan(plan.subtasks)
        for state in self.plan:
            state.agent_session_id = self.run.agent_sessions.get(state.id)
            state.agent_cost_usd = self.run.agent_costs.get(state.id, 0.0)
            state.agent = self.run.agents.get(state.id, "")  # its agent session is that backend's
            if state.id in self.run.done_subtasks:
                state.status = "done"
                # Recorded again, so that this run's events alone say what is done if it stops too.
                self.record(SubtaskFinished(subtask_id=state.id, status="done", reason="finished in an earlier run"))
            elif state.id in self.run.verified_subtasks:
                state.verified = True
        # Remote workers need branches to carry the work: a run with a broker is isolated whatever its size.
        self.isolated = (
            (len(plan.subtasks) > 1 and self.options.parallel > 1)
            or self.options.listen is not None
            or self.options.best_of > 1
        )
        resumed = bool(self.run.done_subtasks or self.run.verified_subtasks or self.run.agent_sessions)
        self.send(
            INTEGRATOR,
            RUN,
            BeginRun(session_id=self.run.session_id, task=self.run.task, isolated=self.isolated, resumed=resumed),
        )

    def on_run_base(self, base: RunBase) -> None:
        self.done_with(INTEGRATOR, RUN)
        if base.error:
            self.finish("failed", f"cannot prepare the repository: {base.error}")
            return
        self.base_commit, self.base_tree, self.user_branch = base.commit, base.tree, base.branch
        self.schedule()

    def schedule(self) -> None:
        """Start every ready subtask a slot is free for, here or on a worker host; when nothing is left, conclude."""
        raced = False
        for state in self.plan.ready():
            if state.verified:
                self.merges.integrate(state)  # resumed: its work passed review before pa stopped
                continue
            if state.kind == "plan" and self.options.best_of > 1:
                self.races.start(state)
                raced = True
                continue
            place = self.places.free_slot(state)
            if place is None:
                break
            self.start_subtask(state, remote=place == "remote")
        if raced:
            self.schedule()  # its attempts are ready now
            return
        if not self.plan.busy() and not self.plan.ready():
            self.merges.conclude()

    def start_subtask(self, state: SubtaskState, remote: bool = False) -> None:
        """Its tree first (the Integrator), then its environment and base (the Verifier), then the agent."""
        state.worker, state.remote = f"{WORKER_PREFIX}{state.id}", remote
        state.agent = state.agent or self.agent_for(state.subtask)
        if remote:  # an agent session recorded earlier lives on some worker host: a new one starts
            state.agent_session_id, state.agent_cost_usd = None, 0.0
        started = SubtaskStarted(
            subtask_id=state.id, title=state.subtask.title, attempt=state.attempt, agent=state.agent
        )
        self.record(started)
        self.make_tree(state)

    def agent_for(self, subtask: Subtask) -> str:
        """The backend the brain picked for it when the run offers that one, else the run's first."""
        agents = self.options.agents
        return subtask.agent if subtask.agent in agents else agents[0]

    def make_tree(self, state: SubtaskState) -> None:
        state.status = "tree"
        make = MakeTree(subtask_id=state.id, integration=state.kind not in OWN_TREE, remote=state.remote)
        self.send(INTEGRATOR, state.id, make)

    # -- results ---------------------------------------------------------------------------

    def on_subtask_done(self, done: SubtaskDone) -> None:
        assert self.run is not None
        state = self.plan[done.subtask_id]
        state.agent_session_id = done.agent_session_id or state.agent_session_id
        self.done_with(state.worker, state.id)
        if self.stopping_for:
            state.status = "pending"  # its turn was interrupted, its session kept: a resume goes on with it
            if not any(s.status == "running" for s in self.plan):
                self.finish("budget", self.stopping_for)
            return
        if not done.ok:
            self.end_subtask(state, "failed", done.reason)
            return
        self.review(state, done.summary)

    def review(self, state: SubtaskState, summary: str) -> None:
        assert self.run is not None
        state.status, state.summary = "reviewing", summary
        request = Review(
            task=self.run.task,
            subtask=state.subtask,
            cwd=state.cwd,
            agent_summary=summary,
            attempt=state.attempt,
            base_commit=state.base_commit,
            base_tree=state.base_tree,
        )
        self.send(state.checker, state.id, request)

    def on_review_done(self, review: ReviewDone) -> None:
        state = self.plan[review.subtask_id]
        self.done_with(state.checker, review.subtask_id)
        if state.kind == "final":
            self.merges.on_final_review(state, review)
        else:
            self.agents.judge(state, review)

    # -- ending subtasks -------------------------------------------------------------------

    def end_subtask(self, state: SubtaskState, status: str, reason: str = "", then_schedule: bool = True) -> None:
        state.status, state.reason = status, reason
        self.forget(state.id)
        self.record(SubtaskFinished(subtask_id=state.id, status=status, reason=reason))  # type: ignore[arg-type]
        self.directory.tell(SUPERVISOR, StopWorker(name=state.worker))
        self.places.end(state, merged=status == "done")
        if state.kind == "attempt":
            self.races.on_attempt_ended(state, status, reason)
            if then_schedule and not self.finished:
                self.schedule()
            return
        if status == "failed" and (not self.isolated or state.kind != "plan"):
            self.finish("failed", f"subtask {state.id} ({state.subtask.title}) failed: {reason}")
            return
        if status == "failed":
            for blocked in self.plan.blocked_by(state.id):
                self.record(SubtaskFinished(subtask_id=blocked.id, status="blocked", reason=blocked.reason))
        if state.kind == "fix" and status == "done":
            self.merges.after_fix()
        elif then_schedule:
            self.schedule()

    # -- supervision -----------------------------------------------------------------------

    def send(self, name: str, key: str, request: Msg) -> None:
        self.outstanding.setdefault(name, {})[key] = request
        self.directory.tell(name, request)

    def done_with(self, name: str, key: str) -> bool:
        """The request is answered; False when it was already (a restarted actor's predecessor answered too)."""
        return self.outstanding.get(name, {}).pop(key, None) is not None

    def forget(self, key: str) -> None:
        for requests in self.outstanding.values():
            requests.pop(key, None)

    def on_restarted(self, name: str) -> None:
        if name == BRIDGE:
            self.places.on_bridge_restarted()
            return
        if name == INTEGRATOR and self.run is not None and self.base_commit:  # first, the run it is in
            again = BeginRun(
                session_id=self.run.session_id,
                task=self.run.task,
                isolated=self.isolated,
                base=self.base_commit,
                branch=self.user_branch,
            )
            self.directory.tell(INTEGRATOR, again)
        for key, request in list(self.outstanding.get(name, {}).items()):
            if isinstance(request, RunSubtask):
                state = self.plan[key]
                request = self.agents.resume_request(state, request.prompt)
            self.send(name, key, request)

    # -- the end ---------------------------------------------------------------------------

    def finish(self, status: SessionStatus, reason: str = "") -> None:
        if self.finished:
            return
        self.finished = True
        assert self.run is not None
        for state in self.plan:
            if state.status in ("running", "reviewing", "asking"):
                self.directory.tell(state.worker, Cancel(reason=reason or status))
            if state.status != "pending" and state.status not in SETTLED:
                self.places.end(state, merged=False)
        self.release_trees(status)
        duration = time.monotonic() - self.started_at
        self.record(SessionFinished(status=status, reason=reason, cost_usd=self.cost_usd, duration_s=duration))
        commit = self.landed_commit if status == "done" else None
        self.on_finished(
            RunOutcome(
                session_id=self.run.session_id, status=status, reason=reason, cost_usd=self.cost_usd, commit=commit
            )
        )

    def release_trees(self, status: str) -> None:
        """The Integrator removes what is merged and keeps what is not; waited for, within a bound."""
        # Should it not answer in time, the worktrees stay: pa -s ID --discard removes them.
        with contextlib.suppress(pykka.Timeout, pykka.ActorDeadError):
            merged = [s.id for s in self.plan if s.kind in OWN_TREE and s.status == "done"]
            self.directory.ask(INTEGRATOR, Release(status=status, merged=merged), timeout=RELEASE_TIMEOUT_S)
