"""The project's own checks: running them bounded, and reporting failures (agentproxy.detect says which)."""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from agentproxy import procs
from agentproxy.child_env import child_environment
from agentproxy.messages import CheckResult, CheckVerdict

TAIL_CHARS = 4000
# Told to the agent before its first turn and with a follow-up: failures that are not its doing.
PREEXISTING_NOTE = "These checks already failed before your change; leave them unless the task is about them:"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def run_checks(commands: Sequence[str], cwd: Path, timeout_s: float, tail_chars: int = TAIL_CHARS) -> list[CheckResult]:
    """Run each command through the shell in its own process group; never raises for a failing check."""
    env = child_environment()
    return [run_command(command, cwd, timeout_s, env, tail_chars) for command in commands]


def run_command(
    command: str | Sequence[str], cwd: Path, timeout_s: float, env: Mapping[str, str], tail_chars: int = TAIL_CHARS
) -> CheckResult:
    """One command (a str goes through the shell), bounded; its exit code, output tail and time."""
    return run_command_output(command, cwd, timeout_s, env, tail_chars)[0]


def run_command_output(
    command: str | Sequence[str], cwd: Path, timeout_s: float, env: Mapping[str, str], tail_chars: int = TAIL_CHARS
) -> tuple[CheckResult, str]:
    """run_command, and the whole output besides, for reading per-test reports out of it."""
    started = time.monotonic()
    try:
        code, output, timed_out = procs.run_bounded(command, cwd=cwd, timeout_s=timeout_s, env=env)
    except OSError as exc:  # e.g. cwd vanished, or the tool did: report it as the command's failure
        code, output, timed_out = 127, str(exc).encode(), False
    text = _ANSI.sub("", output.decode("utf-8", errors="replace"))
    result = CheckResult(
        command=command if isinstance(command, str) else shlex.join(command),
        exit_code=code if code is not None else -1,
        output_tail=text[-tail_chars:],
        duration_s=round(time.monotonic() - started, 3),
        timed_out=timed_out,
    )
    return result, text


def preexisting_note(verdicts: Sequence[CheckVerdict]) -> str:
    """What already failed before the agent's change, for its prompt; "" when nothing did.

    Whole checks that fail as at the base, and the tests that already failed inside a check the change broke.
    """
    lines = [f"- `{v.command}`: {v.summary}" for v in verdicts if v.kind == "preexisting"]
    lines += [f"- `{v.command}`: {', '.join(v.preexisting)}" for v in verdicts if v.kind == "failed" and v.preexisting]
    return PREEXISTING_NOTE + "\n" + "\n".join(lines) if lines else ""


def failure_report(results: Sequence[CheckResult], max_chars: int) -> str:
    """The failing checks' output for a follow-up prompt; each output keeps its end, where errors are."""
    failed = [result for result in results if not result.passed]
    if not failed:
        return ""
    budget = max(200, max_chars // len(failed))
    sections = []
    for result in failed:
        status = f"timed out after {result.duration_s:g}s" if result.timed_out else f"exited {result.exit_code}"
        header = f"$ {result.command}  ({status})"
        room = budget - len(header) - 3  # the header's newline and the blank line between sections
        output = result.output_tail.strip()
        if len(output) > room:
            output = "…" + output[-(room - 1) :] if room > 1 else "…"
        sections.append(f"{header}\n{output}")
    return "\n\n".join(sections)[-max_chars:]
