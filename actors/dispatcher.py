"""Dispatcher: runs a plan's subtasks on worker slots, sends finished work to review, follows up
on failed verdicts, and closes the session (commit, outcome).

It keeps its own record of outstanding work (what it asked of which actor, not yet answered) so
that when the Supervisor restarts an actor the request is sent again to the fresh instance.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.base import PLANNER, SUPERVISOR, VERIFIER, WORKER_PREFIX, Directory, SupervisedActor
from agentproxy.errors import WorkspaceError
from agentproxy.messages import (
    AgentSessionOpened,
    Cancel,
    Committed,
    Escalated,
    FollowUp,
    FollowUpSent,
    Msg,
    Notice,
    Plan,
    PlanMade,
    PlanReady,
    PlanRequest,
    Restarted,
    Review,
    ReviewDone,
    RunSubtask,
    RunTask,
    SessionFinished,
    SessionStatus,
    StartWorker,
    StopWorker,
    Subtask,
    SubtaskDone,
    SubtaskFinished,
    SubtaskStarted,
)
from agentproxy.options import RunOptions
from agentproxy.workspace import Workspace


@dataclass(frozen=True)
class RunOutcome:
    session_id: str
    status: SessionStatus
    reason: str = ""
    cost_usd: float = 0.0
    commit: str | None = None


@dataclass
class SubtaskState:
    subtask: Subtask
    status: str = "pending"  # pending | running | reviewing | done | failed
    attempt: int = 1
    agent_session_id: str | None = None
    worker: str = ""
    base_commit: str = ""  # HEAD when the subtask started: the review reads the diff from here


@dataclass
class Slots:
    """How many subtasks may run at once; a later issue widens it to parallel worktrees."""

    size: int = 1
    busy: set[str] = field(default_factory=set)

    def free(self) -> int:
        return self.size - len(self.busy)


class Dispatcher(SupervisedActor):
    def __init__(
        self,
        name: str,
        directory: Directory,
        options: RunOptions,
        on_finished: Callable[[RunOutcome], None],
        slots: int = 1,
    ) -> None:
        super().__init__(name, directory)
        self.options = options
        self.on_finished = on_finished
        self.slots = Slots(size=slots)
        self.run: RunTask | None = None
        self.states: dict[str, SubtaskState] = {}
        self.outstanding: dict[str, Msg] = {}  # actor name -> the request it has not answered yet
        self.cost_usd = 0.0
        self.started_at = time.monotonic()
        self.finished = False

    def on_receive(self, message: Any) -> Any:
        if self.finished:
            return None
        match message:
            case RunTask():
                self.on_run_task(message)
            case PlanReady(plan=plan):
                self.on_plan(plan)
            case AgentSessionOpened(subtask_id=subtask_id, agent_session_id=agent_session_id):
                self.states[subtask_id].agent_session_id = agent_session_id
            case SubtaskDone():
                self.on_subtask_done(message)
            case ReviewDone():
                self.on_review_done(message)
            case Restarted(name=name):
                self.on_restarted(name)
            case Escalated(name=name, reason=reason):
                self.finish("failed", f"the {name} actor kept crashing ({reason}); giving up")
            case Cancel(reason=reason):
                self.finish("interrupted", reason)
        return None

    # -- planning and scheduling -----------------------------------------------------------

    def on_run_task(self, run: RunTask) -> None:
        self.run = run
        self.started_at = time.monotonic()
        self.snapshot_uncommitted()
        if run.plan is not None:
            self.record(PlanMade(plan=run.plan, brain="recorded"))
            self.on_plan(run.plan)
        else:
            self.send(PLANNER, PlanRequest(session_id=run.session_id, task=run.task))

    def on_plan(self, plan: Plan) -> None:
        assert self.run is not None
        self.outstanding.pop(PLANNER, None)
        for subtask in plan.subtasks:
            state = SubtaskState(subtask=subtask)
            if subtask.id in self.run.done_subtasks:
                state.status = "done"
                # Recorded again, so that this run's events alone say what is done if it stops too.
                self.record(SubtaskFinished(subtask_id=subtask.id, status="done", reason="finished in an earlier run"))
            self.states[subtask.id] = state
        self.schedule()

    def schedule(self) -> None:
        for state in self.ready():
            if self.slots.free() <= 0:
                break
            self.start_subtask(state)
        if not self.slots.busy:
            failed = [s for s in self.states.values() if s.status == "failed"]
            if failed:
                self.finish("failed", f"subtask {failed[0].subtask.id} failed")
            elif all(s.status == "done" for s in self.states.values()):
                self.finish("done")
            else:
                self.finish("failed", "no subtask can run: the plan's dependencies cannot be met")

    def ready(self) -> list[SubtaskState]:
        done = {sid for sid, s in self.states.items() if s.status == "done"}
        return [
            s for s in self.states.values() if s.status == "pending" and all(d in done for d in s.subtask.depends_on)
        ]

    def start_subtask(self, state: SubtaskState) -> None:
        assert self.run is not None
        state.worker = f"{WORKER_PREFIX}{state.subtask.id}"
        state.status = "running"
        state.base_commit = self.head()
        self.slots.busy.add(state.subtask.id)
        self.directory.ask(SUPERVISOR, StartWorker(name=state.worker))
        self.record(SubtaskStarted(subtask_id=state.subtask.id, title=state.subtask.title, attempt=state.attempt))
        resume = self.run.resume_agent_session if len(self.states) == 1 else None
        self.send(
            state.worker,
            RunSubtask(
                subtask=state.subtask,
                prompt=subtask_prompt(self.run, state.subtask, len(self.states)),
                cwd=self.run.working_dir,
                task=self.run.task,
                resume_agent_session=resume,
            ),
        )

    def snapshot_uncommitted(self) -> None:
        """Commit what the user left uncommitted, so the agent's diff, review and commit are its own."""
        assert self.run is not None
        message = f"agentproxy: uncommitted changes found before: {commit_subject(self.run.task)}"
        try:
            commit = Workspace(Path(self.run.working_dir)).commit_all(message)
        except WorkspaceError as exc:
            self.record(Notice(level="warning", text=f"could not set your uncommitted changes apart: {exc}"))
            return
        if commit:
            self.record(Notice(text=f"your uncommitted changes were committed first, as {commit[:10]}"))

    def head(self) -> str:
        assert self.run is not None
        try:
            return Workspace(Path(self.run.working_dir)).head()
        except WorkspaceError:
            return ""  # a review without a diff is still a review

    # -- results ---------------------------------------------------------------------------

    def on_subtask_done(self, done: SubtaskDone) -> None:
        assert self.run is not None
        state = self.states[done.subtask_id]
        self.cost_usd += done.cost_usd
        state.agent_session_id = done.agent_session_id or state.agent_session_id
        self.outstanding.pop(state.worker, None)
        if not done.ok:
            self.end_subtask(state, "failed", done.reason)
            return
        state.status = "reviewing"
        self.send(
            VERIFIER,
            Review(
                task=self.run.task,
                subtask=state.subtask,
                cwd=self.run.working_dir,
                agent_summary=done.summary,
                attempt=state.attempt,
                base_commit=state.base_commit,
            ),
        )

    def on_review_done(self, review: ReviewDone) -> None:
        state = self.states[review.subtask_id]
        self.outstanding.pop(VERIFIER, None)
        if review.verdict.passed:
            self.end_subtask(state, "done")
        elif state.attempt > self.options.max_attempts:
            findings = "; ".join(review.verdict.findings) or "verification failed"
            self.end_subtask(state, "failed", f"still failing after {self.options.max_attempts} follow-ups: {findings}")
        else:
            state.attempt += 1
            state.status = "running"
            self.record(FollowUpSent(subtask_id=state.subtask.id, attempt=state.attempt, instruction=review.verdict.follow_up))
            self.directory.tell(
                state.worker,
                FollowUp(subtask_id=state.subtask.id, instruction=review.verdict.follow_up, attempt=state.attempt),
            )
            # Should the worker crash now, its fresh instance resumes the agent session with this turn.
            self.outstanding[state.worker] = self.resume_request(state, review.verdict.follow_up)

    def end_subtask(self, state: SubtaskState, status: str, reason: str = "") -> None:
        state.status = status
        self.slots.busy.discard(state.subtask.id)
        self.outstanding.pop(state.worker, None)
        self.record(SubtaskFinished(subtask_id=state.subtask.id, status=status, reason=reason))  # type: ignore[arg-type]
        self.directory.tell(SUPERVISOR, StopWorker(name=state.worker))
        if status == "failed":
            self.finish("failed", f"subtask {state.subtask.id} ({state.subtask.title}) failed: {reason}")
        else:
            self.schedule()

    # -- supervision -----------------------------------------------------------------------

    def send(self, name: str, request: Msg) -> None:
        self.outstanding[name] = request
        self.directory.tell(name, request)

    def on_restarted(self, name: str) -> None:
        request = self.outstanding.get(name)
        if request is None:
            return
        if isinstance(request, RunSubtask):
            state = self.states[request.subtask.id]
            request = self.resume_request(state, request.prompt)
        self.send(name, request)

    def resume_request(self, state: SubtaskState, prompt: str) -> RunSubtask:
        assert self.run is not None
        return RunSubtask(
            subtask=state.subtask,
            prompt=prompt,
            cwd=self.run.working_dir,
            task=self.run.task,
            resume_agent_session=state.agent_session_id,
        )

    # -- the end ---------------------------------------------------------------------------

    def finish(self, status: SessionStatus, reason: str = "") -> None:
        if self.finished:
            return
        self.finished = True
        assert self.run is not None
        for state in self.states.values():
            if state.status in ("running", "reviewing"):
                self.directory.tell(state.worker, Cancel(reason=reason or status))
        commit = self.commit_if_done(status)
        if status != "done" and Workspace(Path(self.run.working_dir)).has_changes():
            self.record(Notice(level="warning", text=f"changes left uncommitted in {self.run.working_dir} for inspection"))
        duration = time.monotonic() - self.started_at
        self.record(SessionFinished(status=status, reason=reason, cost_usd=self.cost_usd, duration_s=duration))
        self.on_finished(
            RunOutcome(session_id=self.run.session_id, status=status, reason=reason, cost_usd=self.cost_usd, commit=commit)
        )

    def commit_if_done(self, status: SessionStatus) -> str | None:
        assert self.run is not None
        if status != "done":
            return None
        message = f"agentproxy: {commit_subject(self.run.task)}\n\nSession {self.run.session_id}.\n"
        try:
            commit = Workspace(Path(self.run.working_dir)).commit_all(message)
        except WorkspaceError as exc:
            self.record(Notice(level="error", text=f"could not commit the result: {exc}"))
            return None
        if commit:
            self.record(Committed(commit=commit, message=message.splitlines()[0]))
        return commit


def subtask_prompt(run: RunTask, subtask: Subtask, total: int) -> str:
    parts = [subtask.instructions if total == 1 else f"Overall task: {run.task}\n\nYour part ({subtask.id} of {total}): {subtask.title}\n\n{subtask.instructions}"]
    if subtask.criteria:
        parts.append("Acceptance criteria:\n" + "\n".join(f"- {c}" for c in subtask.criteria))
    if subtask.checks:
        parts.append("These commands must pass:\n" + "\n".join(f"- `{c}`" for c in subtask.checks))
    if run.screenshots:
        parts.append("Screenshots for reference (open them with the Read tool):\n" + "\n".join(f"- {p}" for p in run.screenshots))
    return "\n\n".join(parts)


def commit_subject(task: str, limit: int = 60) -> str:
    first = " ".join(task.split())
    return first if len(first) <= limit else first[: limit - 1] + "…"
