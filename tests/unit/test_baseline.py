"""Judging a check against the subtask's base: only what the change made worse fails the agent."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import msgspec
import pytest

from agentproxy.baseline import CheckRun, check_run, judge
from agentproxy.checks import run_checks
from agentproxy.failure_kinds import Classification, FailureKind
from agentproxy.messages import CheckResult, CheckVerdict
from agentproxy.test_reports import RunOutcomes, instrument, parse_outcomes

# Plugins of this venv (hypothesis, anyio) would triple the start-up time of each pytest run.
PYTEST = f"PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 {shlex.quote(sys.executable)} -m pytest -q -p no:cacheprovider"
CALC_TESTS = (
    "from calc import add, sub\n"
    "def test_add():\n    assert add(2, 2) == 4\n"
    "def test_sub():\n    assert sub(3, 1) == 2\n"
    "def test_known_bug():\n    assert add(0.1, 0.2) == 0.3\n"
)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _observe(project: Path, command: str = PYTEST) -> CheckRun:
    """Run a check the way the Verifier will: instrumented, really, then read and classified."""
    instrumented = instrument(command, project.parent / f"{project.name}-reports")
    [result] = run_checks([instrumented.command], project, timeout_s=60)
    outcomes = parse_outcomes(instrumented.format, instrumented.report, result.output_tail)
    return check_run(result, outcomes, project)


@pytest.fixture(scope="module")
def calc_base(tmp_path_factory: pytest.TempPathFactory) -> CheckRun:
    """A project with one test already failing at the subtask's base."""
    project = tmp_path_factory.mktemp("calc-base")
    _write(project / "calc.py", "def add(a, b):\n    return a + b\ndef sub(a, b):\n    return a - b\n")
    _write(project / "tests" / "test_calc.py", CALC_TESTS)
    return _observe(project)


def _calc_after(tmp_path: Path, calc: str) -> CheckRun:
    _write(tmp_path / "calc.py", calc)
    _write(tmp_path / "tests" / "test_calc.py", CALC_TESTS)
    return _observe(tmp_path)


# --- with real pytest runs -----------------------------------------------------------------------


def test_a_change_that_breaks_another_test_is_blamed_for_that_test_only(calc_base: CheckRun, tmp_path: Path) -> None:
    now = _calc_after(tmp_path, "def add(a, b):\n    return a + b\ndef sub(a, b):\n    return b - a\n")

    verdict = judge(calc_base, now, acceptance=False)

    assert verdict.kind == "failed"
    assert verdict.new_failures == ["tests.test_calc::test_sub"]
    assert verdict.preexisting == ["tests.test_calc::test_known_bug"]
    assert verdict.summary == "fails now: tests.test_calc::test_sub"


def test_a_change_that_breaks_nothing_passes_despite_the_old_failure(calc_base: CheckRun, tmp_path: Path) -> None:
    # Edits above the old failure move its line numbers; the failure is still the same one.
    now = _calc_after(
        tmp_path, "# a comment the agent added\n\ndef add(a, b):\n    return a + b\ndef sub(a, b):\n    return a - b\n"
    )

    verdict = judge(calc_base, now, acceptance=False)

    assert verdict.kind == "preexisting"
    assert verdict.new_failures == []
    assert verdict.preexisting == ["tests.test_calc::test_known_bug"]
    assert verdict.summary == (
        "these already failed before your change: tests.test_calc::test_known_bug; "
        "leave them unless the task is about them"
    )


def test_an_acceptance_check_must_pass_whatever_the_base_did(calc_base: CheckRun, tmp_path: Path) -> None:
    now = _calc_after(tmp_path, "def add(a, b):\n    return a + b\ndef sub(a, b):\n    return a - b\n")

    verdict = judge(calc_base, now, acceptance=True)

    assert verdict.kind == "failed"
    assert verdict.preexisting == ["tests.test_calc::test_known_bug"]
    assert verdict.summary.startswith("an acceptance check of this subtask must pass; it fails")


def test_a_module_missing_at_the_base_and_wrong_now_is_sent_back(tmp_path: Path) -> None:
    tests = "from shapes.area import square\ndef test_square():\n    assert square(3) == 9\n"
    base_tree, now_tree = tmp_path / "base", tmp_path / "now"
    for tree in (base_tree, now_tree):
        _write(tree / "shapes" / "__init__.py", "")
        _write(tree / "tests" / "test_area.py", tests)
    _write(now_tree / "shapes" / "area.py", "def square(side):\n    return side * 2\n")  # the agent's wrong code

    base, now = _observe(base_tree), _observe(now_tree)
    verdict = judge(base, now, acceptance=False)

    assert base.classification == Classification(kind="code")  # the module the task creates, not yet there
    assert verdict.kind == "failed"
    assert verdict.new_failures == ["tests.test_area::test_square"]
    assert verdict.preexisting == []


def test_a_check_that_cannot_run_at_the_base_or_now_is_the_environments(tmp_path: Path) -> None:
    _write(tmp_path / "tests" / "test_x.py", "def test_x(mocker):\n    pass\n")
    base, now = _observe(tmp_path), _observe(tmp_path)

    verdict = judge(base, now, acceptance=True)

    assert verdict.kind == "environment"
    assert verdict.cause == "the pytest plugin pytest-mock is not installed: E       fixture 'mocker' not found"
    assert verdict.fix == "install it in the project's environment: pip install pytest-mock"
    assert verdict.summary == f"could not run: {verdict.cause}; fix: {verdict.fix}"


# --- the rules, on results as the runners report them ------------------------------------------


def _run(
    exit_code: int,
    output: str = "",
    tests: dict[str, str] | None = None,
    complete: bool = True,
    kind: FailureKind = "code",
    transient: bool = False,
    timed_out: bool = False,
) -> CheckRun:
    result = CheckResult(command="make check", exit_code=exit_code, output_tail=output, timed_out=timed_out)
    outcomes = None if tests is None else msgspec.convert({"tests": tests, "complete": complete}, RunOutcomes)
    classification = None
    if kind == "environment":
        cause, fix = "pytest-timeout is not installed: --timeout", "pip install pytest-timeout"
        classification = Classification(kind=kind, cause=cause, fix=fix, transient=transient)
    elif exit_code != 0 or timed_out:
        classification = Classification(kind=kind)
    return CheckRun(result=result, outcomes=outcomes, classification=classification)


def test_a_check_passing_now_passes_whatever_the_base_did() -> None:
    verdict = judge(_run(1, "E boom", kind="environment"), _run(0), acceptance=True)

    assert verdict == CheckVerdict(command="make check", kind="passed", summary="passed")


def test_a_check_that_passed_at_the_base_and_fails_now_is_the_changes() -> None:
    verdict = judge(_run(0), _run(2, "src/a.py:3:1: F401 'os' imported but unused"), acceptance=False)

    assert verdict.kind == "failed"
    assert verdict.summary == "passed before your change and fails now"


def test_without_a_base_a_failure_counts_with_its_tests_named() -> None:
    verdict = judge(None, _run(1, tests={"t::a": "failed", "t::b": "passed"}), acceptance=False)

    assert (verdict.kind, verdict.new_failures, verdict.summary) == ("failed", ["t::a"], "fails: t::a")


def test_an_uninstrumented_check_failing_the_same_way_is_preexisting() -> None:
    base = _run(1, "lint 0.82s\nsrc/a.py:3:1: F401 'os' imported but unused\n/tmp/tmpab12cd/x: 1 error\nFound 1 error.")
    now = _run(1, "lint 1.3s\nsrc/a.py:9:1: F401 'os' imported but unused\n/tmp/tmpzz99yy/x: 1 error\nFound 1 error.")

    verdict = judge(base, now, acceptance=False)

    assert verdict.kind == "preexisting"
    assert (
        verdict.summary
        == "this check already failed the same way before your change; leave it unless the task is about it"
    )


def test_an_uninstrumented_check_failing_differently_is_the_changes() -> None:
    base = _run(1, "src/a.py:3:1: F401 'os' imported but unused\nFound 1 error.")
    now = _run(
        1,
        "src/a.py:3:1: F401 'os' imported but unused\n"
        "src/b.py:7:5: F841 local variable 'x' is assigned\n"
        "Found 2 errors.",
    )

    verdict = judge(base, now, acceptance=False)

    assert verdict.kind == "failed"
    assert (
        verdict.summary
        == "failed before your change too, but differently now: src/b.py#: F841 local variable 'x' is assigned"
    )


def test_another_exit_status_is_failing_differently() -> None:
    base = _run(1, "FAILED tests/test_a.py::test_a - assert 1 == 2")
    now = _run(-1, "FAILED tests/test_a.py::test_a - assert 1 == 2", timed_out=True)

    assert judge(base, now, acceptance=False).kind == "failed"


def test_a_failure_the_report_does_not_explain_falls_back_to_the_error_lines() -> None:
    # Every test passes, yet the command fails: a coverage threshold, say. Only the output tells.
    base = _run(1, "FAIL Required test coverage of 90% not reached. Total coverage: 80.00%", tests={"t::a": "passed"})
    same = _run(1, "FAIL Required test coverage of 90% not reached. Total coverage: 80.00%", tests={"t::a": "passed"})
    lower = _run(1, "FAIL Required test coverage of 90% not reached. Total coverage: 71.00%", tests={"t::a": "passed"})

    assert judge(base, same, acceptance=False).kind == "preexisting"
    assert judge(base, lower, acceptance=False).kind == "failed"


def test_a_partial_base_does_not_name_tests_it_did_not_show_but_does_not_clear_them_either() -> None:
    base = _run(1, "test a ... FAILED", tests={"a": "failed"}, complete=False)
    now = _run(1, "test a ... FAILED\ntest b ... FAILED", tests={"a": "failed", "b": "failed"})

    verdict = judge(base, now, acceptance=False)

    assert verdict.kind == "failed"  # b may have failed in the part of the base that was cut off: unknown
    assert verdict.new_failures == []
    assert verdict.summary == "failed before your change too, but differently now: test b ... FAILED"


def test_a_partial_base_still_names_a_test_it_saw_pass() -> None:
    base = _run(1, "test a ... FAILED", tests={"a": "failed", "b": "passed"}, complete=False)
    now = _run(1, "test a ... FAILED\ntest b ... FAILED", tests={"a": "failed", "b": "failed"})

    verdict = judge(base, now, acceptance=False)

    assert (verdict.kind, verdict.new_failures, verdict.preexisting) == ("failed", ["b"], ["a"])


def test_a_partial_result_now_is_not_cleared_by_the_tests_it_shows() -> None:
    base = _run(1, "test a ... FAILED", tests={"a": "failed"})
    now = _run(1, "test a ... FAILED\nthread 'c' panicked at src/c.rs:3:5", tests={"a": "failed"}, complete=False)

    assert judge(base, now, acceptance=False).kind == "failed"


def test_an_environment_failure_now_after_a_base_that_ran_is_the_changes() -> None:
    verdict = judge(_run(0), _run(4, kind="environment"), acceptance=False)

    assert verdict.kind == "failed"
    assert verdict.cause == "pytest-timeout is not installed: --timeout"
    assert verdict.summary == (
        "ran before your change and cannot run now: pytest-timeout is not installed: --timeout; "
        "fix: pip install pytest-timeout"
    )


def test_a_network_failure_is_never_the_changes() -> None:
    verdict = judge(_run(0), _run(101, kind="environment", transient=True), acceptance=True)

    assert verdict.kind == "environment"


def test_new_failing_tests_count_even_when_the_run_also_hit_the_environment() -> None:
    # A test file that cannot import a missing plugin, and beside it a test the change broke.
    base = _run(1, tests={"t.test_plugin": "failed", "t::a": "passed"}, kind="environment")
    now = _run(1, tests={"t.test_plugin": "failed", "t::a": "failed"}, kind="environment")

    verdict = judge(base, now, acceptance=False)

    assert (verdict.kind, verdict.new_failures, verdict.preexisting) == ("failed", ["t::a"], ["t.test_plugin"])


def test_a_summary_names_ten_tests_and_counts_the_rest() -> None:
    tests = {f"t::test_{index:02}": "failed" for index in range(13)}

    verdict = judge(_run(0, tests={}), _run(1, tests=tests), acceptance=False)

    assert verdict.summary.endswith("t::test_09 and 3 more")
    assert len(verdict.new_failures) == 13


def test_a_verdict_and_a_cached_base_run_survive_encoding(calc_base: CheckRun) -> None:
    verdict = judge(None, _run(1, tests={"t::a": "failed"}), acceptance=False)

    assert msgspec.json.decode(msgspec.json.encode(verdict), type=CheckVerdict) == verdict
    assert msgspec.json.decode(msgspec.json.encode(calc_base), type=CheckRun) == calc_base
