"""`pa --show-checks [--run]`: what the supervisor will hold the agent to, seen before a long run."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from agentproxy import config
from agentproxy.detect import detect_checks
from agentproxy.errors import StoreError
from agentproxy.messages import AnyEvent, DetectedCheck
from agentproxy.options import RunOptions
from agentproxy.project_checks import ProjectChecks
from agentproxy.setup_env import SETUP_OFF, SetupPlan, plan_for
from agentproxy.store import SessionStore
from agentproxy.view import JsonView, TextView


def show_checks(
    project: Path,
    *,
    given: Sequence[str],
    setup: str,
    run: bool,
    as_json: bool,
    check_timeout_s: float,
    echo: Callable[[str], None],
) -> bool:
    """Print the checks and why, and the setup; with run, do both and print the results at this tree.

    Without run nothing is written. False when run and a check fails or cannot run.
    """
    checks = [DetectedCheck(command=command, reason="given with --check") for command in given] or detect_checks(
        project
    )
    plan = plan_for(setup, project, config.envs_dir())
    if as_json:
        for check in checks:
            echo(_json({"kind": "check", "command": check.command, "reason": check.reason}))
        setup_line = {"kind": "setup", "mode": setup, "reasons": plan.reasons, "problems": plan.problems}
        echo(_json({**setup_line, "commands": _commands(plan)}))
    else:
        echo("\n\n".join(f"{check.command}\n  why: {check.reason}" for check in checks) or _none_found(project))
        echo("\n" + _setup_text(setup, plan.reasons, plan.problems, _commands(plan)))
    if not run or not checks:
        return True
    return _run(project, [check.command for check in checks], setup, as_json, check_timeout_s, echo)


def _run(
    project: Path, commands: list[str], setup: str, as_json: bool, check_timeout_s: float, echo: Callable[[str], None]
) -> bool:
    view = JsonView() if as_json else TextView()  # the events a run shows, as a run shows them

    def show(event: AnyEvent) -> None:
        view(event)
        view.flush()  # each as it happens: no ContextKeeper batches these

    options = RunOptions(
        working_dir=project, agent_command=(), checks=tuple(commands), setup=setup, check_timeout_s=check_timeout_s
    )
    try:
        cache: SessionStore | None = SessionStore(config.store_path())
    except StoreError:
        cache = None
    try:
        standing = ProjectChecks(options, show, config.envs_dir(), cache).baseline(project, "checks").verdicts
    finally:
        if cache is not None:
            cache.close()
    if not as_json:
        for verdict in standing:
            echo(f"{verdict.command}: {verdict.kind}: {verdict.summary}")
    return all(verdict.kind == "passed" for verdict in standing)


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


def _commands(plan: SetupPlan) -> list[str]:
    return [shlex.join(step.command) for step in plan.steps]


def _none_found(project: Path) -> str:
    return f"{project}: no checks found: pass --check CMD"


def _setup_text(setup: str, reasons: list[str], problems: list[str], commands: list[str]) -> str:
    if setup == SETUP_OFF:
        return "setup: off (--setup off): the checks run in your environment as it is"
    lines = ["setup:"] + [f"  {reason}" for reason in reasons]
    lines += [f"  $ {command}" for command in commands] or ["  nothing to do"]
    lines += [f"  problem: {problem}" for problem in problems]
    return "\n".join(lines)
