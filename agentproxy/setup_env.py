"""Setting a project's environment up so that its checks can run: plan it, run it, and the checks' environment.

A fresh tree (a new worktree above all) has no dependencies: its checks would fail on `command
not found`, a missing test plugin, no node_modules or an installed copy of the package, and the
agent would be blamed. plan_setup decides per kind of project (setup_python, setup_node, Go and
Rust here) without running anything; run_setup runs the steps bounded; check_env is what the
checks must then run with. Nothing here raises for a failing tool: failures are results.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agentproxy.checks import run_command
from agentproxy.child_env import child_environment
from agentproxy.messages import CheckResult
from agentproxy.python_project import is_python_project
from agentproxy.setup_node import is_node_project, plan_node
from agentproxy.setup_plan import SetupPlan, SetupStep
from agentproxy.setup_python import plan_python

__all__ = [
    "SETUP_AUTO",
    "SETUP_OFF",
    "SetupPlan",
    "SetupReport",
    "SetupStep",
    "check_env",
    "plan_for",
    "plan_setup",
    "run_setup",
]

OUTPUT_TAIL_CHARS = 4000
SETUP_AUTO = "auto"
SETUP_OFF = "off"


@dataclass
class SetupReport:
    results: list[CheckResult] = field(default_factory=list)  # one per step that ran, in order
    problems: list[str] = field(default_factory=list)  # the plan's: found before anything ran
    reasons: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def passed(self) -> bool:
        """Every step ran and passed, and planning found no problem."""
        return not self.problems and all(result.passed for result in self.results)


def plan_setup(project: Path, envs_dir: Path, fresh: bool = False) -> SetupPlan:
    """What to do so that the project's checks can run, without doing it. Runs nothing but version probes.

    fresh: reinstall even what looks up to date, to repair an environment the checks could not run in.
    """
    plan = SetupPlan()
    if is_python_project(project):
        plan.merge(plan_python(project, envs_dir, fresh))
    if is_node_project(project):
        plan.merge(plan_node(project, envs_dir / "corepack-bin", fresh))
    plan.merge(_plan_fetch(project, "go.mod", "go", ["go", "mod", "download"], "the modules go test needs"))
    plan.merge(_plan_fetch(project, "Cargo.toml", "cargo", ["cargo", "fetch"], "the crates cargo test needs"))
    if plan.bin_dirs:
        plan.env["PATH"] = os.pathsep.join([*map(str, plan.bin_dirs), *_inherited_path(plan)])
    return plan


def plan_for(mode: str, project: Path, envs_dir: Path, fresh: bool = False) -> SetupPlan:
    """The plan `--setup MODE` asks for: `auto` plans per kind of project, `off` nothing, else the user's command."""
    if mode == SETUP_OFF:
        return SetupPlan()
    if mode == SETUP_AUTO:
        return plan_setup(project, envs_dir, fresh)
    step = SetupStep(["/bin/sh", "-c", mode], project.resolve(), "--setup")
    return SetupPlan(steps=[step], reasons=[f"--setup: {mode}"])


def run_setup(
    plan: SetupPlan, timeout_s: float, on_step: Callable[[SetupStep, CheckResult], None] | None = None
) -> SetupReport:
    """Run the plan's steps in order, each bounded by timeout_s, up to the first that fails.

    on_step is called on this thread after each step. The stamps that make the next plan "up to
    date" are written only when every step passed.
    """
    started = time.monotonic()
    report = SetupReport(problems=list(plan.problems), reasons=list(plan.reasons))
    env = check_env(plan)
    for step in plan.steps:
        result = run_command(step.command, step.cwd, timeout_s, env, OUTPUT_TAIL_CHARS)
        report.results.append(result)
        if on_step is not None:
            on_step(step, result)
        if not result.passed:
            break
    if all(result.passed for result in report.results):
        for path, text in plan.stamps.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    report.duration_s = round(time.monotonic() - started, 3)
    return report


def check_env(plan: SetupPlan) -> dict[str, str]:
    """The environment the checks run with: the child environment (no supervisor keys) plus the plan's."""
    return {**child_environment(), **plan.env}


def _plan_fetch(project: Path, manifest: str, tool: str, command: list[str], what: str) -> SetupPlan:
    """Go and Rust: their own fetch, so that the tests do not fail on resolving dependencies."""
    if not (project / manifest).is_file():
        return SetupPlan()
    if shutil.which(tool) is None:
        problem = f"{manifest} but {tool} is not installed"
        return SetupPlan(problems=[problem], reasons=[f"{tool}: {problem}"])
    step = SetupStep(command, project.resolve(), f"{manifest}: fetch {what}")
    return SetupPlan(steps=[step], reasons=[f"{tool}: {shlex.join(command)} ({manifest})"])


def _inherited_path(plan: SetupPlan) -> list[str]:
    """The user's PATH, less agentproxy's own virtualenv when the project has a Python environment of its own."""
    entries = [entry for entry in os.environ.get("PATH", "").split(os.pathsep) if entry]
    if "VIRTUAL_ENV" not in plan.env or sys.prefix == sys.base_prefix:
        return entries
    own = Path(sys.prefix, "bin").resolve()
    return [entry for entry in entries if Path(entry).resolve() != own]
