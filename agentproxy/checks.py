"""The project's own checks: which commands verify it, running them bounded, and reporting failures."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from agentproxy import procs
from agentproxy.child_env import child_environment
from agentproxy.messages import CheckResult

TAIL_CHARS = 4000
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_MAKE_TEST_TARGET = re.compile(r"^test\s*:", re.MULTILINE)
_PYTEST_MARKERS = ("pytest.ini", "conftest.py", "tox.ini")


def detect_checks(project: Path) -> list[str]:
    """The commands a developer of this project would run before calling a change done.

    A `make test` target wins: the project has said how it wants to be tested.
    """
    makefile = project / "Makefile"
    if makefile.is_file() and _MAKE_TEST_TARGET.search(_read(makefile)):
        return ["make test"]
    commands = []
    if _uses_pytest(project):
        python = "python" if shutil.which("python") else "python3"
        commands.append(f"{python} -m pytest -q")
    if _has_npm_test(project):
        commands.append("npm test")
    if (project / "Cargo.toml").is_file():
        commands.append("cargo test")
    if (project / "go.mod").is_file():
        commands.append("go test ./...")
    return commands


def run_checks(commands: Sequence[str], cwd: Path, timeout_s: float, tail_chars: int = TAIL_CHARS) -> list[CheckResult]:
    """Run each command through the shell in its own process group; never raises for a failing check."""
    results = []
    env = child_environment()
    for command in commands:
        started = time.monotonic()
        try:
            code, output, timed_out = procs.run_bounded(command, cwd=cwd, timeout_s=timeout_s, env=env)
        except OSError as exc:  # e.g. cwd vanished: report it as the check's failure
            code, output, timed_out = 127, str(exc).encode(), False
        text = _ANSI.sub("", output.decode("utf-8", errors="replace"))
        results.append(
            CheckResult(
                command=command,
                exit_code=code if code is not None else -1,
                output_tail=text[-tail_chars:],
                duration_s=round(time.monotonic() - started, 3),
                timed_out=timed_out,
            )
        )
    return results


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


def _uses_pytest(project: Path) -> bool:
    if any((project / name).is_file() for name in _PYTEST_MARKERS):
        return True
    for config in ("pyproject.toml", "setup.cfg"):
        if "pytest" in _read(project / config):
            return True
    tests = project / "tests"
    if tests.is_dir() and any(tests.glob("test_*.py")):
        return True
    return any(project.glob("test_*.py")) or any(project.glob("*_test.py"))


def _has_npm_test(project: Path) -> bool:
    package = project / "package.json"
    if not package.is_file():
        return False
    try:
        script = json.loads(_read(package)).get("scripts", {}).get("test", "")
    except (json.JSONDecodeError, AttributeError):
        return False
    # npm init's placeholder fails on purpose; it is not a test suite.
    return bool(script) and "no test specified" not in script


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
