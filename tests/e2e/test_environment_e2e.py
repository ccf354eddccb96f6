"""A check that cannot run is the environment's failure, not the agent's: `pa` drives the REAL Claude
Code CLI against the fake API, and the project's check needs a pytest plugin that is not installed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from agentproxy.testing.claude_env import isolated_claude_env, pa_argv
from agentproxy.testing.fake_anthropic import FakeAnthropic, Text, write_file


def test_a_missing_plugin_is_shown_as_environment_and_the_agent_is_not_sent_back(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_app.py").write_text("def test_app():\n    assert True\n")
    check = f"{sys.executable} -m pytest --benchmark-only -q tests"  # pytest-benchmark is not installed
    with FakeAnthropic(write_file("app.py", "VALUE = 1\n"), Text("Created app.py.")) as api:
        env = {**isolated_claude_env(api.url, tmp_path / "claude-home"), "AGENTPROXY_HOME": str(tmp_path / "home")}
        done = subprocess.run(
            pa_argv(project, "Create app.py", "--check", check), env=env, capture_output=True, text=True, timeout=180
        )
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0, events[-1]
    assert not [e for e in events if e["kind"] == "follow_up_sent"]  # the agent was not blamed
    ran = next(e for e in events if e["kind"] == "checks_ran")["results"][0]
    assert "pytest-benchmark" in ran["environment"] and "pip install pytest-benchmark" in ran["environment"]
    notices = [e["text"] for e in events if e["kind"] == "notice" and e.get("level") == "warning"]
    assert any("could not run" in text and "pytest-benchmark" in text for text in notices)
    reviewed = next(e for e in events if e["kind"] == "reviewed")
    assert any("environment" in finding for finding in reviewed["verdict"]["findings"])
    assert len(api.requests) == 2  # the write and the report: no third turn


def test_a_failure_of_the_code_is_still_sent_back(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    check = f'{sys.executable} -c "import app; assert app.VALUE == 2, app.VALUE"'
    with FakeAnthropic(
        write_file("app.py", "VALUE = 1\n"),
        Text("Created app.py."),
        write_file("app.py", "VALUE = 2\n"),
        Text("Fixed."),
    ) as api:
        env = {**isolated_claude_env(api.url, tmp_path / "claude-home"), "AGENTPROXY_HOME": str(tmp_path / "home")}
        done = subprocess.run(
            pa_argv(project, "Create app.py", "--check", check), env=env, capture_output=True, text=True, timeout=180
        )
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0, events[-1]
    first = next(e for e in events if e["kind"] == "checks_ran")["results"][0]
    assert not first.get("environment")
    assert len([e for e in events if e["kind"] == "follow_up_sent"]) == 1
