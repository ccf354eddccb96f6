"""End to end with the REAL Claude Code CLI (npm, pinned) against the project's fake Anthropic API.

Each test scripts the model's side of the conversation; everything between (the CLI, its control
protocol, the actors, the checks, git) is the real thing. Runs as root, as CI does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentproxy.messages import (
    AgentFinished,
    AgentStarted,
    ChecksRan,
    Event,
    FollowUpSent,
    QuestionAnswered,
    SubtaskFinished,
)
from agentproxy.options import RunOptions
from agentproxy.runtime import run_task
from agentproxy.testing.claude_env import fake_api_options, find_claude_bin, isolated_claude_env, pa_argv
from agentproxy.testing.fake_anthropic import CapturedRequest, Error, FakeAnthropic, Hang, Text, ToolUse, write_file

CLAUDE_BIN = find_claude_bin() or "claude"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    directory = tmp_path / "project"
    directory.mkdir()
    return directory


def options_for(api: FakeAnthropic, project: Path, tmp_path: Path, **overrides: Any) -> RunOptions:
    return fake_api_options(api.url, project, tmp_path / "claude-home", **overrides)


def run(task: str, options: RunOptions):
    events: list[Event] = []
    outcome = run_task(task, options, subscribers=[events.append], timeout_s=180)
    return outcome, events


def processes_with_home(home: Path) -> list[int]:
    """Live processes started with this test's private HOME: its claude and anything claude spawned."""
    marker = f"HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_pa_creates_a_file(project: Path, tmp_path: Path, agentproxy_home: Path) -> None:
    with FakeAnthropic(write_file("hello.txt", "hi\n"), Text("Created hello.txt.")) as api:
        env = {**isolated_claude_env(api.url, tmp_path / "claude-home"), "AGENTPROXY_HOME": str(agentproxy_home)}
        done = subprocess.run(
            pa_argv(project, "Create hello.txt containing hi"),
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert done.returncode == 0, done.stderr
    assert (project / "hello.txt").read_text() == "hi\n"
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events[-1]["kind"] == "session_finished" and events[-1]["status"] == "done"
    main = [r for r in api.requests if not r.side]
    assert main[0].cwd == str(project)
    assert "Create hello.txt containing hi" in main[0].last_user_text
    assert main[1].tool_results and not main[1].tool_results[0].get("is_error")
    log = subprocess.run(["git", "log", "--format=%s"], cwd=project, capture_output=True, text=True, check=True)
    assert log.stdout.splitlines() == ["agentproxy: Create hello.txt containing hi", "agentproxy: baseline"]


def test_ask_user_question_is_answered_through_the_control_protocol(project: Path, tmp_path: Path) -> None:
    question = {
        "question": "Which web framework should I use?",
        "header": "Framework",
        "options": [
            {"label": "Django", "description": "batteries included"},
            {"label": "Flask (Recommended)", "description": "small"},
        ],
        "multiSelect": False,
    }

    def write_the_answer(request: CapturedRequest) -> ToolUse:
        answer = json.dumps(request.tool_results[0].get("content"))
        return write_file("choice.txt", answer)

    with FakeAnthropic(ToolUse("AskUserQuestion", {"questions": [question]}), write_the_answer, Text("Done.")) as api:
        outcome, events = run("Pick a framework and record it in choice.txt", options_for(api, project, tmp_path))
    assert outcome.status == "done", outcome.reason
    answered = [e for e in events if isinstance(e, QuestionAnswered)]
    assert answered and answered[0].answers == {question["question"]: "Flask (Recommended)"}
    # The answer travelled in-band: the CLI gave it to the model as the tool's result.
    assert "Flask (Recommended)" in (project / "choice.txt").read_text()


def test_failing_check_gets_a_follow_up_in_the_same_agent_session(project: Path, tmp_path: Path) -> None:
    check = f"{sys.executable} -c \"import greet; assert greet.greet('Ada') == 'Hello, Ada!', greet.greet('Ada')\""
    with FakeAnthropic(
        write_file("greet.py", "def greet(name):\n    return 'Hello ' + name\n"),
        Text("Wrote greet.py."),
        write_file("greet.py", "def greet(name):\n    return f'Hello, {name}!'\n"),
        Text("Fixed the greeting."),
    ) as api:
        outcome, events = run("Write greet.py", options_for(api, project, tmp_path, checks=(check,)))
    assert outcome.status == "done", outcome.reason
    checks = [e for e in events if isinstance(e, ChecksRan)]
    assert [c.results[0].passed for c in checks] == [False, True]
    follow_ups = [e for e in events if isinstance(e, FollowUpSent)]
    assert len(follow_ups) == 1 and "AssertionError" in follow_ups[0].instruction
    sessions = {e.agent_session_id for e in events if isinstance(e, (AgentStarted, AgentFinished))}
    assert len(sessions) == 1, sessions
    main = [r for r in api.requests if not r.side]
    assert "Hello Ada" in main[2].last_user_text  # the failing output reached the model
    assert len(main[2].body["messages"]) > len(main[0].body["messages"])  # with the earlier history


def test_hung_agent_is_killed_by_the_watchdog(project: Path, tmp_path: Path) -> None:
    with FakeAnthropic(Hang(120)) as api:
        options = options_for(api, project, tmp_path, silence_timeout_s=4, max_attempts=0)
        outcome, events = run("Say something", options)
    assert outcome.status == "failed"
    finished = [e for e in events if isinstance(e, SubtaskFinished)]
    assert finished and "silent" in finished[0].reason
    assert processes_with_home(tmp_path / "claude-home") == []


def test_api_error_ends_the_subtask_with_a_clear_reason(project: Path, tmp_path: Path) -> None:
    with FakeAnthropic(Error(500, message="backend exploded"), default=Error(500, message="backend exploded")) as api:
        outcome, events = run("Say something", options_for(api, project, tmp_path, max_attempts=0))
    assert outcome.status == "failed"
    finished = [e for e in events if isinstance(e, SubtaskFinished)]
    assert finished and "500" in finished[0].reason, finished
    assert processes_with_home(tmp_path / "claude-home") == []
    assert os.environ.get("ANTHROPIC_API_KEY", "sk-ant-fake-key") not in outcome.reason


def test_a_final_answer_that_is_a_question_gets_an_answer_turn(project: Path, tmp_path: Path) -> None:
    asking = Text("I can build this two ways:\n1. Flask (Recommended)\n2. Django\n\nWhich framework should I use?")

    def write_what_it_was_told(request: CapturedRequest) -> ToolUse:
        return write_file("told.txt", request.last_user_text)

    with FakeAnthropic(asking, write_what_it_was_told, Text("Built it with Flask.")) as api:
        outcome, events = run("Build the web app", options_for(api, project, tmp_path))
    assert outcome.status == "done", outcome.reason
    answered = [e for e in events if isinstance(e, QuestionAnswered)]
    assert answered and list(answered[0].answers.values()) == ["Flask (Recommended)"]
    assert "Flask (Recommended)" in (project / "told.txt").read_text()
    sessions = {e.agent_session_id for e in events if isinstance(e, AgentFinished)}
    assert len(sessions) == 1  # the answer went to the same agent session


def test_a_transcript_captured_from_the_real_cli_parses_line_by_line(project: Path, tmp_path: Path) -> None:
    from agentproxy.agents import claude_stream as wire

    with FakeAnthropic(write_file("a.txt", "a\n"), Text("Wrote a.txt.")) as api:
        done = subprocess.run(
            [CLAUDE_BIN, "-p", "Write a.txt", "--output-format", "stream-json", "--verbose", "--allowedTools", "Write"],
            cwd=project,
            env=isolated_claude_env(api.url, tmp_path / "claude-home"),
            capture_output=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    parsed = [wire.parse_line(line) for line in done.stdout.splitlines() if line.strip()]
    assert not [p for p in parsed if isinstance(p, (wire.MalformedLine, wire.UnknownLine))]
    assert isinstance(parsed[0], wire.SystemLine) and isinstance(parsed[-1], wire.ResultLine)
    assert parsed[-1].session_id == parsed[0].session_id
