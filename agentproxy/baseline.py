"""Blaming the agent only for what its change made worse: a check's result against the subtask's base.

``judge`` compares a check run at the subtask's base commit with the same check after the agent's
change, and says which kind the outcome is:

- ``passed``: the check passes now.
- ``failed``: the change made it worse, named where the runner reports tests one by one: a check
  that passed at the base fails; a test that passed at the base, or did not exist, fails; a check
  that already failed fails differently (other error lines, another exit status). An acceptance
  check (the subtask's own, from the plan) must pass whatever the base did.
- ``preexisting``: it fails just as it did at the base; the agent is told, never blamed.
- ``environment``: it could not really run (see failure_kinds), and the base gives no reason to
  think the change did that.

Without a usable base (none was run, or it could not run either) a failure in the code counts: nothing
says it was there before.

Environment failures and the base: when the check ran at the base (passed, or failed in the code)
and cannot run now, only the change can have done it (it changed the tree, not the environment: a
deleted test plugin from the dependencies, a renamed test runner script), so it counts as failed,
with the cause and the fix. Network failures are the exception: the tree cannot cause them.

Partial data (an output cut to its tail, a report that misses tests) never clears the agent: per-test
comparison decides only what it can see, and what it cannot falls back to comparing error lines.
"""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from agentproxy.failure_kinds import Classification, classify
from agentproxy.loops import VOLATILE
from agentproxy.messages import CheckResult, CheckVerdict
from agentproxy.test_reports import RunOutcomes

NAMED_TESTS = 10  # tests named in a summary; the rest are counted
# Lines that say what went wrong, in the runners' words.
_ERROR_LINE = re.compile(
    r"error|exception|fail|panic|traceback|assert|not ok|fatal|undefined|cannot|unable|denied|not found|^E\s",
    re.IGNORECASE,
)
# Tallies and banners change with every test added or removed; they say nothing about what broke.
_TALLY_LINE = re.compile(
    r"^[=_-]{3,}.*[=_-]{3,}$"
    r"|\b\d+ (?:passed|failed|errors?|skipped|xfailed|xpassed|warnings?|deselected|tests?)\b"
    r"|^test result:|^# (?:tests|suites|pass|fail|cancelled|skipped|todo|duration_ms)\b|^\d+\.\.\d+$",
    re.IGNORECASE,
)
# Where in a file a line is, and thread or process ids: they move when unrelated code moves.
_PLACES = re.compile(r"(?<=\w):\d+(?::\d+)?\b|\bline \d+|\(\d+\)")


class CheckRun(msgspec.Struct, frozen=True):
    """One check's result with what was read from it: per-test outcomes and, when it failed, why."""

    result: CheckResult
    outcomes: RunOutcomes | None = None
    classification: Classification | None = None


def check_run(result: CheckResult, outcomes: RunOutcomes | None, project: Path) -> CheckRun:
    classification = None if result.passed else classify(result, project)
    return CheckRun(result=result, outcomes=outcomes, classification=classification)


def judge(base: CheckRun | None, now: CheckRun, acceptance: bool) -> CheckVerdict:
    """How the check's result now counts against the agent, given its result at the base (None: not run)."""
    command = now.result.command
    if now.result.passed:
        return CheckVerdict(command=command, kind="passed", summary="passed")
    # Tests the runner reported at a base that could not fully run still count: they did run.
    new, same = _compare_tests(base, now)
    if new:
        return _failed(command, new, same, "fails now: " + _names(new))
    usable_base = base if base is not None and not _is_environment(base) else None
    if now.classification is not None and now.classification.kind == "environment":
        return _judge_environment(usable_base, now.classification, command)
    if usable_base is None:
        return _failed(command, sorted(_failing(now)), [], "fails" + _named(_failing(now)))
    if acceptance:
        return _failed(command, [], same, "an acceptance check of this subtask must pass; it fails" + _named(same))
    if usable_base.result.passed:
        failing = _failing(now)
        return _failed(command, sorted(failing), [], "passed before your change and fails now" + _named(failing))
    if _same_failure(usable_base, now, same):
        return CheckVerdict(command=command, kind="preexisting", preexisting=same, summary=_preexisting_summary(same))
    difference = _new_error_lines(usable_base.result, now.result)
    shown = f": {difference[0]}" if difference else ""
    return _failed(command, [], same, f"failed before your change too, but differently now{shown}")


def at_base(run: CheckRun) -> CheckVerdict:
    """How a check stands at the base, before any change: what the agent is told already fails."""
    command = run.result.command
    if run.result.passed:
        return CheckVerdict(command=command, kind="passed", summary="passes before your change")
    if run.classification is not None and run.classification.kind == "environment":
        return _judge_environment(None, run.classification, command)
    failing = sorted(_failing(run))
    return CheckVerdict(command=command, kind="preexisting", preexisting=failing, summary=_preexisting_summary(failing))


def _judge_environment(base: CheckRun | None, cause: Classification, command: str) -> CheckVerdict:
    if base is not None and not cause.transient:
        summary = f"ran before your change and cannot run now: {cause.cause}; fix: {cause.fix}"
        return CheckVerdict(command=command, kind="failed", summary=summary, cause=cause.cause, fix=cause.fix)
    summary = f"could not run: {cause.cause}; fix: {cause.fix}"
    return CheckVerdict(command=command, kind="environment", summary=summary, cause=cause.cause, fix=cause.fix)


def _compare_tests(base: CheckRun | None, now: CheckRun) -> tuple[list[str], list[str]]:
    """(tests that fail now and did not at the base, tests that failed at the base too), as far as seen."""
    if base is None or base.outcomes is None or now.outcomes is None:
        return [], []
    base_failed = base.outcomes.failed()
    now_failed = now.outcomes.failed()
    # A test missing from a partial base may have failed in the part we did not see.
    new = [test for test in now_failed - base_failed if base.outcomes.complete or test in base.outcomes.tests]
    return sorted(new), sorted(now_failed & base_failed)


def _same_failure(base: CheckRun, now: CheckRun, same: list[str]) -> bool:
    """Whether a check that failed at the base fails the same way now."""
    if (
        base.outcomes is not None
        and now.outcomes is not None
        and base.outcomes.complete
        and now.outcomes.complete
        and same
        and set(same) == now.outcomes.failed()
    ):
        return True  # every failure is accounted for, test by test
    if _status(base.result) != _status(now.result):
        return False
    return not _new_error_lines(base.result, now.result)


def _new_error_lines(base: CheckResult, now: CheckResult) -> list[str]:
    before = set(_error_lines(base.output_tail))
    return [line for line in _error_lines(now.output_tail) if line not in before]


def _error_lines(output: str) -> list[str]:
    """The output's lines that say what went wrong, with what varies between identical runs masked.

    An output without such lines counts in full: a linter's findings rarely say "error".
    """
    lines = [_PLACES.sub("#", VOLATILE.sub("#", line)).strip() for line in output.splitlines()]
    lines = [line for line in lines if line and not _TALLY_LINE.search(line)]
    errors = [line for line in lines if _ERROR_LINE.search(line)]
    return errors or lines


def _status(result: CheckResult) -> str:
    return "timed out" if result.timed_out else f"exit {result.exit_code}"


def _is_environment(run: CheckRun) -> bool:
    return run.classification is not None and run.classification.kind == "environment"


def _failing(run: CheckRun) -> set[str]:
    return run.outcomes.failed() if run.outcomes is not None else set()


def _failed(command: str, new: list[str], same: list[str], summary: str) -> CheckVerdict:
    return CheckVerdict(command=command, kind="failed", new_failures=new, preexisting=same, summary=summary)


def _preexisting_summary(same: list[str]) -> str:
    if same:
        return f"these already failed before your change: {_names(same)}; leave them unless the task is about them"
    return "this check already failed the same way before your change; leave it unless the task is about it"


def _named(tests: set[str] | list[str]) -> str:
    return f": {_names(tests)}" if tests else ""


def _names(tests: set[str] | list[str]) -> str:
    ordered = sorted(tests)
    shown = ", ".join(ordered[:NAMED_TESTS])
    return shown if len(ordered) <= NAMED_TESTS else f"{shown} and {len(ordered) - NAMED_TESTS} more"
