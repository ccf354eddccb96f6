"""Only what the agent's change made worse is held against it: `pa` drives the REAL Claude Code CLI against
the fake API, and the project's checks run at the subtask's base before the agent's first turn."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentproxy.checks import PREEXISTING_NOTE
from agentproxy.testing.claude_env import isolated_claude_env, pa_argv
from agentproxy.testing.fake_anthropic import FakeAnthropic, Reply, Text, write_file

# Run with this interpreter: it has pytest, so `--setup off` needs no install.
PYTEST = f"{sys.executable} -m pytest -q tests"

# One test fails at the base (test_old, about a module no task touches); test_b passes there.
SUITE_WITH_AN_OLD_FAILURE = {
    "old.py": 'GREETING = "hello"\n',
    "app.py": "def double(x):\n    return 2 * x\n",
    "tests/test_app.py": (
        "import app\nimport old\n\n\n"
        "def test_old():\n    assert old.GREETING == 'hi'\n\n\n"
        "def test_b():\n    assert app.double(3) == 6\n"
    ),
}
APP_WITH_TRIPLE = "def double(x):\n    return 2 * x\n\n\ndef triple(x):\n    return 3 * x\n"
APP_WITH_TRIPLE_BREAKING_DOUBLE = "def double(x):\n    return x * x\n\n\ndef triple(x):\n    return 3 * x\n"

# A src layout, so the tree's package imports only when the setup installed it editable.
PYPROJECT = """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "pkgx"
version = "2.0"

[project.optional-dependencies]
test = ["pytest", "pytest-randomly"]
"""
# pytest-randomly: a test plugin absent from agentproxy's own environment, installable from PyPI.
PLUGIN_PROJECT = {
    "pyproject.toml": PYPROJECT,
    "src/pkgx/__init__.py": 'VERSION = "2.0"\n',
    "tests/test_where.py": (
        "import sys\n\nimport pytest_randomly  # noqa: F401\n\nimport pkgx\n\n\n"
        "def test_where():\n"
        "    print('PKGX', pkgx.__file__)\n"
        "    print('PREFIX', sys.prefix)\n"
        "    assert pkgx.VERSION == '2.0'\n"
    ),
}


def make_project(tmp_path: Path, files: dict[str, str]) -> Path:
    project = tmp_path / "project"
    for name, text in files.items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return project


def run_pa(
    tmp_path: Path, project: Path, task: str, replies: list[Reply], *flags: str
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]], FakeAnthropic]:
    with FakeAnthropic(*replies) as api:
        env = {**isolated_claude_env(api.url, tmp_path / "claude-home"), "AGENTPROXY_HOME": str(tmp_path / "home")}
        done = subprocess.run(pa_argv(project, task, *flags), env=env, capture_output=True, text=True, timeout=540)
    events = [json.loads(line) for line in done.stdout.splitlines()]
    return done, events, api


def of_kind(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [event for event in events if event["kind"] == kind]


def only_verdict(checks_ran: dict[str, Any]) -> dict[str, Any]:
    (verdict,) = checks_ran["verdicts"]
    return verdict


def assert_done(done: subprocess.CompletedProcess[str], events: list[dict[str, Any]]) -> None:
    assert done.returncode == 0, (events[-1:], done.stderr[-2000:])
    assert events[-1]["kind"] == "session_finished" and events[-1]["status"] == "done"


def test_only_the_new_failure_is_sent_back_and_the_old_one_does_not_fail_the_run(tmp_path: Path) -> None:
    project = make_project(tmp_path, SUITE_WITH_AN_OLD_FAILURE)
    replies = [
        write_file("app.py", APP_WITH_TRIPLE_BREAKING_DOUBLE),
        Text("Added triple."),
        write_file("app.py", APP_WITH_TRIPLE),
        Text("Fixed double."),
    ]
    done, events, _ = run_pa(tmp_path, project, "Add triple(x) to app.py", replies, "--setup", "off", "--check", PYTEST)

    assert_done(done, events)
    first, last = of_kind(events, "checks_ran")[0], of_kind(events, "checks_ran")[-1]
    verdict = only_verdict(first)
    assert verdict["kind"] == "failed"
    assert [test.rsplit("::", 1)[-1] for test in verdict["new_failures"]] == ["test_b"]
    assert any(test.endswith("test_old") for test in verdict["preexisting"])
    (follow_up,) = of_kind(events, "follow_up_sent")
    blamed, _, told = follow_up["instruction"].partition(PREEXISTING_NOTE)
    assert "test_b" in blamed and "test_old" in told  # test_b is the agent's; test_old was there before
    assert only_verdict(last)["kind"] == "preexisting"


def test_a_change_that_breaks_nothing_passes_despite_the_old_failure(tmp_path: Path) -> None:
    project = make_project(tmp_path, SUITE_WITH_AN_OLD_FAILURE)
    replies = [write_file("app.py", APP_WITH_TRIPLE), Text("Added triple.")]
    done, events, api = run_pa(
        tmp_path, project, "Add triple(x) to app.py", replies, "--setup", "off", "--check", PYTEST
    )

    assert_done(done, events)
    assert not of_kind(events, "follow_up_sent")
    assert only_verdict(of_kind(events, "checks_ran")[-1])["kind"] == "preexisting"
    prompt = api.requests[0].last_user_text
    assert PREEXISTING_NOTE in prompt and "test_old" in prompt.split(PREEXISTING_NOTE, 1)[1]


def test_a_check_that_failed_on_a_missing_module_and_now_fails_on_wrong_code_is_sent_back(tmp_path: Path) -> None:
    project = make_project(
        tmp_path, {"tests/test_calc.py": "import calc\n\n\ndef test_add():\n    assert calc.add(2, 3) == 5\n"}
    )
    replies = [
        write_file("calc.py", "def add(a, b):\n    return a - b\n"),
        Text("Created calc.py."),
        write_file("calc.py", "def add(a, b):\n    return a + b\n"),
        Text("Fixed add."),
    ]
    done, events, _ = run_pa(
        tmp_path, project, "Create calc.py with add(a, b)", replies, "--setup", "off", "--check", PYTEST
    )

    assert_done(done, events)
    assert "No module named 'calc'" in of_kind(events, "baseline_ran")[0]["results"][0]["output_tail"]
    verdict = only_verdict(of_kind(events, "checks_ran")[0])
    assert verdict["kind"] == "failed" and [test.rsplit("::", 1)[-1] for test in verdict["new_failures"]] == [
        "test_add"
    ]
    assert len(of_kind(events, "follow_up_sent")) == 1
    assert only_verdict(of_kind(events, "checks_ran")[-1])["kind"] == "passed"


def printed_path(output: str, label: str) -> Path:
    found = re.search(rf"^{label} (\S+)$", output, re.MULTILINE)
    assert found, output
    return Path(found.group(1)).resolve()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_setup_auto_installs_the_test_extra_and_the_checks_import_the_tree(tmp_path: Path) -> None:
    project = make_project(tmp_path, PLUGIN_PROJECT)
    replies = [write_file("src/pkgx/names.py", 'NAME = "pkgx"\n'), Text("Added names.py.")]
    check = "python -m pytest -q -s tests"  # `python`: the project's own venv, first on PATH
    done, events, _ = run_pa(tmp_path, project, "Add src/pkgx/names.py", replies, "--setup", "auto", "--check", check)

    assert_done(done, events)
    assert of_kind(events, "setup_started")
    steps = [event["result"] for event in of_kind(events, "setup_step_ran")]
    assert steps and all(step.get("exit_code", 0) == 0 and not step.get("timed_out") for step in steps), steps
    assert any("pip install" in step["command"] and " -e '.[test]'" in step["command"] for step in steps)
    (checks_ran,) = of_kind(events, "checks_ran")
    assert only_verdict(checks_ran)["kind"] == "passed"
    output = checks_ran["results"][0]["output_tail"]
    assert project.resolve() in printed_path(output, "PKGX").parents  # the tree's code, not a copy
    venv = printed_path(output, "PREFIX")
    assert (tmp_path / "home" / "data" / "envs").resolve() in venv.parents
    assert project.resolve() not in venv.parents


def test_a_test_plugin_missing_without_setup_is_the_environment_not_the_agent(tmp_path: Path) -> None:
    project = make_project(tmp_path, PLUGIN_PROJECT)
    replies = [write_file("src/pkgx/names.py", 'NAME = "pkgx"\n'), Text("Added names.py.")]
    check = f"{sys.executable} -m pytest -q -s tests"  # agentproxy's interpreter: no pytest-randomly
    done, events, api = run_pa(tmp_path, project, "Add src/pkgx/names.py", replies, "--setup", "off", "--check", check)

    assert_done(done, events)
    assert not of_kind(events, "setup_started")
    assert not of_kind(events, "follow_up_sent")
    (checks_ran,) = of_kind(events, "checks_ran")
    assert only_verdict(checks_ran)["kind"] == "environment"
    assert "pytest-randomly" in checks_ran["results"][0]["environment"]
    warnings = [event["text"] for event in of_kind(events, "notice") if event.get("level") == "warning"]
    assert any("could not run" in text and "pytest-randomly" in text for text in warnings), warnings
    assert len(api.requests) == 2  # the write and the report: no third turn
