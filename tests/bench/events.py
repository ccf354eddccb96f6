"""Event throughput (`make bench`): one agent floods a turn with stream-json lines, `pa --output json` shows them.

Measured through the real CLI (worker -> ContextKeeper -> store -> JSON view -> pa's stdout), with
tests/bench/flood_agent.py as the agent, its environment holding an API key for the redactor to look for:
- events/s: the turn's events (one per text line, and the result's) over the time from the agent's first text
  line to the moment its result's event appears on pa's stdout;
- CPU per event: pa's own CPU time (all its threads, not its children) from its first text event shown to its
  result's, per event;
- lag: when the result's event appears on pa's stdout minus when the agent wrote the result line.
Medians of REPEATS runs. Exits 1 if a target is missed.

    python tests/bench/events.py [--lines N] [--think SECONDS]

--think: the agent's pause before its first text line (0 by default: the flood meets pa's start-up work).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPEATS = 3
LINES = 20_000
TASK = "Explain what this project does"  # asks for no change: the one flooded turn is the whole subtask
TARGET_EVENTS_PER_S = 20_000
TARGET_LAG_S = 0.5
FLOOD_AGENT = Path(__file__).with_name("flood_agent.py")
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Figure:
    events: int
    events_per_s: float
    cpu_us_per_event: float
    lag_s: float


def own_cpu_s(pid: int) -> float:
    """The process's user and system time, its threads' included and its children's not (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S  # utime and stime, fields 14 and 15


def run_once(root: Path, lines: int, think_s: float) -> Figure:
    project, stamps = root / "project", root / "stamps.json"
    project.mkdir()
    agent = shlex.join(
        [sys.executable, str(FLOOD_AGENT), "--lines", str(lines), "--think", str(think_s), "--stamps", str(stamps)]
    )
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    env["AGENTPROXY_HOME"] = str(root / "home")
    env["BENCH_API_KEY"] = "sk-bench-0123456789abcdef"  # a secret to redact, as a real run has its API key
    argv = [sys.executable, "-m", "agentproxy", "--output", "json", "-d", str(project), "--claude-bin", agent, TASK]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as pa:
        assert pa.stdout is not None
        events = 0
        started_cpu = finished_cpu = finished_at = None
        for line in pa.stdout:
            if started_cpu is None and b'"kind":"agent_said"' in line:
                started_cpu = own_cpu_s(pa.pid)
            if started_cpu is None:
                continue
            events += 1
            if b'"kind":"agent_finished"' in line:
                finished_at, finished_cpu = time.time(), own_cpu_s(pa.pid)
                break
        _, errors = pa.communicate(timeout=120)
    if finished_at is None or started_cpu is None or finished_cpu is None:
        raise SystemExit(f"pa showed no agent_finished event (exit {pa.returncode}): {errors.decode()[-500:]}")
    written = json.loads(stamps.read_text())
    return Figure(
        events=events,
        events_per_s=events / (finished_at - written["first_line_at"]),
        cpu_us_per_event=(finished_cpu - started_cpu) / events * 1e6,
        lag_s=finished_at - written["result_at"],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=LINES)
    parser.add_argument("--think", type=float, default=0.0, metavar="SECONDS")
    args = parser.parse_args()
    figures = []
    for _ in range(REPEATS):
        with tempfile.TemporaryDirectory(prefix="agentproxy-events-") as root:
            figures.append(run_once(Path(root), args.lines, args.think))
    rate = statistics.median(f.events_per_s for f in figures)
    cpu = statistics.median(f.cpu_us_per_event for f in figures)
    lag = statistics.median(f.lag_s for f in figures)
    print(f"\none agent, {args.lines} stream-json lines in one turn after {args.think:g}s, pa --output json")
    print(f"median of {REPEATS} runs, on {os.cpu_count()} cores\n")
    print(f"{'events':>8} {'events/s':>10} {'target':>8} {'CPU us/event':>13} {'lag s':>7} {'target':>7}")
    print(f"{figures[0].events:>8} {rate:>10.0f} {TARGET_EVENTS_PER_S:>8} {cpu:>13.1f} {lag:>7.2f} {TARGET_LAG_S:>7}")
    runs = (f"{f.events_per_s:.0f}/s {f.cpu_us_per_event:.0f} us lag {f.lag_s:.2f}s" for f in figures)
    print("runs: " + ", ".join(runs))
    return 0 if rate >= TARGET_EVENTS_PER_S and lag < TARGET_LAG_S else 1


if __name__ == "__main__":
    sys.exit(main())
