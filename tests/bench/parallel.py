"""Several agents at once (`make bench`), each figure against a baseline measured in the same run.

1. Parallel efficiency: 8 independent subtasks whose agent turns the fake Anthropic API delays by
   DELAY_S, real Claude Code CLIs, `--parallel 8`: the ideal makespan (one such subtask alone, pa's
   whole run) over the measured one.                                               target >= 0.90
   `--parallel 1` for contrast (it runs them one after another, in your tree). The same with
   scripted agents that sleep DELAY_S in their turn: pa's own overhead, without the CLIs' start-up
   (each `claude` takes about a second of CPU to start: 8 of them contend for this machine's 2 cores).
2. Scale: AGENTS scripted agents (the project's stand-in speaking the CLI's protocol, so the
   measurement is the supervisor's own cost) at once: pa's peak RSS              target <= 150 MB
   and pa's own CPU seconds per agent turn (its threads, not its children), against one agent alone.

    python tests/bench/parallel.py [--agents N] [--skip-cli]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from agentproxy.testing.claude_env import find_claude_bin, isolated_claude_env
from agentproxy.testing.fake_anthropic import Delay, FakeAnthropic, Text, write_file

PA = [sys.executable, "-m", "agentproxy"]
DELAY_S = 3.0
SUBTASKS = 8
AGENTS = 50
TARGET_EFFICIENCY = 0.90
TARGET_RSS_MB = 150
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
POLL_S = 0.05


@dataclass(frozen=True)
class Run:
    wall_s: float
    peak_rss_mb: float
    cpu_s: float  # pa's own, not its children's


def measure(argv: list[str], env: dict[str, str]) -> Run:
    """Run pa to the end, sampling its resident memory and CPU time from /proc until it exits."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak_kb, cpu_s = 0, 0.0
    while process.poll() is None:
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
            fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            break  # it exited between poll and read
        peak_kb = max(peak_kb, _kb(status, "VmHWM:"))
        cpu_s = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S
        time.sleep(POLL_S)
    _, stderr = process.communicate(timeout=600)
    if process.returncode != 0:
        raise SystemExit(f"pa failed ({process.returncode}): {stderr.strip()[-800:]}")
    return Run(time.perf_counter() - started, peak_kb / 1024, cpu_s)


def _kb(status: str, key: str) -> int:
    line = next((line for line in status.splitlines() if line.startswith(key)), f"{key} 0 kB")
    return int(line.split()[1])


def bullets(count: int) -> str:
    return "Write the files:\n" + "".join(f"- write file{i}.txt\n" for i in range(1, count + 1))


def new_project(root: Path, name: str) -> Path:
    project = root / name
    project.mkdir()
    return project


def efficiency_figures(claude: str, root: Path) -> tuple[Run, Run, Run]:
    """One delayed subtask alone; SUBTASKS of them with --parallel SUBTASKS; and with --parallel 1."""

    def agent(request):  # every agent: a delayed write of its own file, then done
        if request.tool_results:
            return Text("Written.")
        number = request.first_user_text.split("write file", 1)[-1].split(".txt", 1)[0]
        name = f"file{number}.txt" if number.isdigit() else "file1.txt"
        return Delay(DELAY_S, write_file(name, "x\n"))

    with FakeAnthropic(default=agent) as api:
        env = {**isolated_claude_env(api.url, root / "claude-home"), "AGENTPROXY_HOME": str(root / "home")}

        def pa(name: str, task: str, *flags: str) -> Run:
            project = new_project(root, name)
            return measure([*PA, "-d", str(project), "--claude-bin", claude, *flags, task], env)

        alone = pa("alone", "write file1.txt")
        parallel = pa("parallel", bullets(SUBTASKS), "--parallel", str(SUBTASKS))
        serial = pa("serial", bullets(SUBTASKS), "--parallel", "1")
    return alone, parallel, serial


def scripted(root: Path, sleep_s: float = 0.0):
    """pa with the scripted agent, whose one turn (after sleep_s) writes out.txt."""
    script = root / f"script-{sleep_s:g}.json"
    turn = [{"sleep": sleep_s}, {"write": {"path": "out.txt", "content": "x\n"}}, {"result": "Wrote out.txt."}]
    script.write_text(json.dumps({"turns": [turn]}))
    agent = shlex.join([sys.executable, "-m", "agentproxy.scripted_agent", "--script", str(script)])
    env = {**os.environ, "AGENTPROXY_HOME": str(root / "home"), "PYTHONPATH": str(Path(__file__).parents[2])}
    env.pop("GEMINI_API_KEY", None)
    env.pop("GOOGLE_API_KEY", None)

    def pa(name: str, task: str, *flags: str) -> Run:
        project = new_project(root, f"{name}-{sleep_s:g}")
        return measure([*PA, "-d", str(project), "--claude-bin", agent, "--setup", "off", *flags, task], env)

    return pa


def scale_figures(root: Path, agents: int) -> tuple[Run, Run]:
    """One scripted agent alone, then `agents` of them at once."""
    pa = scripted(root)
    return pa("one", "write out.txt"), pa("many", bullets(agents), "--parallel", str(agents))


def scripted_efficiency(root: Path) -> tuple[Run, Run]:
    """One scripted agent sleeping DELAY_S alone, then SUBTASKS of them at once."""
    pa = scripted(root, DELAY_S)
    return pa("alone", "write out.txt"), pa("parallel", bullets(SUBTASKS), "--parallel", str(SUBTASKS))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=AGENTS)
    parser.add_argument("--skip-cli", action="store_true", help="only the scripted-agent figures")
    args = parser.parse_args()
    missed = []
    with tempfile.TemporaryDirectory(prefix="agentproxy-bench-parallel-") as scratch:
        root = Path(scratch)
        claude = find_claude_bin()
        if claude and not args.skip_cli:
            alone, parallel, serial = efficiency_figures(claude, root / "cli")
            efficiency = alone.wall_s / parallel.wall_s
            print(f"parallel efficiency, {SUBTASKS} subtasks of {DELAY_S:g} s agent turns (real Claude Code CLI):")
            print(f"  one subtask alone          {alone.wall_s:6.2f} s   (the ideal makespan)")
            print(
                f"  --parallel {SUBTASKS}               {parallel.wall_s:6.2f} s   efficiency {efficiency:.2f}"
                f"   target >= {TARGET_EFFICIENCY}"
            )
            print(
                f"  --parallel 1               {serial.wall_s:6.2f} s   efficiency {alone.wall_s / serial.wall_s:.2f}"
            )
            if efficiency < TARGET_EFFICIENCY:
                missed.append(f"parallel efficiency {efficiency:.2f} < {TARGET_EFFICIENCY}")
        (root / "scripted").mkdir()
        alone, parallel = scripted_efficiency(root / "scripted")
        print(f"parallel efficiency, {SUBTASKS} scripted agents sleeping {DELAY_S:g} s (pa's own overhead):")
        print(
            f"  one alone {alone.wall_s:6.2f} s, --parallel {SUBTASKS} {parallel.wall_s:6.2f} s:"
            f" efficiency {alone.wall_s / parallel.wall_s:.2f}"
        )
        one, many = scale_figures(root / "scripted", args.agents)
        print(f"scale, {args.agents} scripted agents at once:")
        print(
            f"  pa peak RSS                {many.peak_rss_mb:6.1f} MB  (one agent alone: {one.peak_rss_mb:.1f} MB)"
            f"   target <= {TARGET_RSS_MB} MB"
        )
        print(
            f"  pa CPU per agent turn      {many.cpu_s / args.agents:6.3f} s   (one agent alone: {one.cpu_s:.3f} s;"
            f" ratio {many.cpu_s / args.agents / one.cpu_s:.2f})"
        )
        print(f"  wall                       {many.wall_s:6.2f} s   (one agent alone: {one.wall_s:.2f} s)")
        if many.peak_rss_mb > TARGET_RSS_MB:
            missed.append(f"peak RSS {many.peak_rss_mb:.0f} MB > {TARGET_RSS_MB} MB")
    for miss in missed:
        print(f"MISSED: {miss}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
