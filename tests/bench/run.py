"""Benchmarks (`make bench`): each figure is a ratio against a baseline measured in the same run.

1. `pa --help` wall time vs `python -c "import typer"` (the floor of any typer CLI).   target <= 1.5x
2. `pa` on a one-file task (offline brain, real Claude Code CLI) vs `claude -p` alone on the same
   task, both against the same local fake Anthropic API.                                target <= 1.5x
Medians of REPEATS runs, alternating with the baseline. Prints a table; exits 1 if a target is missed.
3. The supervisor's Gemini economy, measured by the fake Gemini API: calls and tokens per subtask
   on the happy path and with one clarification (the original tool made 5+ calls per iteration).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from agentproxy.brain.gemini import GeminiBrain
from agentproxy.messages import BrainCalled, Event
from agentproxy.options import RunOptions
from agentproxy.runtime import run_task
from agentproxy.testing.claude_env import find_claude_bin, isolated_claude_env
from agentproxy.testing.fake_anthropic import FakeAnthropic, Text, write_file
from agentproxy.testing.fake_gemini import FakeGemini, Json

REPEATS = 7
PA = [sys.executable, "-m", "agentproxy"]
TASK = "Create hello.txt containing hi"


def medians_s(baseline: Callable[[], None], measured: Callable[[], None]) -> tuple[float, float, float, float]:
    """Median wall times of both, run alternately so that the machine's drift hits both alike, and
    the lowest and highest ratio of a measured run to the baseline run beside it (the noise)."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(REPEATS):
        for run, into in ((baseline, times[0]), (measured, times[1])):
            started = time.perf_counter()
            run()
            into.append(time.perf_counter() - started)
    ratios = [m / b for b, m in zip(*times, strict=True)]
    return statistics.median(times[0]), statistics.median(times[1]), min(ratios), max(ratios)


def check(argv: list[str], **kwargs) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, **kwargs)
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()[-500:]}")


def help_figure() -> tuple[float, float, float, float]:
    return medians_s(lambda: check([sys.executable, "-c", "import typer"]), lambda: check([*PA, "--help"]))


def orchestration_figure(claude: str, root: Path) -> tuple[float, float, float, float]:
    write = write_file("hello.txt", "hi\n")
    runs = iter(range(1000))

    def fresh_dir() -> Path:
        directory = root / f"run-{next(runs)}"
        directory.mkdir()
        return directory

    with FakeAnthropic(
        default=lambda request: write if not request.tool_results else Text("Created hello.txt.")
    ) as api:
        env = isolated_claude_env(api.url, root / "claude-home")
        env["AGENTPROXY_HOME"] = str(root / "agentproxy-home")
        raw = [claude, "-p", TASK, "--output-format", "stream-json", "--verbose", "--allowedTools", "Write"]
        return medians_s(
            lambda: check(raw, cwd=fresh_dir(), env=env),
            lambda: check([*PA, "-d", str(fresh_dir()), "--claude-bin", claude, TASK], env=env),
        )


WRITE = {"write": {"path": "hello.py", "content": "print('hello')\n"}}
ASK = {"ask": {"question": "Which greeting?", "options": [{"label": "hello"}, {"label": "hi"}]}}
PLAN = Json({"subtasks": [{"id": "1", "title": "hello.py", "instructions": "Create hello.py printing hello"}]})
PASSED = Json({"passed": True, "findings": ["done as asked"]})


def economy_figure(root: Path, name: str, steps: list[dict], replies: list[Json]) -> tuple[str, int, int, int]:
    """(scenario, Gemini calls, input tokens, output tokens) for one one-subtask run."""
    script = root / f"{name}.json"
    script.write_text(json.dumps({"turns": [[*steps, {"result": "Created hello.py."}]]}))
    project = root / name
    project.mkdir()
    options = RunOptions(
        working_dir=project,
        agent_command=(sys.executable, "-m", "agentproxy.scripted_agent", "--script", str(script)),
        checks=(f"{sys.executable} hello.py",),
    )
    events: list[Event] = []
    with FakeGemini(*replies) as gemini:
        brain = GeminiBrain("bench-key", base_url=gemini.url)
        outcome = run_task(
            "Create hello.py",
            options,
            brain=brain,
            subscribers=[events.append],
            store_path=root / "sessions.db",
            timeout_s=120,
        )
    if outcome.status != "done":
        raise SystemExit(f"economy run {name} failed: {outcome.reason}")
    calls = [e for e in events if isinstance(e, BrainCalled)]
    return name, len(gemini.requests), sum(c.input_tokens for c in calls), sum(c.output_tokens for c in calls)


def main() -> int:
    rows = [("pa --help", 'python -c "import typer"', *help_figure(), 1.5)]
    claude = find_claude_bin()
    if claude is None:
        print("claude not installed (make agents): skipping the orchestration figure", file=sys.stderr)
    else:
        with tempfile.TemporaryDirectory(prefix="agentproxy-bench-") as root:
            rows.append(("pa one-file task", "claude -p alone", *orchestration_figure(claude, Path(root)), 1.5))
    with tempfile.TemporaryDirectory(prefix="agentproxy-economy-") as root:
        economy = [
            economy_figure(Path(root), "happy-path", [WRITE], [PLAN, PASSED]),
            economy_figure(Path(root), "one-clarification", [ASK, WRITE], [PLAN, Json({"answers": ["hello"]}), PASSED]),
        ]
    print(f"median of {REPEATS} runs each, on {os.cpu_count()} cores\n")
    header = f"{'measured':<20} {'baseline':<26} {'measured s':>10} {'baseline s':>10} {'ratio':>7} {'min-max':>13}"
    print(f"{header} {'target':>7}")
    missed = False
    for name, base_name, baseline, measured, low, high, target in rows:
        ratio = measured / baseline
        missed |= ratio > target
        noise = f"{low:.2f}-{high:.2f}x"
        print(
            f"{name:<20} {base_name:<26} {measured:>10.3f} {baseline:>10.3f} {ratio:>6.2f}x {noise:>13} {target:>6.1f}x"
        )
    print(f"\n{'Gemini economy (1 subtask)':<28} {'calls':>6} {'tokens in':>10} {'tokens out':>11}")
    for name, calls, tokens_in, tokens_out in economy:
        print(f"{name:<28} {calls:>6} {tokens_in:>10} {tokens_out:>11}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
