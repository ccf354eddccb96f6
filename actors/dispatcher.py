"""Dispatcher: runs a plan's subtasks, sends finished work to review, follows up on failed
verdicts, and closes the session (commit, outcome).

Before a subtask's first turn the Verifier prepares its tree (the environment, the checks at the
base); the agent starts in that environment, told what already failed before it.

It gives no credit for no work: a subtask reported done with nothing changed is sent back once,
then failed. The same failing checks after two follow-ups in a row end the subtask as stuck. A
final message the review finds to be a question is answered by the Clarifier, not judged.

It keeps its own record of outstanding work (what it asked of which actor, not yet answered) so
that when the Supervisor restarts an actor the request is sent again to the fresh instance.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentproxy.actors.base import CLARIFIER, PLANNER, SUPERVISOR, VERIFIER, WORKER_PREFIX, Directory, SupervisedActor

from agentproxy.checks import preexisting_note
from agentproxy.errors import WorkspaceError
from agentproxy.loops import VOLATILE
from agentproxy.messages import (
    AgentCanStart,
    AgentSessionOpened,
    Answer,
    Ask,
    Cancel,
    CheckResult,
    CheckVerdict,
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
    Prepare,
    Prepared,
    QuestionAsked,
    Restarted,
    Review,
    ReviewDone,
    RunSubtask,
    RunTask,
    SessionFinished,
    SessionStatus,
    SpawnAgent,
    StartWorker,
    StopWorker,
    Stuck,
    Subtask,
    SubtaskDone,
    SubtaskFinished,
    SubtaskStarted,
)
from agentproxy.options import RunOptions
from agentproxy.secret_files import exclusion_warning
from agentproxy.workspace import Workspace

SAME_FAILURES_TO_STOP = 3  # the same failing checks at three reviews in a row: two follow-ups changed nothing
REVIEW_QUESTION_PREFIX = "review-question:"
NOTHING_CHANGED = (
    "You reported the work as done, but nothing changed in the working directory since this subtask"
    " started: no file was edited and nothing was committed. Make the changes the task asks for now."
    " If you are blocked, say exactly what you need."
)


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
    status: str = "pending"  # pending | preparing | running | reviewing | asking | done | failed
    attempt: int = 1
    agent_session_id: str | None = None
    worker: str = ""
    worker_started: bool = False
    base_commit: str = ""  # HEAD when the subtask started: the review reads the diff from here
    base_tree: str = ""  # git's id of the files then: the base's check results are kept under it
    env: dict[str, str] = field(default_factory=dict)  # the project's environment, for the agent
    told_nothing_changed: bool = False
    check_failures: list[str] = field(default_factory=list)  # what failed, per review, newest last
    questions_answered: int = 0


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
        self.running: set[str] = set()  # subtask ids; one at a time until worktrees come
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
            case AgentCanStart():
                self.on_agent_can_start(message)
            case Prepared():
                self.on_prepared(message)
            case AgentSessionOpened(subtask_id=subtask_id, agent_session_id=agent_session_id):
                self.states[subtask_id].agent_session_id = agent_session_id
            case SubtaskDone():
                self.on_subtask_done(message)
            case ReviewDone():
                self.on_review_done(message)
            case Answer():
                self.on_answer(message)
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
            if self.running:
                break
            self.start_subtask(state)
        if not self.running:
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
        """The Verifier first sets the tree up and runs the checks at the base (see on_prepared)."""
        assert self.run is not None
        state.worker = f"{WORKER_PREFIX}{state.subtask.id}"
        state.status = "preparing"
        state.base_commit = self.head()
        self.running.add(state.subtask.id)
        self.record(SubtaskStarted(subtask_id=state.subtask.id, title=state.subtask.title, attempt=state.attempt))
        self.send(VERIFIER, Prepare(subtask=state.subtask, cwd=self.run.working_dir, base_commit=state.base_commit))

    def on_agent_can_start(self, ready: AgentCanStart) -> None:
        """The agent's process starts while the base runs; its first turn waits for Prepared."""
        assert self.run is not None
        state = self.states[ready.subtask_id]
        if state.status != "preparing" or state.worker_started:
            return
        self.start_worker(state)
        spawn = SpawnAgent(
            subtask_id=state.subtask.id,
            cwd=self.run.working_dir,
            task=self.run.task,
            resume_agent_session=self.first_resume(),
            env=ready.env,
        )
        self.directory.tell(state.worker, spawn)

    def on_prepared(self, prepared: Prepared) -> None:
        assert self.run is not None
        self.outstanding.pop(VERIFIER, None)
        state = self.states[prepared.subtask_id]
        if state.status != "preparing":
            return
        state.status = "running"
        state.base_tree, state.env = prepared.base_tree, prepared.env
        if not state.worker_started:
            self.start_worker(state)
        self.send(
            state.worker,
            RunSubtask(
                subtask=state.subtask,
                prompt=subtask_prompt(self.run, state.subtask, len(self.states), prepared.preexisting),
                cwd=self.run.working_dir,
                task=self.run.task,
                resume_agent_session=self.first_resume(),
                env=state.env,
            ),
        )

    def start_worker(self, state: SubtaskState) -> None:
        state.worker_started = True
        self.directory.ask(SUPERVISOR, StartWorker(name=state.worker))

    def first_resume(self) -> str | None:
        """The agent session a continued one-subtask session resumes."""
        assert self.run is not None
        return self.run.resume_agent_session if len(self.states) == 1 else None

    def snapshot_uncommitted(self) -> None:
        """Commit what the user left uncommitted, so the agent's diff, review and commit are its own."""
        assert self.run is not None
        message = f"agentproxy: uncommitted changes found before: {commit_subject(self.run.task)}"
        workspace = Workspace(Path(self.run.working_dir))
        try:
            commit = workspace.commit_all(message)
        except WorkspaceError as exc:
            self.record(Notice(level="warning", text=f"could not set your uncommitted changes apart: {exc}"))
            return
        finally:
            if workspace.excluded:
                self.record(Notice(level="warning", text=exclusion_warning(workspace.excluded)))
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
        if state.subtask.expects_changes and not self.changed_since(state.base_commit):
            if state.told_nothing_changed:
                self.end_subtask(state, "failed", "the agent reported success but changed nothing, twice")
            else:
                state.told_nothing_changed = True
                self.follow_up(state, NOTHING_CHANGED, counts=False)
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
                base_tree=state.base_tree,
            ),
        )

    def on_review_done(self, review: ReviewDone) -> None:
        state = self.states[review.subtask_id]
        self.outstanding.pop(VERIFIER, None)
        verdict = review.verdict
        if verdict.question and state.questions_answered < self.options.max_question_follow_ups:
            self.ask_for_agent(state, verdict.question)
            return
        state.check_failures.append(failure_signature(review.checks, review.check_verdicts))
        repeats = state.check_failures[-(SAME_FAILURES_TO_STOP):]
        if verdict.passed:
            self.end_subtask(state, "done")
        elif len(repeats) == SAME_FAILURES_TO_STOP and repeats[0] and len(set(repeats)) == 1:
            pattern = f"the same checks failed the same way after {SAME_FAILURES_TO_STOP - 1} follow-ups in a row"
            self.record(Stuck(subtask_id=state.subtask.id, pattern=pattern, action="failed"))
            self.end_subtask(state, "failed", f"stuck: {pattern}")
        elif state.attempt > self.options.max_attempts:
            findings = "; ".join(verdict.findings) or "verification failed"
            self.end_subtask(state, "failed", f"still failing after {self.options.max_attempts} follow-ups: {findings}")
        else:
            self.follow_up(state, verdict.follow_up, counts=True)

    def follow_up(self, state: SubtaskState, instruction: str, counts: bool) -> None:
        """Another turn in the subtask's agent session; counts says whether it is a verification attempt."""
        if counts:
            state.attempt += 1
        state.status = "running"
        self.record(FollowUpSent(subtask_id=state.subtask.id, attempt=state.attempt, instruction=instruction))
        self.directory.tell(
            state.worker, FollowUp(subtask_id=state.subtask.id, instruction=instruction, attempt=state.attempt)
        )
        # Should the worker crash now, its fresh instance resumes the agent session with this turn.
        self.outstanding[state.worker] = self.resume_request(state, instruction)

    def ask_for_agent(self, state: SubtaskState, question: str) -> None:
        """The review found the agent's final message to be a question: the Clarifier answers it."""
        from agentproxy.questions import question_from_text  # lazy: see claude_worker.warm_up

        assert self.run is not None
        state.questions_answered += 1
        state.status = "asking"
        asked = question_from_text(question)
        self.record(QuestionAsked(subtask_id=state.subtask.id, questions=[asked], via="final_text"))
        request_id = f"{REVIEW_QUESTION_PREFIX}{state.subtask.id}:{state.questions_answered}"
        self.send(
            CLARIFIER,
            Ask(
                worker=self.name,
                subtask_id=state.subtask.id,
                request_id=request_id,
                questions=[asked],
                task=self.run.task,
            ),
        )

    def on_answer(self, answer: Answer) -> None:
        self.outstanding.pop(CLARIFIER, None)
        subtask_id = answer.request_id.removeprefix(REVIEW_QUESTION_PREFIX).rsplit(":", 1)[0]
        state = self.states.get(subtask_id)
        if state is None or state.status != "asking":
            return
        replies = "\n".join(f"{question}\n-> {reply}" for question, reply in answer.answers.items())
        self.follow_up(state, f"Answers to your question:\n{replies}\n\nGo ahead and finish the task.", counts=False)

    def changed_since(self, base_commit: str) -> bool:
        """Whether the working directory differs from the subtask's base: commits or uncommitted changes."""
        assert self.run is not None
        if not base_commit:
            return True  # no base to compare with: give the benefit of the doubt
        try:
            return Workspace(Path(self.run.working_dir)).changed_since(base_commit)
        except WorkspaceError:
            return True

    def end_subtask(self, state: SubtaskState, status: str, reason: str = "") -> None:
        state.status = status
        self.running.discard(state.subtask.id)
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
            env=state.env,
        )

    # -- the end ---------------------------------------------------------------------------

    def finish(self, status: SessionStatus, reason: str = "") -> None:
        if self.finished:
            return
        self.finished = True
        assert self.run is not None
        for state in self.states.values():
            if state.status in ("running", "reviewing", "asking"):
                self.directory.tell(state.worker, Cancel(reason=reason or status))
        try:
            commit = self.commit_if_done(status)
        except WorkspaceError as exc:
            commit, status, reason = None, "failed", f"the work is done but could not be committed: {exc}"
        if status != "done" and Workspace(Path(self.run.working_dir)).has_changes():
            self.record(
                Notice(level="warning", text=f"changes left uncommitted in {self.run.working_dir} for inspection")
            )
        duration = time.monotonic() - self.started_at
        self.record(SessionFinished(status=status, reason=reason, cost_usd=self.cost_usd, duration_s=duration))
        self.on_finished(
            RunOutcome(
                session_id=self.run.session_id, status=status, reason=reason, cost_usd=self.cost_usd, commit=commit
            )
        )

    def commit_if_done(self, status: SessionStatus) -> str | None:
        """Commit a done run's work; WorkspaceError when it cannot be (a hook refused, a merge in progress)."""
        assert self.run is not None
        if status != "done":
            return None
        message = f"agentproxy: {commit_subject(self.run.task)}\n\nSession {self.run.session_id}.\n"
        workspace = Workspace(Path(self.run.working_dir))
        try:
            commit = workspace.commit_all(message)
        finally:
            if workspace.excluded:
                self.record(Notice(level="warning", text=exclusion_warning(workspace.excluded)))
        if commit:
            self.record(Committed(commit=commit, message=message.splitlines()[0]))
        return commit


def failure_signature(checks: list[CheckResult], verdicts: list[CheckVerdict]) -> str:
    """What the change broke, comparable across attempts: those commands and their output, volatile parts masked."""
    blamed = {verdict.command for verdict in verdicts if verdict.kind == "failed"}
    return "\n".join(f"{c.command}\n{VOLATILE.sub('#', c.output_tail)}" for c in checks if c.command in blamed)


def subtask_prompt(run: RunTask, subtask: Subtask, total: int, preexisting: Sequence[CheckVerdict] = ()) -> str:
    parts = [
        subtask.instructions
        if total == 1
        else (
            f"Overall task: {run.task}\n\n"
            f"Your part ({subtask.id} of {total}): {subtask.title}\n\n{subtask.instructions}"
        )
    ]
    if subtask.criteria:
        parts.append("Acceptance criteria:\n" + "\n".join(f"- {c}" for c in subtask.criteria))
    if subtask.checks:
        parts.append("These commands must pass:\n" + "\n".join(f"- `{c}`" for c in subtask.checks))
    if note := preexisting_note(preexisting):
        parts.append(note)
    if run.screenshots:
        parts.append(
            "Screenshots for reference (open them with the Read tool):\n" + "\n".join(f"- {p}" for p in run.screenshots)
        )
    return "\n\n".join(parts)


def commit_subject(task: str, limit: int = 60) -> str:
    first = " ".join(task.split())
    return first if len(first) <= limit else first[: limit - 1] + "…"
