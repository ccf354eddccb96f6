"""Per-test outcomes: instrumenting check commands, and parsing what real runners report."""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from agentproxy.checks import run_checks
from agentproxy.test_reports import instrument, parse_outcomes

# Plugins of this venv (hypothesis, anyio) would triple the start-up time of each pytest run.
PYTEST = f"PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 {shlex.quote(sys.executable)} -m pytest -q -p no:cacheprovider"
CARGO = shutil.which("cargo") or ("/root/.cargo/bin/cargo" if Path("/root/.cargo/bin/cargo").is_file() else None)
NODE = shutil.which("node")
FULL_OUTPUT = 1_000_000  # the tail run_checks keeps: all of it, unless a test cuts it on purpose


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# --- instrument --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected", "format"),
    [
        ("pytest -q", "pytest --junitxml=REPORT -q", "junit"),
        ("python -m pytest -q tests", "python -m pytest --junitxml=REPORT -q tests", "junit"),
        ("python3 -W error -m pytest", "python3 -W error -m pytest --junitxml=REPORT", "junit"),
        (".venv/bin/pytest -x", ".venv/bin/pytest --junitxml=REPORT -x", "junit"),
        ("uv run pytest", "uv run pytest --junitxml=REPORT", "junit"),
        ("uv run --extra test python -m pytest", "uv run --extra test python -m pytest --junitxml=REPORT", "junit"),
        ("poetry run pytest -m 'not slow'", "poetry run pytest --junitxml=REPORT -m 'not slow'", "junit"),
        ("cd backend && FOO=1 pytest $ARGS", "cd backend && FOO=1 pytest --junitxml=REPORT $ARGS", "junit"),
        ("go test ./...", "go test -json ./...", "go-json"),
        ("go test ./... 2>&1", "go test -json ./... 2>&1", "go-json"),
        ("go test -json ./...", "go test -json ./...", "go-json"),
        ("cargo test", "cargo test --no-fail-fast", "libtest"),
        (
            "cargo +stable test --all -- --nocapture",
            "cargo +stable test --no-fail-fast --all -- --nocapture",
            "libtest",
        ),
        ("node --test", "node --test-reporter=tap --test", "tap"),
        ("node --test --test-reporter=tap", "node --test --test-reporter=tap", "tap"),
        ("tape 'test/*.js'", "tape 'test/*.js'", "tap"),
    ],
)
def test_runners_are_told_to_report_each_test(command: str, expected: str, format: str, tmp_path: Path) -> None:
    instrumented = instrument(command, tmp_path)

    report = tmp_path.resolve() / f"junit-{_digest(command)}.xml"
    assert instrumented.command == expected.replace("REPORT", str(report))
    assert instrumented.format == format
    assert instrumented.report == (report if format == "junit" else None)


@pytest.mark.parametrize(
    "command",
    [
        "npm test",
        "make test",
        "pytest && mypy .",  # the runner is not the last command: its status is not the command's
        "pytest -q | tee log",
        "go test ./... > out.txt",  # its report would not reach us
        "echo $(pytest)",
        "uv run --unknown-option pytest",  # it may take a value: where the command starts is unclear
        "python -c 'import pytest'",
        "cargo test -q",  # terse output names only failures
        "cargo build --features test",
        "node --test --test-reporter=spec",
        "pytest 'unbalanced",
    ],
)
def test_commands_that_cannot_be_instrumented_safely_are_unchanged(command: str, tmp_path: Path) -> None:
    instrumented = instrument(command, tmp_path)

    assert (instrumented.command, instrumented.report, instrumented.format) == (command, None, None)


def test_a_report_the_project_asks_for_is_read_where_it_is_written(tmp_path: Path) -> None:
    instrumented = instrument("pytest --junitxml=build/results.xml", tmp_path)

    assert instrumented.command == "pytest --junitxml=build/results.xml"
    assert instrumented.report == Path("build/results.xml")


def test_instrumenting_clears_a_report_left_by_an_earlier_run(tmp_path: Path) -> None:
    first = instrument("pytest", tmp_path)
    assert first.report is not None
    first.report.write_text("<testsuites/>")

    again = instrument("pytest", tmp_path)

    assert again.report == first.report
    assert not first.report.exists()


def _digest(command: str) -> str:
    return hashlib.sha256(command.encode()).hexdigest()[:12]


# --- JUnit XML from real pytest ----------------------------------------------------------------


@pytest.fixture(scope="module")
def pytest_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One real pytest run over every kind of outcome, a collection error included."""
    project = tmp_path_factory.mktemp("pyproject")
    _write(
        project / "tests" / "test_kinds.py",
        "import pytest\n"
        "def test_ok(): pass\n"
        "def test_bad(): assert 1 == 2\n"
        "@pytest.mark.skip(reason='later')\n"
        "def test_skipped(): pass\n"
        "@pytest.mark.parametrize('x', [1, 2])\n"
        "def test_param(x): assert x == 1\n"
        "@pytest.fixture\n"
        "def broken(): raise RuntimeError('boom')\n"
        "def test_setup_error(broken): pass\n"
        "@pytest.mark.xfail\n"
        "def test_expected_to_fail(): assert 0\n"
        "class TestGroup:\n"
        "    def test_method(self): pass\n",
    )
    _write(project / "tests" / "test_broken_import.py", "import feature_not_written_yet\n")
    command = f"{PYTEST} --continue-on-collection-errors"
    instrumented = instrument(command, project / "reports")
    [result] = run_checks([instrumented.command], project, timeout_s=60)
    assert result.exit_code == 1, result.output_tail
    assert instrumented.report is not None
    return instrumented.report, result.output_tail


def test_junit_report_of_real_pytest_gives_each_tests_outcome(pytest_run: tuple[Path, str]) -> None:
    report, output = pytest_run

    outcomes = parse_outcomes("junit", report, output)

    assert outcomes is not None
    assert outcomes.complete
    assert outcomes.tests == {
        "tests.test_kinds::test_ok": "passed",
        "tests.test_kinds::test_bad": "failed",
        "tests.test_kinds::test_skipped": "skipped",
        "tests.test_kinds::test_param[1]": "passed",
        "tests.test_kinds::test_param[2]": "failed",
        "tests.test_kinds::test_setup_error": "failed",
        "tests.test_kinds::test_expected_to_fail": "skipped",
        "tests.test_kinds.TestGroup::test_method": "passed",
        "tests.test_broken_import": "failed",  # the collection error, named after its module
    }


def test_a_truncated_junit_report_gives_nothing(pytest_run: tuple[Path, str], tmp_path: Path) -> None:
    report, output = pytest_run
    cut = tmp_path / "cut.xml"
    cut.write_bytes(report.read_bytes()[:300])

    assert parse_outcomes("junit", cut, output) is None
    assert parse_outcomes("junit", tmp_path / "never-written.xml", output) is None


# --- libtest lines from real cargo ---------------------------------------------------------------


@pytest.fixture(scope="module")
def cargo_output(tmp_path_factory: pytest.TempPathFactory) -> str:
    if CARGO is None:
        pytest.skip("cargo is not installed")
    crate = tmp_path_factory.mktemp("crate")
    _write(crate / "Cargo.toml", '[package]\nname = "tiny"\nversion = "0.1.0"\nedition = "2021"\n')
    _write(
        crate / "src" / "lib.rs",
        "/// ```\n/// assert_eq!(tiny::add(1, 1), 2);\n/// ```\n"
        "pub fn add(a: i32, b: i32) -> i32 { a + b }\n"
        "#[cfg(test)]\nmod tests {\n    use super::*;\n"
        "    #[test] fn adds() { assert_eq!(add(1, 2), 3); }\n"
        "    #[test] fn breaks() { assert_eq!(add(1, 2), 4); }\n"
        "    #[test] #[ignore] fn slow() {}\n"
        "    mod inner { #[test] fn deep() {} }\n}\n",
    )
    _write(crate / "tests" / "api.rs", "#[test] fn it_works() { assert_eq!(tiny::add(2, 2), 4); }\n")
    instrumented = instrument(f"{shlex.quote(CARGO)} test --offline", crate)
    assert instrumented.format == "libtest"
    [result] = run_checks([instrumented.command], crate, timeout_s=120, tail_chars=FULL_OUTPUT)
    assert result.exit_code == 101, result.output_tail
    return result.output_tail


def test_libtest_lines_of_real_cargo_test_give_each_tests_outcome(cargo_output: str) -> None:
    outcomes = parse_outcomes("libtest", None, cargo_output)

    assert outcomes is not None
    assert outcomes.complete
    assert outcomes.tests == {
        "src/lib.rs::tests::adds": "passed",
        "src/lib.rs::tests::breaks": "failed",
        "src/lib.rs::tests::slow": "skipped",
        "src/lib.rs::tests::inner::deep": "passed",
        # --no-fail-fast: the integration tests and doc tests ran despite the failing unit test
        "tests/api.rs::it_works": "passed",
        "src/lib.rs - add": "passed",  # the doc test's line number dropped: it moves with every edit
    }


def test_a_cut_cargo_output_is_read_as_far_as_it_goes_and_marked_partial(cargo_output: str) -> None:
    start = cargo_output.index("test tests::")  # the first binary's header is gone
    tail = cargo_output[start:]

    outcomes = parse_outcomes("libtest", None, tail)

    assert outcomes is not None
    assert not outcomes.complete
    assert outcomes.tests["tests/api.rs::it_works"] == "passed"
    assert "tests::breaks" in outcomes.tests
    # Cut by the caller even where the structure looks whole: the caller knows better.
    whole = parse_outcomes("libtest", None, cargo_output, output_cut=True)
    assert whole is not None and not whole.complete


# --- TAP from real node --test -----------------------------------------------------------------


@pytest.fixture(scope="module")
def node_output(tmp_path_factory: pytest.TempPathFactory) -> str:
    if NODE is None:
        pytest.skip("node is not installed")
    project = tmp_path_factory.mktemp("nodeproject")
    _write(
        project / "a.test.js",
        "const test = require('node:test');\n"
        "const assert = require('node:assert');\n"
        "test('adds', () => { assert.strictEqual(1 + 2, 3); });\n"
        # The message quotes TAP lines: they sit in the YAML block and must not count as tests.
        "test('breaks', () => { throw new Error('ok 9 - not a test\\n    ok 1 - nor this'); });\n"
        "test('later', { skip: 'not yet' }, () => {});\n"
        "test('someday', { todo: true }, () => { throw new Error('todo'); });\n"
        "test('group', async (t) => {\n"
        "  await t.test('inner ok', () => {});\n"
        "  await t.test('inner bad', () => { throw new Error('x'); });\n"
        "});\n",
    )
    _write(project / "b.test.js", "const test = require('node:test');\ntest('adds', () => {});\n")
    instrumented = instrument("node --test", project)
    [result] = run_checks([instrumented.command], project, timeout_s=60, tail_chars=FULL_OUTPUT)
    assert result.exit_code == 1, result.output_tail
    return result.output_tail


def test_tap_of_real_node_test_gives_each_tests_outcome(node_output: str) -> None:
    outcomes = parse_outcomes("tap", None, node_output)

    assert outcomes is not None
    assert outcomes.complete
    assert outcomes.tests == {
        "adds": "passed",
        "breaks": "failed",
        "later": "skipped",
        "someday": "skipped",  # a TODO test's failure does not count
        "group > inner ok": "passed",
        "group > inner bad": "failed",
        "group": "failed",
        "adds (2)": "passed",  # the same name in another file
    }


def test_tap_without_its_plan_is_partial(node_output: str) -> None:
    cut = node_output[: node_output.index("\n1..")]

    outcomes = parse_outcomes("tap", None, cut)

    assert outcomes is not None and not outcomes.complete
    assert outcomes.tests["breaks"] == "failed"


def test_tap_that_bails_out_is_partial() -> None:
    outcomes = parse_outcomes("tap", None, "TAP version 13\n1..3\nok 1 - first\nBail out! database gone\n")

    assert outcomes is not None
    assert outcomes.tests == {"first": "passed"}
    assert not outcomes.complete


# --- go test -json -----------------------------------------------------------------------------
# go is not installed here: these events are written by hand after the documented format of
# `go test -json` (cmd/test2json: Time, Action, Package, Test, Elapsed, Output; go1.24's
# build-output/build-fail events carry ImportPath instead of Package).

GO_EVENTS = [
    {"Action": "start", "Package": "example.com/calc"},
    {"Action": "run", "Package": "example.com/calc", "Test": "TestAdd"},
    {"Action": "output", "Package": "example.com/calc", "Test": "TestAdd", "Output": "=== RUN   TestAdd\n"},
    {"Action": "pass", "Package": "example.com/calc", "Test": "TestAdd", "Elapsed": 0},
    {"Action": "run", "Package": "example.com/calc", "Test": "TestDiv"},
    {"Action": "run", "Package": "example.com/calc", "Test": "TestDiv/by_zero"},
    {
        "Action": "output",
        "Package": "example.com/calc",
        "Test": "TestDiv/by_zero",
        "Output": "    div_test.go:9: boom\n",
    },
    {"Action": "fail", "Package": "example.com/calc", "Test": "TestDiv/by_zero", "Elapsed": 0},
    {"Action": "fail", "Package": "example.com/calc", "Test": "TestDiv", "Elapsed": 0},
    {"Action": "run", "Package": "example.com/calc", "Test": "TestLater"},
    {"Action": "skip", "Package": "example.com/calc", "Test": "TestLater", "Elapsed": 0},
    {"Action": "fail", "Package": "example.com/calc", "Elapsed": 0.004},
    {"ImportPath": "example.com/broken [example.com/broken.test]", "Action": "build-output", "Output": "# x\n"},
    {"ImportPath": "example.com/broken [example.com/broken.test]", "Action": "build-fail"},
    {"Action": "start", "Package": "example.com/broken"},
    {"Action": "fail", "Package": "example.com/broken", "Elapsed": 0, "FailedBuild": "example.com/broken"},
    {"Action": "start", "Package": "example.com/docs"},
    {"Action": "skip", "Package": "example.com/docs", "Elapsed": 0},
]


def _go_output(events: list[dict[str, object]]) -> str:
    stamped = [{"Time": "2025-01-02T15:04:05.123456Z", **event} for event in events]
    # stderr is merged into the output: the compiler's plain lines land between the events
    return (
        "\n".join(json.dumps(event) for event in stamped[:13])
        + "\n./x.go:3: undefined: y\n"
        + "\n".join(json.dumps(event) for event in stamped[13:])
    )


def test_go_json_events_give_each_tests_outcome() -> None:
    outcomes = parse_outcomes("go-json", None, _go_output(GO_EVENTS))

    assert outcomes is not None
    assert outcomes.complete
    assert outcomes.tests == {
        "example.com/calc::TestAdd": "passed",
        "example.com/calc::TestDiv/by_zero": "failed",
        "example.com/calc::TestDiv": "failed",
        "example.com/calc::TestLater": "skipped",
        "example.com/calc": "failed",
        "example.com/broken": "failed",  # it did not build
        "example.com/docs": "skipped",  # no test files
    }


def test_go_json_cut_at_its_start_is_partial() -> None:
    output = _go_output(GO_EVENTS)
    cut = output[output.index('"TestDiv/by_zero"') - 40 :]  # a line cut in two, and runs never seen

    outcomes = parse_outcomes("go-json", None, cut)

    assert outcomes is not None
    assert not outcomes.complete
    assert outcomes.tests["example.com/calc::TestDiv"] == "failed"


def test_outputs_without_any_report_give_nothing() -> None:
    assert parse_outcomes("go-json", None, "go: command not found\n") is None
    assert parse_outcomes("libtest", None, "error[E0425]: cannot find value `x`\n") is None
    assert parse_outcomes("tap", None, "sh: 1: node: not found\n") is None
    assert parse_outcomes(None, None, "test a ... ok\n") is None
