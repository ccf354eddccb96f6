"""Verifier: sets up each tree's environment, runs the project's checks at a subtask's base and after
the agent's change, and asks the brain for a verdict on what the change made worse.

Its mailbox stays free: each Prepare and Review runs on a thread of its own, at most --check-parallel
at once, so the checks of subtasks in different worktrees run at once (ProjectChecks serialises the
work on one tree). The threads are daemons: a brain call stuck at exit does not hold pa.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from agentproxy.actors.base import DISPATCHER, Directory, SupervisedActor

from agentproxy.brain import Attempt, Brain, OfflineBrain, PickInput, ReviewInput
from agentproxy.checks import preexisting_note
from agentproxy.errors import StoreError, WorkspaceError
from agentproxy.knowledge import KnowledgeBoard
from agentproxy.messages import (
    AgentCanStart,
    BestPicked,
    ChecksRan,
    CheckVerdict,
    Notice,
    PickBest,
    Prepare,
    Prepared,
    Review,
    ReviewDone,
    Reviewed,
    Verdict,
)
from agentproxy.options import RunOptions
from agentproxy.store import SessionStore
from agentproxy.workspace import Workspace

if TYPE_CHECKING:
    from agentproxy.project_checks import ProjectChecks

DIFF_CHARS = 40_000


class Verifier(SupervisedActor):
    """Answers each request from its pool; nobody waits on it by ask."""

    def __init__(
        self,
        name: str,
        directory: Directory,
        brain: Brain,
        board: KnowledgeBoard,
        options: RunOptions,
        store_path: Path,
        envs_dir: Path,
        stopping: threading.Event,
    ) -> None:
        super().__init__(name, directory)
        # --no-qa: the checks alone decide, as the offline brain does.
        self.brain = brain if options.brain_review else OfflineBrain()
        self.board = board
        self.store_path = store_path
        self.envs_dir = envs_dir
        self.stopping = stopping
        self.options = options
        self.cache: SessionStore | None = None
        self.checks: ProjectChecks  # made in on_start
        self.slots = threading.BoundedSemaphore(options.check_parallel or os.cpu_count() or 1)

    def on_start(self) -> None:
        # Imported here, on the Verifier's thread: detection and setup load while pa starts its agent.
        from agentproxy.project_checks import ProjectChecks

        try:
            self.cache = SessionStore(self.store_path)  # its own connection: the check cache, beside the sessions
        except StoreError as exc:
            self.record(Notice(level="warning", text=f"checks at the base will not be cached: {exc}"))
        self.checks = ProjectChecks(self.options, self.record, self.envs_dir, self.cache, self.stopping)

    def release(self) -> None:
        if self.cache is not None:
            self.cache.close()
            self.cache = None

    def on_receive(self, message: Any) -> Any:
        match message:
            case Prepare():
                self.run_aside(self.on_prepare, message, self.slots)
            case Review():
                self.run_aside(self.on_review, message, self.slots)
            case PickBest():
                self.run_aside(self.on_pick_best, message, self.slots)
            case Exception():
                raise message  # from the pool: a crash of this actor's work
        return None

    def on_prepare(self, prepare: Prepare) -> None:
        cwd = Path(prepare.cwd)
        subtask_id = prepare.subtask.id

        def agent_can_start(env: dict[str, str]) -> None:
            self.directory.tell(DISPATCHER, AgentCanStart(subtask_id=subtask_id, env=env))

        standing = self.checks.baseline(cwd, subtask_id, agent_can_start, prepare.judge_against)
        self.warn_unrunnable(standing.verdicts)
        self.directory.tell(
            DISPATCHER,
            Prepared(
                subtask_id=subtask_id,
                base_tree=standing.base_tree,
                env=self.checks.tree(cwd).setup_env,
                preexisting=[verdict for verdict in standing.verdicts if verdict.kind == "preexisting"],
            ),
        )

    def on_review(self, review: Review) -> None:
        cwd = Path(review.cwd)
        if review.subtask.expects_changes and not self.changed(cwd, review.base_commit):
            self.directory.tell(
                DISPATCHER,
                ReviewDone(subtask_id=review.subtask.id, verdict=Verdict(passed=False), nothing_changed=True),
            )
            return
        judged = self.checks.verify(cwd, review.subtask, review.base_tree)
        results = [item.result for item in judged]
        verdicts = [item.verdict for item in judged]
        if judged:
            self.record(ChecksRan(subtask_id=review.subtask.id, results=results, verdicts=verdicts))
        self.warn_unrunnable(verdicts)
        verdict = self.brain.review(
            ReviewInput(
                task=review.task,
                subtask=review.subtask,
                checks=[item.result for item in judged if item.verdict.kind in ("passed", "failed")],
                verdicts=verdicts,
                agent_summary=review.agent_summary,
                diff=self.diff(cwd, review.base_commit),
                knowledge=self.board.read(),
            )
        )
        verdict = with_check_kinds(verdict, verdicts)
        self.record(Reviewed(subtask_id=review.subtask.id, verdict=verdict, attempt=review.attempt))
        self.directory.tell(
            DISPATCHER,
            ReviewDone(subtask_id=review.subtask.id, verdict=verdict, checks=results, check_verdicts=verdicts),
        )

    def on_pick_best(self, pick: PickBest) -> None:
        """The brain picks among verified attempts, reading their diffs (the offline brain: their sizes)."""
        sizes = {c.attempt_id: self.lines_changed(Path(c.cwd), c.base_commit) for c in pick.candidates}
        attempts = [
            Attempt(
                attempt_id=c.attempt_id,
                agent=c.agent,
                summary=c.summary,
                diff=self.diff(Path(c.cwd), c.base_commit),
                diff_lines=sizes[c.attempt_id],
            )
            for c in pick.candidates
        ]
        choice = self.brain.pick(
            PickInput(task=pick.task, subtask=pick.subtask, attempts=attempts, knowledge=self.board.read())
        )
        picked = BestPicked(
            subtask_id=pick.subtask_id, attempt_id=choice.attempt_id, reason=choice.reason, diff_lines=sizes
        )
        self.directory.tell(DISPATCHER, picked)

    def lines_changed(self, cwd: Path, base_commit: str) -> int:
        try:
            return Workspace(cwd).lines_changed_since(base_commit)
        except (WorkspaceError, ValueError) as exc:
            self.record(Notice(level="warning", text=f"cannot measure the change in {cwd}: {exc}"))
            return 0

    def warn_unrunnable(self, verdicts: list[CheckVerdict]) -> None:
        for verdict in verdicts:
            if verdict.kind == "environment":
                self.record(Notice(level="warning", text=f"`{verdict.command}` {verdict.summary}"))

    def changed(self, cwd: Path, base_commit: str) -> bool:
        """Whether the tree differs from the subtask's base: commits or uncommitted changes."""
        if not base_commit:
            return True  # no base to compare with: give the benefit of the doubt
        try:
            return Workspace(cwd).changed_since(base_commit)
        except WorkspaceError:
            return True

    def diff(self, cwd: Path, base_commit: str) -> str:
        if not base_commit or self.brain.name == OfflineBrain.name:
            return ""  # the offline brain does not read diffs
        try:
            return Workspace(cwd).diff_since(base_commit, DIFF_CHARS)
        except WorkspaceError as exc:
            return f"(no diff: {exc})"


def with_check_kinds(verdict: Verdict, checks: list[CheckVerdict]) -> Verdict:
    """The verdict with what the checks' kinds add: the findings name every check not held against the
    agent, and a follow-up names what the change broke and what already failed before it."""
    not_blamed = [check for check in checks if check.kind in ("preexisting", "environment")]
    findings = [*verdict.findings]
    for check in not_blamed:
        label = "could not run (the environment, not the change)" if check.kind == "environment" else "pre-existing"
        findings.append(f"`{check.command}` {label}: {check.summary}")
    follow_up = verdict.follow_up
    if not verdict.passed and follow_up:
        broke = [f"- `{check.command}`: {check.summary}" for check in checks if check.kind == "failed"]
        if broke:
            follow_up = "What fails because of your change:\n" + "\n".join(broke) + "\n\n" + follow_up
        if note := preexisting_note(checks):
            follow_up += "\n\n" + note
    return msgspec.structs.replace(verdict, findings=findings, follow_up=follow_up)
