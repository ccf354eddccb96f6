"""Benchmarks of other vendors' agents (`make bench`), each a ratio against a baseline measured in the same run.

1. Per backend: `pa --agent codex|gemini` on a one-file task vs that CLI alone (the argv pa gives it) on
   the same task, both against the same local fake API (no target: reported).
2. Best-of-3 makespan vs a single attempt, every agent turn delayed alike by the fake: the attempts run
   at once, so the race should cost little more than one attempt.                        target <= 1.2x
Medians of REPEATS runs, alternating with the baseline. Prints a table; exits 1 if a target is missed.
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

from agentproxy.agents.codex import CODEX
from agentproxy.agents.gemini_cli import GEMINI_CLI
from agentproxy.testing import fake_gemini, fake_openai
from agentproxy.testing.codex_env import find_codex_bin, isolated_codex_env
from agentproxy.testing.gemini_cli_env import find_gemini_bin, isolated_gemini_env

REPEATS = 5
PA = [sys.executable, "-m", "agentproxy"]
TASK = "Create hello.txt containing hi"
TURN_DELAY_S = 3.0  # what the fake holds each first reply back in the best-of figure
BEST_OF_TARGET = 1.2


def medians_s(baseline: Callable[[], None], measured: Callable[[], None]) -> tuple[float, float]:
    """Median wall times of both, run alternately so that the machine's drift hits both alike."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(REPEATS):
        for run, into in ((baseline, times[0]), (measured, times[1])):
            started = time.perf_counter()
            run()
            into.append(time.perf_counter() - started)
    return statistics.median(times[0]), statistics.median(times[1])


def check(argv: list[str], **kwargs) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, **kwargs)
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()[-500:]}")


class FreshDirs:
    def __init__(self, root: Path) -> None:
        self.root, self.count = root, 0

    def __call__(self) -> Path:
        self.count += 1
        directory = self.root / f"run-{self.count}"
        directory.mkdir()
        return directory


def codex_figure(codex: str, root: Path) -> tuple[float, float]:
    write = fake_openai.write_file("hello.txt", "hi\n")
    fresh = FreshDirs(root)
    with fake_openai.FakeOpenAI(default=lambda r: write if not r.tool_outputs else fake_openai.Text("Done.")) as api:
        env = {**isolated_codex_env(api.base_url, root / "codex-home"), "AGENTPROXY_HOME": str(root / "pa-home")}

        def alone() -> None:
            directory = fresh()
            check(CODEX.turn_argv([codex], TASK, cwd=directory, resume=None, model=None), cwd=directory, env=env)

        pa = [*PA, "--agent", "codex", "--codex-bin", codex]
        return medians_s(alone, lambda: check([*pa, "-d", str(fresh()), TASK], env=env))


def gemini_figure(gemini: str, root: Path) -> tuple[float, float]:
    write = fake_gemini.write_file("hello.txt", "hi\n")
    fresh = FreshDirs(root)
    done = fake_gemini.RawText("Done.")
    with fake_gemini.FakeGemini(default=lambda r: write if not r.function_responses else done) as api:
        env = isolated_gemini_env(api.url, root / "gemini-home")
        # The agent's own key, in its own settings: pa's brain stays offline, as in the baseline.
        (root / "gemini-home" / ".gemini" / ".env").write_text(
            f"GEMINI_API_KEY={env.pop('GEMINI_API_KEY')}\nGOOGLE_GEMINI_BASE_URL={env.pop('GOOGLE_GEMINI_BASE_URL')}\n"
        )
        env["AGENTPROXY_HOME"] = str(root / "pa-home")

        def alone() -> None:
            directory = fresh()
            check(GEMINI_CLI.turn_argv([gemini], TASK, cwd=directory, resume=None, model=None), cwd=directory, env=env)

        pa = [*PA, "--agent", "gemini", "--gemini-bin", gemini]
        return medians_s(alone, lambda: check([*pa, "-d", str(fresh()), TASK], env=env))


def best_of_figure(codex: str, root: Path) -> tuple[float, float]:
    write = fake_openai.Delay(TURN_DELAY_S, fake_openai.write_file("hello.txt", "hi\n"))
    fresh = FreshDirs(root)
    with fake_openai.FakeOpenAI(default=lambda r: write if not r.tool_outputs else fake_openai.Text("Done.")) as api:
        env = {**isolated_codex_env(api.base_url, root / "codex-home"), "AGENTPROXY_HOME": str(root / "pa-home")}
        single = [*PA, "--agent", "codex", "--codex-bin", codex]
        return medians_s(
            lambda: check([*single, "-d", str(fresh()), TASK], env=env),
            lambda: check([*single, "--best-of", "3", "-d", str(fresh()), TASK], env=env),
        )


def main() -> int:
    codex, gemini = find_codex_bin(), find_gemini_bin()
    if codex is None or gemini is None:
        print("the Codex and Gemini CLIs are not installed (make agents)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-agents-") as tmp:
        root = Path(tmp)
        (root / "codex").mkdir(), (root / "gemini").mkdir(), (root / "best").mkdir()
        rows = [
            ("pa --agent codex", "codex exec alone", *codex_figure(codex, root / "codex"), None),
            ("pa --agent gemini", "gemini -p alone", *gemini_figure(gemini, root / "gemini"), None),
            ("pa --best-of 3 (codex)", "one attempt (pa)", *best_of_figure(codex, root / "best"), BEST_OF_TARGET),
        ]
    print(f"median of {REPEATS} runs each, on {os.cpu_count()} cores; best-of turns delayed {TURN_DELAY_S:g} s\n")
    print(f"{'measured':<24} {'baseline':<20} {'measured s':>10} {'baseline s':>10} {'ratio':>7} {'target':>7}")
    missed = False
    for name, base_name, baseline, measured, target in rows:
        ratio = measured / baseline
        missed |= target is not None and ratio > target
        shown = f"{target:.1f}x" if target is not None else "-"
        print(f"{name:<24} {base_name:<20} {measured:>10.3f} {baseline:>10.3f} {ratio:>6.2f}x {shown:>7}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
