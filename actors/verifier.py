"""Verifier: runs the project's checks where the agent worked, and asks the brain for a verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from agentproxy.actors.base import DISPATCHER, Directory, SupervisedActor

from agentproxy.brain import Brain, OfflineBrain, ReviewInput
from agentproxy.checks import run_checks
from agentproxy.detect import detect_checks
from agentproxy.errors import WorkspaceError
from agentproxy.failure_kinds import classify
from agentproxy.knowledge import KnowledgeBoard
from agentproxy.messages import CheckResult, ChecksRan, Notice, Review, ReviewDone, Reviewed
from agentproxy.options import RunOptions
from agentproxy.workspace import Workspace

DIFF_CHARS = 40_000


class Verifier(SupervisedActor):
    """Blocks its own mailbox while checks run (bounded by check_timeout_s); nobody waits on it by ask."""

    def __init__(
        self, name: str, directory: Directory, brain: Brain, board: KnowledgeBoard, options: RunOptions
    ) -> None:
        super().__init__(name, directory)
        # --no-qa: the checks alone decide, as the offline brain does.
        self.brain = brain if options.brain_review else OfflineBrain()
        self.board = board
        self.options = options

    def on_receive(self, message: Any) -> Any:
        match message:
            case Review():
                self.on_review(message)
        return None

    def on_review(self, review: Review) -> None:
        cwd = Path(review.cwd)
        commands = list(self.options.checks) or [check.command for check in detect_checks(cwd)]
        commands += [check for check in review.subtask.checks if check not in commands]
        ran = run_checks(commands, cwd, self.options.check_timeout_s) if commands else []
        results = [with_environment(result, cwd) for result in ran]
        if results:
            self.record(ChecksRan(subtask_id=review.subtask.id, results=results))
        unrunnable = [result for result in results if result.environment]
        for result in unrunnable:
            self.record(Notice(level="warning", text=f"`{result.command}` could not run: {result.environment}"))
        verdict = self.brain.review(
            ReviewInput(
                task=review.task,
                subtask=review.subtask,
                checks=[result for result in results if not result.environment],
                agent_summary=review.agent_summary,
                diff=self.diff(cwd, review.base_commit),
                knowledge=self.board.read(),
            )
        )
        if unrunnable:
            could_not_run = [f"`{r.command}` could not run (environment, not the agent's change)" for r in unrunnable]
            verdict = msgspec.structs.replace(verdict, findings=[*verdict.findings, *could_not_run])
        self.record(Reviewed(subtask_id=review.subtask.id, verdict=verdict, attempt=review.attempt))
        self.directory.tell(DISPATCHER, ReviewDone(subtask_id=review.subtask.id, verdict=verdict, checks=results))

    def diff(self, cwd: Path, base_commit: str) -> str:
        if not base_commit or self.brain.name == OfflineBrain.name:
            return ""  # the offline brain does not read diffs
        try:
            return Workspace(cwd).diff_since(base_commit, DIFF_CHARS)
        except WorkspaceError as exc:
            return f"(no diff: {exc})"


def with_environment(result: CheckResult, project: Path) -> CheckResult:
    """A failed check that could not really run (a missing tool or plugin, no node_modules, the
    network) is the environment's failure: marked, so that it is shown to the user, not blamed on
    the agent."""
    if result.passed:
        return result
    classification = classify(result, project)
    if classification.kind != "environment":
        return result
    return msgspec.structs.replace(result, environment=f"{classification.cause}; fix: {classification.fix}")
