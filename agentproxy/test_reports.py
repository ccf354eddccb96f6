"""Per-test outcomes of a check: making its runner report tests one by one, and reading the reports.

``instrument`` rewrites a check command so that its runner says which tests passed and failed:
pytest writes a JUnit XML report (``--junitxml``), ``go test`` prints JSON events (``-json``),
``node --test`` prints TAP (``--test-reporter=tap``), ``tape`` prints TAP anyway, and ``cargo test``
prints libtest's ``test NAME ... ok`` lines (``--no-fail-fast``, or the first failing test binary
would hide every later one). A command it does not understand is returned unchanged, with no format.

``parse_outcomes`` reads the report (or the output) into test id -> outcome, and says whether it
saw the whole run: an output cut to its tail, or a run killed midway, gives partial data, which the
baseline comparison treats with suspicion.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

Outcome = Literal["passed", "failed", "skipped"]
ReportFormat = Literal["junit", "go-json", "libtest", "tap"]

MAX_REPORT_BYTES = 64 * 1024 * 1024  # a JUnit file larger than this is not a report we can afford to parse
MAX_OUTPUT_CHARS = 4 * 1024 * 1024  # outputs are parsed from their end up to this many characters


class RunOutcomes(msgspec.Struct, frozen=True):
    """What each test did in one run; ``complete`` is False when part of the run could not be seen."""

    tests: dict[str, Outcome]
    complete: bool = True

    def failed(self) -> set[str]:
        return {name for name, outcome in self.tests.items() if outcome == "failed"}


@dataclass(frozen=True)
class Instrumented:
    command: str
    report: Path | None  # the file the runner writes (relative ones are relative to the check's directory)
    format: ReportFormat | None  # None: the runner is not one we can read test by test


# ---------------------------------------------------------------------------------------------
# Instrumenting a command

# One shell token at a time; anything we cannot read for sure (backquotes, $( ), unbalanced quotes) stops us.
_TOKEN = re.compile(
    r"""(?P<space>[ \t]+)
    |(?P<op>&&|\|\||[;&|\n()])
    |(?P<redirect>\d*(?:>>|>&|<&|>|<)(?:&?\d+|-)?)
    |(?P<word>(?:[^\s'"\\;&|<>()`]|\\.|'[^']*'|"(?:[^"\\`]|\\.)*")+)""",
    re.VERBOSE,
)
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_PYTHON = re.compile(r"^python(?:\d+(?:\.\d+)*)?$")
_PYTHON_FLAGS = {"-u", "-B", "-O", "-OO", "-I", "-E", "-s", "-S", "-b", "-bb", "-q", "-v", "-P"}
_PYTHON_VALUE_OPTIONS = {"-W", "-X"}
_UV_FLAGS = {"--frozen", "--locked", "--no-sync", "--all-extras", "--no-dev", "--dev", "--isolated", "--active"}
_UV_FLAGS |= {"--no-project", "--offline", "-q", "--quiet", "-v", "--verbose", "--all-groups", "--all-packages"}
_UV_VALUE_OPTIONS = {"--with", "--extra", "--group", "--only-group", "--python", "-p", "--package", "--env-file"}
_UV_VALUE_OPTIONS |= {"--directory", "--project"}
_JUNIT_OPTIONS = ("--junitxml", "--junit-xml")


@dataclass(frozen=True)
class _Word:
    value: str  # unquoted
    start: int
    end: int


@dataclass(frozen=True)
class _Segment:
    words: list[_Word]
    output_redirected: bool  # stdout goes to a file or down a pipe, not to us


def instrument(command: str, report_dir: Path) -> Instrumented:
    """The command with its runner told to report each test; unchanged when that cannot be done safely.

    In a compound command only the last simple command may be the runner: then the command's exit
    status is the runner's whenever the runner ran, and a report that is missing means it did not.
    """
    unchanged = Instrumented(command, None, None)
    segments = _segments(command)
    if not segments:
        return unchanged
    words = _command_words(segments[-1].words)
    if not words:
        return unchanged
    if (at := _pytest_word(words)) is not None:
        return _instrument_pytest(command, words, at, report_dir)
    if segments[-1].output_redirected:
        return unchanged  # the other runners report on stdout, which must reach us
    name = Path(words[0].value).name
    values = [word.value for word in words]
    if name == "go" and values[1:2] == ["test"]:
        if "-json" in values or "--json" in values:
            return Instrumented(command, None, "go-json")
        return Instrumented(_insert(command, words[1].end, "-json"), None, "go-json")
    if name == "cargo" and [value for value in values[1:] if not value.startswith(("-", "+"))][:1] == ["test"]:
        return _instrument_cargo(command, words)
    if name in ("node", "nodejs") and "--test" in _options_before_operands(values[1:]):
        return _instrument_node(command, words)
    if name == "tape":
        return Instrumented(command, None, "tap")
    return unchanged


def _instrument_pytest(command: str, words: list[_Word], at: int, report_dir: Path) -> Instrumented:
    values = [word.value for word in words]
    for index, value in enumerate(values):
        for option in _JUNIT_OPTIONS:
            if value.startswith(option + "="):
                return Instrumented(command, Path(value.split("=", 1)[1]), "junit")
            if value == option and index + 1 < len(values):
                return Instrumented(command, Path(values[index + 1]), "junit")
    digest = hashlib.sha256(command.encode()).hexdigest()[:12]
    report = report_dir.resolve() / f"junit-{digest}.xml"
    report.unlink(missing_ok=True)  # a report left by an earlier run must never be read as this one's
    return Instrumented(_insert(command, words[at].end, f"--junitxml={shlex.quote(str(report))}"), report, "junit")


def _instrument_cargo(command: str, words: list[_Word]) -> Instrumented:
    values = [word.value for word in words]
    test_at = values.index("test")
    if any(value in ("-q", "--quiet") or value.startswith("--format") for value in values):
        return Instrumented(command, None, None)  # terse or JSON libtest output: not the lines we read
    if "--no-fail-fast" in values[: values.index("--") if "--" in values else len(values)]:
        return Instrumented(command, None, "libtest")
    return Instrumented(_insert(command, words[test_at].end, "--no-fail-fast"), None, "libtest")


def _instrument_node(command: str, words: list[_Word]) -> Instrumented:
    values = [word.value for word in words]
    reporters = [
        values[index + 1] if value == "--test-reporter" and index + 1 < len(values) else value.split("=", 1)[1]
        for index, value in enumerate(values)
        if value == "--test-reporter" or value.startswith("--test-reporter=")
    ]
    if any(value.startswith("--test-reporter-destination") for value in values):
        return Instrumented(command, None, None)
    if reporters:
        return Instrumented(command, None, "tap" if reporters == ["tap"] else None)
    return Instrumented(_insert(command, words[0].end, "--test-reporter=tap"), None, "tap")


def _pytest_word(words: list[_Word]) -> int | None:
    """Where the pytest runner's own name is in a simple command (after which its options go), or None."""
    values = [word.value for word in words]
    name = Path(values[0]).name
    if name in ("pytest", "py.test"):
        return 0
    if _PYTHON.match(name):
        return _python_m_pytest(values, 1)
    if name in ("poetry", "pdm") and values[1:2] == ["run"] and len(values) > 2:
        return _runner_at(words, 2)
    if name == "uv" and values[1:2] == ["run"]:
        index = 2
        while index < len(values) and values[index].startswith("-"):
            option = values[index].split("=", 1)[0]
            if option in _UV_VALUE_OPTIONS and "=" not in values[index]:
                index += 2
            elif option in _UV_FLAGS or option in _UV_VALUE_OPTIONS:
                index += 1
            else:
                return None  # an option we do not know may take a value: we cannot tell where the command is
        return _runner_at(words, index) if index < len(values) else None
    return None


def _runner_at(words: list[_Word], index: int) -> int | None:
    """The pytest word of the command a wrapper (uv run, poetry run) runs from words[index] on."""
    inner = _pytest_word(words[index:])
    return None if inner is None else index + inner


def _python_m_pytest(values: list[str], index: int) -> int | None:
    while index < len(values):
        value = values[index]
        if value == "-m":
            return index + 1 if values[index + 1 : index + 2] == ["pytest"] else None
        if value in _PYTHON_VALUE_OPTIONS:
            index += 2
        elif value in _PYTHON_FLAGS:
            index += 1
        else:
            return None
    return None


def _options_before_operands(values: list[str]) -> list[str]:
    options = []
    for value in values:
        if not value.startswith("-"):
            break
        options.append(value)
    return options


def _command_words(words: list[_Word]) -> list[_Word]:
    """The words of a simple command without its leading VAR=value assignments."""
    index = 0
    while index < len(words) and _ASSIGNMENT.match(words[index].value):
        index += 1
    return words[index:]


def _segments(command: str) -> list[_Segment] | None:
    """The simple commands of a command line, or None when it holds shell syntax we do not follow."""
    segments: list[_Segment] = []
    words: list[_Word] = []
    redirected = False
    expect_target = False
    position = 0
    while position < len(command):
        match = _TOKEN.match(command, position)
        if match is None:
            return None
        position = match.end()
        kind, text = match.lastgroup, match.group()
        if kind == "op":
            if text in ("(", ")"):
                return None  # subshells and functions: not worth following
            segments.append(_Segment(words, redirected or text == "|"))
            words, redirected, expect_target = [], False, False
        elif kind == "redirect":
            fd = text[: len(text) - len(text.lstrip("0123456789"))]
            writes_stdout = text[len(fd) :].startswith(">") and fd in ("", "1") and ">&" not in text
            redirected = redirected or writes_stdout
            expect_target = not re.search(r"&(?:\d+|-)$", text)
        elif kind == "word":
            if "$(" in text:
                return None
            if expect_target:
                expect_target = False
                continue
            try:
                parts = shlex.split(text)
            except ValueError:
                return None
            words.append(_Word(parts[0] if parts else "", match.start(), match.end()))
    segments.append(_Segment(words, redirected))
    return [segment for segment in segments if segment.words]


def _insert(command: str, at: int, argument: str) -> str:
    return f"{command[:at]} {argument}{command[at:]}"


# ---------------------------------------------------------------------------------------------
# Reading the outcomes


def parse_outcomes(
    format: str | None, report: Path | None, output: str, *, output_cut: bool = False
) -> RunOutcomes | None:
    """Each test's outcome from a report file or the check's output; None when nothing is readable.

    ``output_cut`` says the output given is only the tail of what the check printed: the tests it
    shows are read all the same, and the result is marked incomplete.
    """
    if format == "junit":
        return _parse_junit(report) if report is not None else None
    if len(output) > MAX_OUTPUT_CHARS:
        output, output_cut = output[-MAX_OUTPUT_CHARS:], True
    parsers = {"go-json": _parse_go_json, "libtest": _parse_libtest, "tap": _parse_tap}
    parser = parsers.get(format or "")
    if parser is None:
        return None
    parsed = parser(output)
    if parsed is None:
        return None
    return RunOutcomes(parsed.tests, complete=parsed.complete and not output_cut)


def _parse_junit(report: Path) -> RunOutcomes | None:
    try:
        if report.stat().st_size > MAX_REPORT_BYTES:
            return None
        root = ElementTree.fromstring(report.read_bytes())
    except (OSError, ElementTree.ParseError):
        return None  # not written (the run died first) or cut short
    tests = _Tally()
    for case in root.iter("testcase"):
        classname, name = case.get("classname", ""), case.get("name", "")
        test_id = f"{classname}::{name}" if classname else name
        if case.find("failure") is not None or case.find("error") is not None:
            tests.add(test_id, "failed", merge=True)
        elif case.find("skipped") is not None:
            tests.add(test_id, "skipped", merge=True)
        else:
            tests.add(test_id, "passed", merge=True)
    return RunOutcomes(tests.outcomes)


class _Tally:
    """Outcomes as they are read; a name seen twice is either merged (failed wins) or numbered."""

    def __init__(self) -> None:
        self.outcomes: dict[str, Outcome] = {}

    def add(self, name: str, outcome: Outcome, merge: bool = False) -> None:
        if name in self.outcomes and merge:
            if outcome == "failed" or self.outcomes[name] == "skipped":
                self.outcomes[name] = outcome
            return
        unique, count = name, 1
        while unique in self.outcomes:
            count += 1
            unique = f"{name} ({count})"
        self.outcomes[unique] = outcome


_GO_OUTCOMES: dict[str, Outcome] = {"pass": "passed", "fail": "failed", "skip": "skipped"}


def _parse_go_json(output: str) -> RunOutcomes | None:
    """``go test -json`` events (cmd/test2json): Action, Package, Test; build failures as build-fail."""
    tests = _Tally()
    started: set[str] = set()
    packages_started: set[str] = set()
    packages_done: set[str] = set()
    complete = True
    seen_event = False
    for line in output.splitlines():
        if not line.startswith("{"):
            continue  # the compiler's and the shell's own lines, on stderr
        try:
            event = json.loads(line)
        except ValueError:
            complete = False  # a line cut in two
            continue
        if not isinstance(event, dict) or not isinstance(event.get("Action"), str):
            continue
        seen_event = True
        action, package, test = event["Action"], str(event.get("Package", "")), event.get("Test")
        if action == "build-fail":
            tests.add(str(event.get("ImportPath", "")).split(" ")[0], "failed", merge=True)
        elif test and action == "run":
            started.add(f"{package}::{test}")
        elif test and action in _GO_OUTCOMES:
            name = f"{package}::{test}"
            complete = complete and name in started
            started.discard(name)
            tests.add(name, _GO_OUTCOMES[action], merge=True)
        elif not test and action == "start":
            packages_started.add(package)
        elif not test and action in _GO_OUTCOMES:
            packages_done.add(package)
            tests.add(package, _GO_OUTCOMES[action], merge=True)
    if not seen_event:
        return None
    complete = complete and not started and packages_started <= packages_done
    return RunOutcomes(tests.outcomes, complete)


_LIBTEST_RESULT = re.compile(r"^test (.+) \.\.\. (ok|FAILED|ignored)(?:,.*)?$")
_LIBTEST_RUNNING = re.compile(r"^running (\d+) tests?$")
_LIBTEST_BINARY = re.compile(r"^\s*Running (?:unittests )?(\S+)")
_DOC_TEST_LINE = re.compile(r" \(line \d+\)$")  # a doc test's line moves with every edit above it
_LIBTEST_OUTCOMES: dict[str, Outcome] = {"ok": "passed", "FAILED": "failed", "ignored": "skipped"}


def _parse_libtest(output: str) -> RunOutcomes | None:
    """libtest's ``test NAME ... ok|FAILED|ignored`` lines, named after the test binary's source."""
    tests = _Tally()
    binary = ""
    expected: int | None = None  # tests announced by the current "running N tests", not yet seen
    complete = True
    for line in output.splitlines():
        if match := _LIBTEST_BINARY.match(line):
            binary = match.group(1)
        elif line.strip().startswith("Doc-tests "):
            binary = ""  # doc tests are named after their file already
        elif match := _LIBTEST_RUNNING.match(line):
            complete = complete and not expected
            expected = int(match.group(1))
        elif match := _LIBTEST_RESULT.match(line):
            if expected is None:
                complete = False  # the block's header was cut off
            else:
                expected -= 1
            name = _DOC_TEST_LINE.sub("", match.group(1))
            tests.add(f"{binary}::{name}" if binary else name, _LIBTEST_OUTCOMES[match.group(2)])
    if expected is None:
        return None
    return RunOutcomes(tests.outcomes, complete and expected == 0)


_TAP_RESULT = re.compile(r"^(?P<indent>\s*)(?P<status>not ok|ok)\b\s*(?P<number>\d+)?\s*(?:-\s*)?(?P<rest>.*)$")
_TAP_DIRECTIVE = re.compile(r"\s+#\s*(SKIP|TODO)\b.*$", re.IGNORECASE)
_TAP_PLAN = re.compile(r"^1\.\.(\d+)")
_TAP_SUBTEST = re.compile(r"^(?P<indent>\s*)# Subtest: (?P<name>.*)$")
TAP_INDENT = 4  # spaces per level of nesting (TAP 14 subtests, node's reporter)


def _parse_tap(output: str) -> RunOutcomes | None:
    """TAP results; a nested test is named after its parents (node's ``# Subtest:`` lines) joined by " > "."""
    tests = _Tally()
    parents: list[str] = []
    planned: int | None = None
    top_level = 0
    bailed = False
    yaml_indent: int | None = None  # inside a result's YAML block, which may quote anything
    for line in output.splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if yaml_indent is not None:
            if stripped == "..." and indent == yaml_indent:
                yaml_indent = None
            continue
        if stripped == "---":
            yaml_indent = indent
        elif match := _TAP_SUBTEST.match(line):
            depth = len(match.group("indent")) // TAP_INDENT
            parents[depth:] = [match.group("name")]
        elif match := _TAP_RESULT.match(line):
            depth = len(match.group("indent")) // TAP_INDENT
            rest = match.group("rest")
            directive = _TAP_DIRECTIVE.search(rest)
            name = _TAP_DIRECTIVE.sub("", rest).strip() or f"#{match.group('number')}"
            path = [*parents[:depth], name]
            if directive:
                outcome: Outcome = "skipped"  # a TODO test's failure does not count, by TAP's rules
            else:
                outcome = "failed" if match.group("status") == "not ok" else "passed"
            tests.add(" > ".join(path), outcome)
            del parents[depth:]
            top_level += depth == 0
        elif (match := _TAP_PLAN.match(line)) and indent == 0:
            planned = int(match.group(1))
        elif stripped.startswith("Bail out!"):
            bailed = True
    if not tests.outcomes and planned is None:
        return None
    return RunOutcomes(tests.outcomes, complete=not bailed and planned == top_level)


def readable_output(format: str | None, output: str) -> str:
    """The output as a person (or the agent) would read it: ``go test -json`` events become go test's own lines."""
    if format != "go-json":
        return output
    lines = []
    for line in output.splitlines(keepends=True):
        if not line.startswith("{"):
            lines.append(line)
            continue
        try:
            event = json.loads(line)
        except ValueError:
            lines.append(line)
            continue
        if isinstance(event, dict) and isinstance(event.get("Output"), str):
            lines.append(event["Output"])
    return "".join(lines)
