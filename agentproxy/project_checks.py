"""A project's checks in the trees its agents work in: the environment set up, the base run, each check judged.

One ProjectChecks serves a run. Per tree (the working directory now, each worktree later) it sets
the environment up once (`--setup`), then again whenever the plan has steps (the agent changed the
dependencies; a CI build step), and repairs it once, afresh, when a check could not run. The
checks' results on a subtask's base tree are kept in the store by the tree's git id and the
command, so a second run on the same files costs nothing; a run that could not really run is not
kept, since setting the environment up may change it.
"""

from __future__ import annotations

import logging
import shlex
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import msgspec

from agentproxy import redact
from agentproxy.baseline import CheckRun, at_base, judge
from agentproxy.check_runs import run_check
from agentproxy.detect import detect_checks
from agentproxy.errors import StoreError, WorkspaceError
from agentproxy.messages import (
    AnyEvent,
    BaselineRan,
    CheckResult,
    CheckVerdict,
    Notice,
    SetupStarted,
    SetupStepRan,
    Subtask,
)
from agentproxy.options import RunOptions
from agentproxy.setup_env import (
    SETUP_AUTO,
    SETUP_OFF,
    SetupPlan,
    SetupReport,
    SetupStep,
    check_env,
    plan_for,
    run_setup,
)
from agentproxy.store import SessionStore
from agentproxy.workspace import Workspace

log = logging.getLogger(__name__)
_run_decoder = msgspec.json.Decoder(CheckRun)


@dataclass(frozen=True)
class Judged:
    result: CheckResult  # with ``environment`` set when it could not really run
    verdict: CheckVerdict


@dataclass(frozen=True)
class Standing:
    base_tree: str  # git's id of the base's files ("" when there is none): their results are kept under it
    verdicts: list[CheckVerdict]


@dataclass
class _Tree:
    env: dict[str, str]  # what the checks run with
    setup_env: dict[str, str] = field(default_factory=dict)  # what the setup added to it (for the agent too)
    setup_passed: set[str] = field(default_factory=set)  # setup commands that passed before any agent's change
    repaired: bool = False
    commands: list[str] = field(default_factory=list)  # the project's checks, detected once


class ProjectChecks:
    def __init__(
        self,
        options: RunOptions,
        record: Callable[[AnyEvent], None],
        envs_dir: Path,
        cache: SessionStore | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self.options = options
        self.record = record
        self.envs_dir = envs_dir
        self.cache = cache
        self.stopping = stopping or threading.Event()
        self.trees: dict[Path, _Tree] = {}
        self.base_runs: dict[tuple[str, str], CheckRun] = {}  # (tree id, command)
        self.locks: dict[Path, threading.Lock] = {}  # one per tree: its setup and checks run one at a time
        self.locks_lock = threading.Lock()

    def lock(self, cwd: Path) -> threading.Lock:
        """The tree's lock: subtasks in different trees run their checks at once, never two in one tree."""
        with self.locks_lock:
            return self.locks.setdefault(cwd, threading.Lock())

    # -- the environment -------------------------------------------------------------------

    def tree(self, cwd: Path, on_planned: Callable[[dict[str, str]], None] | None = None) -> _Tree:
        """The tree's state, setting its environment up the first time it is seen.

        on_planned gets the environment once it is planned, before any setup step runs.
        """
        if cwd not in self.trees:
            tree = _Tree(env={})
            self.trees[cwd] = tree
            tree.setup_passed = self.set_up(cwd, tree, on_planned=on_planned)
            tree.commands = list(self.options.checks) or [check.command for check in detect_checks(cwd)]
        elif on_planned is not None:
            on_planned(self.trees[cwd].setup_env)
        return self.trees[cwd]

    def set_up(
        self,
        cwd: Path,
        tree: _Tree,
        fresh: bool = False,
        on_planned: Callable[[dict[str, str]], None] | None = None,
    ) -> set[str]:
        """Run the setup the mode asks for; the commands that passed. Sets tree.env either way."""
        plan = plan_for(self.options.setup, cwd, self.envs_dir, fresh)
        tree.env, tree.setup_env = check_env(plan), plan.env
        if on_planned is not None:
            on_planned(plan.env)
        if not plan.steps and not plan.problems:
            return set()
        report = self.run_setup(cwd, plan)
        return {result.command for result in report.results if result.passed}

    def run_setup(self, cwd: Path, plan: SetupPlan) -> SetupReport:
        """Run the plan's steps; what they write into the tree (egg-info, builds) is kept out of git."""
        self.announce(cwd, plan)
        workspace = Workspace(cwd)
        before = _untracked(workspace)
        report = run_setup(plan, self.options.setup_timeout_s, self.record_step)
        made = [path for path in _untracked(workspace) if path not in before]
        if made:
            try:
                workspace.exclude(_new_directories(workspace, made, before), "made by the environment's setup")
            except WorkspaceError as exc:
                self.record(Notice(level="warning", text=f"files the setup made may be committed: {exc}"))
        return report

    def announce(self, cwd: Path, plan: SetupPlan) -> None:
        commands = [shlex.join(step.command) for step in plan.steps]
        self.record(SetupStarted(cwd=str(cwd), reasons=plan.reasons, problems=plan.problems, commands=commands))

    def record_step(self, step: SetupStep, result: CheckResult) -> None:
        self.record(SetupStepRan(why=step.why, result=result))

    def refresh(self, cwd: Path, tree: _Tree) -> list[CheckResult]:
        """Before a review: set up again what the plan says is out of date (auto only).

        Returns the setup steps that passed before the agent's change and fail now: its change did that.
        """
        if self.options.setup != SETUP_AUTO:
            return []
        plan = plan_for(SETUP_AUTO, cwd, self.envs_dir)
        tree.env, tree.setup_env = check_env(plan), plan.env
        if not plan.steps:
            return []
        report = self.run_setup(cwd, plan)
        return [result for result in report.results if not result.passed and result.command in tree.setup_passed]

    def repair(self, cwd: Path, tree: _Tree) -> bool:
        """Once per tree, when a check could not run: set the environment up afresh. Whether it was tried."""
        if tree.repaired or self.options.setup == SETUP_OFF:
            return False
        tree.repaired = True
        self.set_up(cwd, tree, fresh=True)
        return True

    # -- the base --------------------------------------------------------------------------

    def baseline(
        self,
        cwd: Path,
        subtask_id: str,
        on_planned: Callable[[dict[str, str]], None] | None = None,
        judge_against: str = "",
    ) -> Standing:
        """Run the project's checks on the subtask's base (or read them from the store); how each stands.

        on_planned gets the tree's environment as soon as it is known (see tree). With judge_against
        (a tree id) nothing runs: what is known of that tree is the base.
        """
        with self.lock(cwd):
            tree = self.tree(cwd, on_planned)
            if judge_against:
                known = {command: self.known_base(judge_against, command) for command in tree.commands}
                runs = {command: run for command, run in known.items() if run is not None}
                return Standing(judge_against, [at_base(run) for run in runs.values()])
            return self.run_base(cwd, subtask_id, tree)

    def run_base(self, cwd: Path, subtask_id: str, tree: _Tree) -> Standing:
        try:
            base_tree = Workspace(cwd).tree_id()  # after the setup, so that what it made is not the base's
        except WorkspaceError as exc:
            self.record(Notice(level="warning", text=f"the base's check results cannot be kept: {exc}"))
            base_tree = ""
        known = {command: self.known_base(base_tree, command) for command in tree.commands}
        cached = [command for command, run in known.items() if run is not None]
        runs = self.run_all(cwd, tree, tree.commands, known)
        for command, run in runs.items():
            self.base_runs[(base_tree, command)] = run
            if command not in cached and _worth_keeping(run):
                self.keep(base_tree, command, run)
        verdicts = [at_base(run) for run in runs.values()]
        results = [_shown(run.result, verdict) for run, verdict in zip(runs.values(), verdicts, strict=True)]
        self.record(BaselineRan(subtask_id=subtask_id, commit=base_tree, results=results, cached=cached))
        return Standing(base_tree, verdicts)

    def known_base(self, base_tree: str, command: str) -> CheckRun | None:
        if not base_tree:
            return None  # no id for the base's files: nothing known about them
        run = self.base_runs.get((base_tree, command))
        if run is not None or self.cache is None:
            return run
        try:
            body = self.cache.cached_check(base_tree, command)
            return _run_decoder.decode(body) if body is not None else None
        except (StoreError, msgspec.DecodeError) as exc:
            log.warning("check cache unreadable, running the check: %s", exc)
            return None

    def keep(self, base_tree: str, command: str, run: CheckRun) -> None:
        if self.cache is None or not base_tree:
            return
        try:
            # The store keeps what checks print: secrets in it are redacted as in the events.
            self.cache.cache_check(base_tree, command, msgspec.json.encode(redact.installed().redact_struct(run)))
        except StoreError as exc:
            log.warning("cannot keep a check's result: %s", exc)

    # -- after the agent's change ----------------------------------------------------------

    def verify(self, cwd: Path, subtask: Subtask, base_tree: str) -> list[Judged]:
        """Every check (the project's, then the subtask's acceptance checks), judged against the base."""
        with self.lock(cwd):
            return self.judge_all(cwd, subtask, base_tree)

    def judge_all(self, cwd: Path, subtask: Subtask, base_tree: str) -> list[Judged]:
        tree = self.tree(cwd)
        broken_setup = self.refresh(cwd, tree)
        commands = tree.commands + [check for check in subtask.checks if check not in tree.commands]
        runs = self.run_all(cwd, tree, commands)
        judged = [
            _judged(CheckRun(result=result), CheckVerdict(command=result.command, kind="failed", summary=_BROKE_SETUP))
            for result in broken_setup
        ]
        for command, run in runs.items():
            base = self.known_base(base_tree, command)
            judged.append(_judged(run, judge(base, run, acceptance=command in subtask.checks)))
        return judged

    def run_all(
        self, cwd: Path, tree: _Tree, commands: list[str], known: Mapping[str, CheckRun | None] | None = None
    ) -> dict[str, CheckRun]:
        """Each command's run (a known one is not run again) until pa stops; those that could not run
        are run again once the environment is repaired (once per tree)."""
        runs: dict[str, CheckRun] = {}
        for command in commands:
            if self.stopping.is_set():
                break
            runs[command] = (known or {}).get(command) or self.run(command, cwd, tree)
        unrunnable = [command for command, run in runs.items() if _could_not_run(run)]
        if unrunnable and self.repair(cwd, tree):
            runs.update({command: self.run(command, cwd, tree) for command in unrunnable})
        return runs

    def run(self, command: str, cwd: Path, tree: _Tree) -> CheckRun:
        return run_check(command, cwd, self.options.check_timeout_s, tree.env)


_BROKE_SETUP = "this setup step passed before your change and fails now"


def _untracked(workspace: Workspace) -> set[str]:
    try:
        return set(workspace.untracked())
    except WorkspaceError:
        return set()


def _new_directories(workspace: Workspace, made: list[str], before: set[str]) -> list[str]:
    """The paths to exclude: each new file's outermost directory that holds nothing but new files, else the file."""
    kept = {*before, *workspace.tracked()}
    occupied = {str(parent) for path in kept for parent in PurePosixPath(path).parents}
    chosen: set[str] = set()
    for path in made:
        outermost = next(
            (
                f"{parent}/"
                for parent in reversed(PurePosixPath(path).parents)
                if str(parent) != "." and str(parent) not in occupied
            ),
            path,
        )
        chosen.add(outermost)
    return sorted(chosen)


def _could_not_run(run: CheckRun) -> bool:
    return run.classification is not None and run.classification.kind == "environment"


def _worth_keeping(run: CheckRun) -> bool:
    """A run that could not really run, or was cut short, says nothing lasting about the tree."""
    return not _could_not_run(run) and not run.result.timed_out


def _judged(run: CheckRun, verdict: CheckVerdict) -> Judged:
    return Judged(result=_shown(run.result, verdict), verdict=verdict)


def _shown(result: CheckResult, verdict: CheckVerdict) -> CheckResult:
    if verdict.kind != "environment":
        return result
    return msgspec.structs.replace(result, environment=f"{verdict.cause}; fix: {verdict.fix}")
