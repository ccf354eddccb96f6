"""One check run so that it can be judged: its runner told to report each test, and what it reported."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

import msgspec

from agentproxy.baseline import CheckRun, check_run
from agentproxy.checks import TAIL_CHARS, run_command_output
from agentproxy.test_reports import instrument, parse_outcomes, readable_output


def run_check(command: str, cwd: Path, timeout_s: float, env: Mapping[str, str]) -> CheckRun:
    """Run command (instrumented where its runner can report test by test) and read its outcomes.

    The result names the command as given, and its output tail is the runner's readable output.
    """
    with tempfile.TemporaryDirectory(prefix="agentproxy-report-") as report_dir:
        instrumented = instrument(command, Path(report_dir))
        result, output = run_command_output(instrumented.command, cwd, timeout_s, env)
        report = instrumented.report
        if report is not None and not report.is_absolute():
            report = cwd / report
        outcomes = parse_outcomes(instrumented.format, report, output)
    if outcomes is not None and result.timed_out:
        outcomes = msgspec.structs.replace(outcomes, complete=False)  # killed midway: the rest never ran
    shown = readable_output(instrumented.format, output)
    result = msgspec.structs.replace(result, command=command, output_tail=shown[-TAIL_CHARS:])
    return check_run(result, outcomes, cwd)
