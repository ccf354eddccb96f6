"""Benchmarks (`make bench`): each figure is a ratio against a baseline measured in the same run.

1. `pa --help` wall time vs `python -c "import typer"` (the floor of any typer CLI).   target <= 1.5x
2. `pa` on a one-file task (offline brain, real Claude Code CLI) vs `claude -p` alone on the same
   task, both against the same local fake Anthropic API.                                target <= 1.5x
Medians of REPEATS runs. Prints a table; exits 1 if a target is missed.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from agentproxy.testing.claude_env import find_claude_bin, isolated_claude_env
from agentproxy.testing.fake_anthropic import FakeAnthropic, Text, ToolUse

REPEATS = 5
PA = [sys.executable, "-m", "agentproxy"]
TASK = "Create hello.txt containing hi"


def median_s(run: Callable[[], None]) -> float:
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def check(argv: list[str], **kwargs) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, **kwargs)
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()[-500:]}")


def help_figure() -> tuple[float, float]:
    baseline = median_s(lambda: check([sys.executable, "-c", "import typer"]))
    measured = median_s(lambda: check([*PA, "--help"]))
    return baseline, measured


def orchestration_figure(claude: str, root: Path) -> tuple[float, float]:
    write = ToolUse("Write", lambda request: {"file_path": f"{request.cwd}/hello.txt", "content": "hi\n"})
    runs = iter(range(1000))

    def fresh_dir() -> Path:
        directory = root / f"run-{next(runs)}"
        directory.mkdir()
        return directory

    with FakeAnthropic(default=lambda request: write if not request.tool_results else Text("Created hello.txt.")) as api:
        env = isolated_claude_env(api.url, root / "claude-home")
        env["AGENTPROXY_HOME"] = str(root / "agentproxy-home")
        raw = [claude, "-p", TASK, "--output-format", "stream-json", "--verbose", "--allowedTools", "Write"]
        baseline = median_s(lambda: check(raw, cwd=fresh_dir(), env=env))
        measured = median_s(lambda: check([*PA, "-d", str(fresh_dir()), "--claude-bin", claude, TASK], env=env))
    return baseline, measured


def main() -> int:
    rows = [("pa --help", 'python -c "import typer"', *help_figure(), 1.5)]
    claude = find_claude_bin()
    if claude is None:
        print("claude not installed (make claude): skipping the orchestration figure", file=sys.stderr)
    else:
        with tempfile.TemporaryDirectory(prefix="agentproxy-bench-") as root:
            rows.append(("pa one-file task", "claude -p alone", *orchestration_figure(claude, Path(root)), 1.5))
    print(f"median of {REPEATS} runs each, on {os.cpu_count()} cores\n")
    print(f"{'measured':<20} {'baseline':<26} {'measured s':>10} {'baseline s':>10} {'ratio':>7} {'target':>7}")
    missed = False
    for name, base_name, baseline, measured, target in rows:
        ratio = measured / baseline
        missed |= ratio > target
        print(f"{name:<20} {base_name:<26} {measured:>10.3f} {baseline:>10.3f} {ratio:>6.2f}x {target:>6.1f}x")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
