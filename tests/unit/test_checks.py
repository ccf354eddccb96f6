"""The project's checks: running them bounded, and reporting failures (detection: test_detect.py)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from agentproxy.checks import failure_report, run_checks
from agentproxy.messages import CheckResult

PY = sys.executable


# --- run_checks --------------------------------------------------------------------------------


def test_passing_and_failing_commands_report_exit_codes_and_output(tmp_path: Path) -> None:
    passing, failing = run_checks(["echo all good", "echo broken >&2; exit 3"], cwd=tmp_path, timeout_s=30)

    assert passing.command == "echo all good"
    assert passing.exit_code == 0
    assert passing.passed
    assert not passing.timed_out
    assert passing.output_tail.strip() == "all good"
    assert passing.duration_s >= 0

    assert failing.exit_code == 3
    assert not failing.passed
    assert not failing.timed_out
    assert "broken" in failing.output_tail  # stderr is captured too


def test_commands_run_in_the_given_directory(tmp_path: Path) -> None:
    (tmp_path / "marker.txt").write_text("here")
    [result] = run_checks(["cat marker.txt"], cwd=tmp_path, timeout_s=30)
    assert result.output_tail == "here"


def test_ansi_colour_codes_are_stripped(tmp_path: Path) -> None:
    [result] = run_checks([r"printf '\033[31mFAILED\033[0m \033[1;32mok\033[0m\n'"], cwd=tmp_path, timeout_s=30)

    assert "\x1b" not in result.output_tail
    assert result.output_tail.strip() == "FAILED ok"


def test_tail_keeps_the_end_of_long_output(tmp_path: Path) -> None:
    command = f"{PY} -c \"print('START' + 'x' * 5000 + 'THE_END')\""

    [result] = run_checks([command], cwd=tmp_path, timeout_s=30, tail_chars=100)

    assert len(result.output_tail) == 100
    assert result.output_tail.rstrip().endswith("THE_END")
    assert "START" not in result.output_tail


def test_a_vanished_directory_is_a_failed_check_not_an_exception(tmp_path: Path) -> None:
    [result] = run_checks(["true"], cwd=tmp_path / "missing", timeout_s=5)
    assert result.exit_code == 127
    assert not result.passed
    assert result.output_tail


def _alive(pid: int) -> bool:
    """Running, not merely a zombie waiting to be reaped by whoever adopted it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in {"Z", "X"}


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to tell zombies from live processes")
def test_a_command_past_its_timeout_is_killed_with_its_whole_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    command = f"echo $$ > {pids}; sleep 30 & echo $! >> {pids}; sleep 30 & echo $! >> {pids}; echo started; wait"

    started = time.monotonic()
    [result] = run_checks([command], cwd=tmp_path, timeout_s=1)
    elapsed = time.monotonic() - started

    assert result.timed_out
    assert not result.passed
    assert elapsed < 15
    assert "started" in result.output_tail  # output gathered before the kill is kept

    recorded = [int(line) for line in pids.read_text().split()]
    assert len(recorded) == 3
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in recorded) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in recorded if _alive(pid)] == []


def test_timed_out_command_is_reported_in_the_failure_report(tmp_path: Path) -> None:
    results = run_checks(["sleep 30"], cwd=tmp_path, timeout_s=0.5)

    report = failure_report(results, max_chars=2000)

    assert "$ sleep 30" in report
    assert "timed out after" in report


# --- failure_report ----------------------------------------------------------------------------


def test_failure_report_is_empty_when_everything_passed() -> None:
    results = [CheckResult(command="make test", exit_code=0, output_tail="ok")]
    assert failure_report(results, max_chars=1000) == ""


def test_failure_report_names_failing_commands_and_omits_passing_ones() -> None:
    results = [
        CheckResult(command="cargo test", exit_code=0, output_tail="PASSING OUTPUT"),
        CheckResult(command="npm test", exit_code=1, output_tail="TypeError: x is undefined\n"),
        CheckResult(command="go test ./...", exit_code=2, output_tail="FAIL pkg\n"),
    ]

    report = failure_report(results, max_chars=5000)

    assert "$ npm test  (exited 1)" in report
    assert "TypeError: x is undefined" in report
    assert "$ go test ./...  (exited 2)" in report
    assert "FAIL pkg" in report
    assert "cargo test" not in report
    assert "PASSING OUTPUT" not in report


def test_failure_report_keeps_the_end_of_long_output() -> None:
    output = "BEGINNING\n" + "noise line\n" * 500 + "AssertionError: the real failure"
    results = [CheckResult(command="pytest", exit_code=1, output_tail=output)]

    report = failure_report(results, max_chars=600)

    assert len(report) <= 600
    assert report.endswith("AssertionError: the real failure")
    assert "BEGINNING" not in report
    assert "$ pytest" in report
    assert "…" in report  # marks the cut


@pytest.mark.parametrize("max_chars", [50, 300, 1000, 4000])
def test_failure_report_respects_max_chars(max_chars: int) -> None:
    results = [
        CheckResult(command=f"check-{n}", exit_code=1, output_tail=f"error {n}\n" + "y" * 3000 + f"\nlast {n}")
        for n in range(3)
    ]

    report = failure_report(results, max_chars=max_chars)

    assert 0 < len(report) <= max_chars
    assert report.endswith("last 2")


def test_failure_report_names_every_failing_command_even_when_outputs_are_long() -> None:
    results = [
        CheckResult(command=f"check-{n}", exit_code=n + 1, output_tail="z" * 5000 + f"\nlast {n}") for n in range(3)
    ]

    report = failure_report(results, max_chars=1200)

    assert len(report) <= 1200
    for n in range(3):
        assert f"$ check-{n}  (exited {n + 1})" in report
        assert f"last {n}" in report
