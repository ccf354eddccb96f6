"""The figures of issue 7 (checks on real repositories): `python tests/bench/checks.py [--json PATH]`.

1. Detection on the fixture set (agentproxy.testing.fixture_repos): detect_checks' commands against
   what a maintainer of each kind of project runs (EXPECTED, written from the fixtures' files):
   right / acceptable / wrong / missing.
2. Green in a fresh tree: `pa --show-checks --run` on a fresh git copy of each fixture with a fresh
   AGENTPROXY_HOME, with `--setup auto` and with `--setup off`: passed (exit 0) / failed / environment.
3. Baseline cost: `pa` tasks (scripted agent, --setup off) on a repository whose suite takes ~20 s:
   the baseline's extra time the first time and cached, against the suite run alone (the review's cost).
Plain text on stdout; always exits 0 unless a measurement could not be taken.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentproxy.detect import detect_checks
from agentproxy.testing.fixture_repos import REPOSITORIES, make_repository

PA = Path(sys.executable).with_name("pa")
PA_TIMEOUT_S = 900
CAUSE_CHARS = 200
SUITE_TESTS = 20
SUITE_SLEEP_S = 1
WRITE_HELLO = [[{"write": {"path": "hello.txt", "content": "hello\n"}}, {"result": "Created hello.txt."}]]
# Inherited settings that would change what is measured: an agent command, a Gemini brain, agentproxy's venv.
DROPPED_ENV = {"CLAUDE_BIN", "GEMINI_API_KEY", "GOOGLE_API_KEY", "VIRTUAL_ENV"}


@dataclass(frozen=True)
class Expected:
    """What the project's developers run (right), what would also do (acceptable), and lint steps fine beside them."""

    right: tuple[str, ...]
    acceptable: tuple[str, ...]
    reason: str
    also: tuple[str, ...] = ()


EXPECTED = {
    "src-layout-tox": Expected(
        ("tox -e py3", "pytest tests", "python -m pytest tests"),
        ("tox", "pytest", "python -m pytest"),
        "tox.ini's py3 env runs `pytest {posargs:tests}`; without tox installed, that command",
        also=("ruff check src tests",),
    ),
    "unittest-makefile": Expected(
        ("make test", "make -f makefile test"),
        ("python -m unittest discover -s tests -t .", "python -m unittest discover", "python -m unittest"),
        "the lowercase makefile's `test` target is the entry point (it runs unittest discover)",
    ),
    "unittest-suite": Expected(
        ("python -m unittest discover -s tests -t .", "python -m unittest discover", "python -m unittest"),
        ("python -m unittest discover -s tests",),
        "unittest.TestCase in a tests/ package, no pytest declared: unittest discovery from the root",
    ),
    "make-check-only": Expected(
        ("make check",),
        ("make all check", "make && make check"),
        "the Makefile's only test target is GNU's `check` (no `test`)",
    ),
    "make-test-variable": Expected(
        ("make check",),
        (),
        "`test :=` is a variable, not a target; `check` is the test target",
    ),
    "pnpm-workspace": Expected(
        ("pnpm -r test", "pnpm --recursive test", "pnpm -r run test", "pnpm build && pnpm -r test"),
        ("pnpm --filter @mono/core test", "pnpm -r --if-present test", "pnpm -r build && pnpm -r test"),
        "pnpm workspace: only packages/core has a test script (over its built dist/), the root none",
    ),
    "autotools": Expected(
        (
            "autoreconf -fi && ./configure && make check",
            "autoreconf -i && ./configure && make check",
            "autoreconf --install && ./configure && make check",
        ),
        ("./configure && make check",),
        "autotools checkout without configure: generate it, configure, `make check` runs Makefile.am's TESTS",
    ),
    "cmake": Expected(
        (
            "cmake -S . -B build && cmake --build build && ctest --test-dir build --output-on-failure",
            "cmake -S . -B build && cmake --build build && ctest --test-dir build",
        ),
        ("cmake -B build && cmake --build build && ctest --test-dir build",),
        "CMake with enable_testing/add_test: configure and build out of tree, then ctest",
    ),
    "ci-markers-tox": Expected(
        ('pytest -m "not online" tests/', 'python -m pytest -m "not online" tests/'),
        ('pytest -m "not online"', 'python -m pytest -m "not online"'),
        "the CI's Test step deselects `online` tests, which fail offline (tox's `pytest tests` would run them)",
        also=("ruff check .",),
    ),
    "noxfile": Expected(
        ("nox -s tests", "pytest -x tests", "python -m pytest -x tests"),
        ("nox", "pytest tests", "python -m pytest tests", "pytest", "python -m pytest"),
        "noxfile's `tests` session runs `pytest -x tests`; without nox installed, that command",
        also=("ruff check .",),
    ),
    "go": Expected(
        ("go test ./...",),
        ("go test .", "go vet ./... && go test ./..."),
        "a Go module: `go test ./...` tests every package",
    ),
    "rust-workspace": Expected(
        ("cargo test --workspace", "cargo test"),
        ("cargo test --all",),
        "a virtual Cargo workspace: cargo test over every member",
    ),
    "pytest-plain": Expected(
        ("python -m pytest", "python -m pytest tests"),
        ("pytest", "pytest tests"),
        "pytest functions; app.py at the root imports only with the root on sys.path (python -m pytest)",
    ),
    "npm-placeholder": Expected(
        (),
        (),
        "the test script is npm init's always-failing placeholder and there are no tests: nothing to check",
    ),
}


# --- 1. detection ------------------------------------------------------------------------------


def normalized(command: str) -> str:
    """The command with any Python interpreter spelled `python`, paths without a trailing slash, quoting canonical."""
    words = shlex.split(command)
    words = ["python" if re.fullmatch(r"(.*/)?python[0-9.]*", word) else word for word in words]
    return shlex.join(word.rstrip("/") if len(word) > 1 and word.endswith("/") else word for word in words)


def classify(detected: list[str], expected: Expected) -> str:
    if not detected:
        return "right" if not expected.right else "missing"
    found = {normalized(command) for command in detected}
    right, acceptable, also = (
        {normalized(c) for c in group} for group in (expected.right, expected.acceptable, expected.also)
    )
    if found & right and found <= right | also:
        return "right"
    if found & (right | acceptable) and found <= right | acceptable | also:
        return "acceptable"
    return "wrong"


def detection_figure(root: Path) -> dict[str, Any]:
    rows = []
    for name in REPOSITORIES:
        checks = detect_checks(make_repository(name, root))
        commands = [check.command for check in checks]
        rows.append({"fixture": name, "kind": classify(commands, EXPECTED[name]), "detected": commands})
    counts = {kind: sum(row["kind"] == kind for row in rows) for kind in ("right", "acceptable", "wrong", "missing")}
    print(f"1. Detection on the fixture set ({len(rows)} fixtures)")
    print("   " + ", ".join(f"{kind} {count}" for kind, count in counts.items()))
    for row in rows:
        expected = EXPECTED[row["fixture"]]
        detected = " ; ".join(row["detected"]) or "(nothing)"
        print(f"   {row['fixture']:<19} {row['kind']:<10} detected: {detected}")
        print(f"   {'':<30} expected: {' | '.join(expected.right) or '(nothing)'} -- {expected.reason}")
    return {"counts": counts, "fixtures": rows}


# --- 2. green in a fresh tree ------------------------------------------------------------------


def pa_env(home: Path) -> dict[str, str]:
    """A `pa` subprocess's environment: a fresh home, and agentproxy's own venv neither active nor on PATH."""
    env = {
        key: value for key, value in os.environ.items() if key not in DROPPED_ENV and not key.startswith("CLAUDECODE")
    }
    own_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(part for part in env.get("PATH", "").split(os.pathsep) if part != own_bin)
    env["AGENTPROXY_HOME"] = str(home)
    return env


def git(directory: Path, *args: str) -> str:
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@example.com"]
    done = subprocess.run(["git", *identity, *args], cwd=directory, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def committed(directory: Path) -> Path:
    git(directory, "init", "-q")
    git(directory, "add", "-A")
    git(directory, "commit", "-q", "-m", "fixture")
    return directory


def events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def telling_line(text: str) -> str:
    """The line of an output that says what went wrong: the first starting with or naming an error, else the last."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    starting = [line for line in lines if line.lower().startswith("error")]
    naming = [line for line in lines if "error" in line.lower()]
    return textwrap.shorten((starting + naming + lines[-1:] + [""])[0], CAUSE_CHARS)


def run_outcome(exit_code: int, lines: list[dict[str, Any]]) -> tuple[str, str]:
    """(passed | failed | environment | nothing to run, the cause) of one `pa --show-checks --run`."""
    if not any(line["kind"] == "check" for line in lines):
        return "nothing to run", "no checks detected"
    baselines = [line for line in lines if line["kind"] == "baseline_ran"]
    results = baselines[-1]["results"] if baselines else []
    setup_failures = [
        f"setup `{step['result']['command']}` exit {step['result'].get('exit_code', 0)}: "
        + telling_line(step["result"].get("output_tail", ""))
        for step in lines
        if step["kind"] == "setup_step_ran" and step["result"].get("exit_code", 0) != 0
    ]
    failing = [result for result in results if result.get("exit_code", 0) != 0 or result.get("timed_out")]
    if exit_code == 0 and not failing:
        return "passed", ""
    unrunnable = [result["environment"] for result in failing if result.get("environment")]
    causes = unrunnable or [f"`{r['command']}`: {telling_line(r.get('output_tail', ''))}" for r in failing]
    kind = "environment" if unrunnable else "failed"
    return kind, "; ".join(dict.fromkeys(causes + setup_failures)) or f"exit {exit_code}"


def fresh_run(name: str, setup: str, root: Path) -> dict[str, Any]:
    directory = committed(make_repository(name, root / f"{name}-{setup}"))
    argv = [str(PA), "--show-checks", "--run", "--setup", setup, "-d", str(directory), "--output", "json"]
    started = time.perf_counter()
    done = subprocess.run(
        argv, env=pa_env(root / f"home-{name}-{setup}"), capture_output=True, text=True, timeout=PA_TIMEOUT_S
    )
    outcome, cause = run_outcome(done.returncode, events(done.stdout))
    return {"fixture": name, "outcome": outcome, "cause": cause, "seconds": round(time.perf_counter() - started, 1)}


def green_figure(root: Path) -> dict[str, Any]:
    print("\n2. Green in a fresh tree: pa --show-checks --run, fresh git copy and AGENTPROXY_HOME (exit 0 = passed)")
    figure: dict[str, Any] = {}
    for setup in ("auto", "off"):
        rows = [fresh_run(name, setup, root) for name in REPOSITORIES]
        kinds = ("passed", "failed", "environment", "nothing to run")
        counts = {kind: sum(row["outcome"] == kind for row in rows) for kind in kinds}
        figure[setup] = {"counts": counts, "fixtures": rows}
        print(f"   --setup {setup}: " + ", ".join(f"{kind} {count}" for kind, count in counts.items()))
        for row in rows:
            cause = f"  {row['cause']}" if row["cause"] else ""
            print(f"     {row['fixture']:<19} {row['outcome']:<12} {row['seconds']:>6.1f} s{cause}")
    return figure


# --- 3. baseline cost --------------------------------------------------------------------------


def slow_suite_repo(directory: Path) -> Path:
    """A git repository whose pytest suite is SUITE_TESTS tests of SUITE_SLEEP_S seconds each."""
    (directory / "tests").mkdir(parents=True)
    (directory / ".gitignore").write_text("__pycache__/\n.pytest_cache/\n")
    (directory / "tests" / "test_slow.py").write_text(
        "import time\n\nimport pytest\n\n\n"
        f"@pytest.mark.parametrize('n', range({SUITE_TESTS}))\ndef test_slow(n):\n    time.sleep({SUITE_SLEEP_S})\n"
    )
    return committed(directory)


def timed_task(repo: Path, check: str, script: Path, home: Path) -> dict[str, Any]:
    """One `pa` task; its events' timings: the baseline's run time, cached or not, and its wall-clock gap."""
    agent = shlex.join([sys.executable, "-m", "agentproxy.scripted_agent", "--script", str(script)])
    argv = [str(PA), "-d", str(repo), "--setup", "off", "--check", check, "--claude-bin", agent, "--output", "json"]
    started = time.perf_counter()
    done = subprocess.run(
        [*argv, "write hello"], env=pa_env(home), capture_output=True, text=True, timeout=PA_TIMEOUT_S
    )
    wall = time.perf_counter() - started
    lines = events(done.stdout)
    if done.returncode != 0:
        raise SystemExit(f"baseline task failed ({done.returncode}): {done.stdout[-1500:]}{done.stderr[-1500:]}")
    at = {line["kind"]: line["at"] for line in reversed(lines)}  # the first of each kind
    baseline = next(line for line in lines if line["kind"] == "baseline_ran")
    checks = next(line for line in lines if line["kind"] == "checks_ran")
    return {
        "tree": baseline["commit"],
        "cached": bool(baseline.get("cached")),
        "baseline_run_s": sum(result.get("duration_s", 0.0) for result in baseline["results"]),
        "gap_s": at["agent_started"] - at["subtask_started"],
        "review_checks_s": sum(result.get("duration_s", 0.0) for result in checks["results"]),
        "task_wall_s": wall,
    }


def baseline_cost_figure(root: Path) -> dict[str, Any]:
    repo = slow_suite_repo(root / "slow-suite")
    first_commit = git(repo, "rev-parse", "HEAD")
    check = shlex.join([sys.executable, "-m", "pytest", "-q", "tests"])
    script = root / "write-hello.json"
    script.write_text(json.dumps({"turns": WRITE_HELLO}))
    started = time.perf_counter()
    subprocess.run(shlex.split(check), cwd=repo, capture_output=True, check=True, timeout=PA_TIMEOUT_S)
    suite_s = time.perf_counter() - started
    first = timed_task(repo, check, script, root / "home-baseline")
    git(repo, "reset", "-q", "--hard", first_commit)  # the same tree again, without the first task's commit
    cached = timed_task(repo, check, script, root / "home-baseline")
    print(f"\n3. Baseline cost: {SUITE_TESTS} tests x {SUITE_SLEEP_S} s, `pa --setup off --check '<python> -m pytest'`")
    print(f"   suite alone (= the review's cost): {suite_s:.1f} s wall")
    for label, task in (("first", first), ("cached", cached)):
        # The extra time is what the agent waited for: from the subtask's start to the agent's.
        print(
            f"   {label:<6} extra {task['gap_s']:5.1f} s = {task['gap_s'] / suite_s:.2f}x the suite"
            f" (subtask_started->agent_started); baseline_ran durations {task['baseline_run_s']:.1f} s"
            f" (cached: {task['cached']}); review's checks {task['review_checks_s']:.1f} s;"
            f" task wall {task['task_wall_s']:.1f} s"
        )
    print(f"   same tree both times: {first['tree'] == cached['tree']}")
    return {"suite_s": suite_s, "first": first, "cached": cached}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this path")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="agentproxy-checks-bench-") as tmp:
        root = Path(tmp)
        (root / "detect").mkdir()
        (root / "fresh").mkdir()
        figures = {
            "detection": detection_figure(root / "detect"),
            "green": green_figure(root / "fresh"),
            "baseline_cost": baseline_cost_figure(root),
        }
    figures["runtime_s"] = round(time.perf_counter() - started, 1)
    print(f"\ntotal runtime {figures['runtime_s']:.1f} s")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
