"""Supervision that catches misbehaving agents, with the REAL Claude Code CLI against the fake API.

Each test scripts a model that misbehaves (asks in prose, claims work it did not do, loops, hits a
rate limit) and checks what the supervisor did about it, in the events and on disk.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from agentproxy.messages import (
    AgentPaused,
    AgentStarted,
    Event,
    FollowUpSent,
    QuestionAnswered,
    QuestionAsked,
    Stuck,
    SubtaskFinished,
)
from agentproxy.options import RunOptions
from agentproxy.runtime import RunOutcome, run_task
from agentproxy.testing.claude_env import fake_api_options, find_claude_bin, isolated_claude_env
from agentproxy.testing.fake_anthropic import CapturedRequest, Error, FakeAnthropic, Text, ToolUse, write_file

REFOCUS_MARK = "You are repeating yourself"


def run(task: str, options: RunOptions) -> tuple[RunOutcome, list[Event]]:
    events: list[Event] = []
    outcome = run_task(task, options, subscribers=[events.append], timeout_s=180)
    return outcome, events


def options_for(api: FakeAnthropic, tmp_path: Path, **overrides: Any) -> RunOptions:
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    return fake_api_options(api.url, project, tmp_path / "claude-home", **overrides)


def user_texts(request: CapturedRequest) -> list[str]:
    """Every text the user side said in the conversation so far, oldest first (tool results aside)."""
    texts = []
    for message in request.body.get("messages") or []:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        texts += [b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
    return texts


def test_a_question_in_prose_without_a_question_mark_gets_an_answer_turn(tmp_path: Path) -> None:
    question = (
        "I looked at the project. There are two ways to store the settings: a JSON file next to the app,"
        " or SQLite. JSON is simpler; SQLite copes better with concurrent writers.\n\n"
        "Please tell me which you prefer and I will implement it."
    )
    with FakeAnthropic(
        Text(question),
        lambda r: write_file("settings.py", f"# storage: {r.last_user_text[:200]!r}\n"),
        Text("Implemented settings.py."),
    ) as api:
        outcome, events = run("Add settings storage", options_for(api, tmp_path))
    assert outcome.status == "done", outcome.reason
    asked = [e for e in events if isinstance(e, QuestionAsked)]
    assert asked and asked[0].via == "final_text"
    assert [e for e in events if isinstance(e, QuestionAnswered)]
    assert "Answers to your question" in (tmp_path / "project" / "settings.py").read_text()


def test_an_offer_after_finished_work_gets_no_answer_turn(tmp_path: Path) -> None:
    with FakeAnthropic(
        write_file("cli.py", "print('hi')\n"),
        Text("Done: cli.py prints hi.\n\nWould you like me to add tests for it as well?"),
    ) as api:
        outcome, events = run("Create cli.py that prints hi", options_for(api, tmp_path))
    assert outcome.status == "done", outcome.reason
    assert not [e for e in events if isinstance(e, QuestionAsked)]
    assert len(api.requests) == 2  # the write and the report: no third turn answering the offer


def test_done_with_no_changes_is_sent_back_once_then_the_work_is_done(tmp_path: Path) -> None:
    with FakeAnthropic(
        Text("Done! I've created hello.py."),
        write_file("hello.py", "print('hello')\n"),
        Text("Now really created hello.py."),
    ) as api:
        outcome, events = run("Create hello.py printing hello", options_for(api, tmp_path))
    assert outcome.status == "done", outcome.reason
    follow_ups = [e for e in events if isinstance(e, FollowUpSent)]
    assert len(follow_ups) == 1 and "nothing changed" in follow_ups[0].instruction
    assert (tmp_path / "project" / "hello.py").is_file()
    assert len({e.agent_session_id for e in events if isinstance(e, AgentStarted)}) == 1  # the same session


def test_done_with_no_changes_twice_fails_with_the_reason(tmp_path: Path) -> None:
    with FakeAnthropic(default=Text("Done! I've created hello.py.")) as api:
        outcome, events = run("Create hello.py printing hello", options_for(api, tmp_path))
    assert outcome.status == "failed"
    finished = [e for e in events if isinstance(e, SubtaskFinished)]
    assert finished and "changed nothing" in finished[-1].reason
    assert not (tmp_path / "project" / "hello.py").exists()


def test_a_task_that_changes_nothing_by_nature_is_not_sent_back(tmp_path: Path) -> None:
    with FakeAnthropic(Text("The store keeps every session in SQLite, one row per event.")) as api:
        outcome, events = run("Explain how the session store works", options_for(api, tmp_path))
    assert outcome.status == "done", outcome.reason
    assert not [e for e in events if isinstance(e, FollowUpSent)]


def looping_model(request: CapturedRequest) -> ToolUse | Text:
    """Runs the same failing command until refocused; then writes the file another way and reports."""
    if not any(REFOCUS_MARK in text for text in user_texts(request)):
        return ToolUse("Bash", {"command": "cat missing-config.toml"})
    if REFOCUS_MARK in request.last_user_text:
        return write_file("config.toml", "[app]\nname = 'x'\n")
    return Text("Created config.toml instead of reading a missing one.")


def test_a_loop_is_interrupted_and_the_agent_refocused(tmp_path: Path) -> None:
    with FakeAnthropic(default=looping_model) as api:
        outcome, events = run("Set up the app config", options_for(api, tmp_path, stuck_repeats=3))
    assert outcome.status == "done", outcome.reason
    stuck = [e for e in events if isinstance(e, Stuck)]
    assert [s.action for s in stuck] == ["refocus"] and "cat missing-config.toml" in stuck[0].pattern
    assert any(REFOCUS_MARK in r.last_user_text for r in api.requests)
    assert (tmp_path / "project" / "config.toml").is_file()
    calls = [r for r in api.requests if r.tool_results and "missing-config" in json.dumps(r.tool_results)]
    assert len(calls) <= 5  # interrupted at the third repeat, not at the wall-clock limit


def test_a_loop_that_comes_back_after_refocusing_fails_the_subtask_as_stuck(tmp_path: Path) -> None:
    with FakeAnthropic(default=ToolUse("Bash", {"command": "cat missing-config.toml"})) as api:
        outcome, events = run("Set up the app config", options_for(api, tmp_path, stuck_repeats=3))
    assert outcome.status == "failed"
    assert [s.action for s in events if isinstance(s, Stuck)] == ["refocus", "failed"]
    finished = [e for e in events if isinstance(e, SubtaskFinished)]
    assert finished and finished[-1].reason.startswith("stuck:")


def test_the_same_failing_check_after_two_follow_ups_ends_the_subtask(tmp_path: Path) -> None:
    attempts = iter(range(100))

    def model(request: CapturedRequest) -> ToolUse | Text:
        if request.tool_results:
            return Text("Changed value.py.")
        return write_file("value.py", f"VALUE = {next(attempts)}\n")

    check = f"{sys.executable} -c \"import sys; sys.exit('wrong answer')\""
    with FakeAnthropic(default=model) as api:
        outcome, events = run("Make the check pass", options_for(api, tmp_path, checks=(check,), max_attempts=5))
    assert outcome.status == "failed"
    stuck = [e for e in events if isinstance(e, Stuck)]
    assert stuck and stuck[0].action == "failed"
    assert len([e for e in events if isinstance(e, FollowUpSent)]) == 2  # not all 5 allowed


def test_a_rate_limit_pauses_the_agent_then_the_same_session_completes(tmp_path: Path) -> None:
    with FakeAnthropic(
        Error(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
        write_file("done.txt", "ok\n"),
        Text("Wrote done.txt."),
    ) as api:
        options = options_for(api, tmp_path, rate_limit_first_wait_s=0.5, max_attempts=0)
        outcome, events = run("Write done.txt", options)
    assert outcome.status == "done", outcome.reason
    paused = [e for e in events if isinstance(e, AgentPaused)]
    assert len(paused) == 1 and "429" in paused[0].reason and 0.3 < paused[0].wait_s < 1.0
    assert (tmp_path / "project" / "done.txt").read_text() == "ok\n"
    assert len({e.agent_session_id for e in events if isinstance(e, AgentStarted)}) == 1
    assert not [e for e in events if isinstance(e, FollowUpSent)]  # a pause is not an attempt


def test_a_limit_past_the_longest_wait_fails_with_the_reason(tmp_path: Path) -> None:
    resets = int(time.time()) + 7200
    with FakeAnthropic(Error(429, "rate_limit_error", f"Claude AI usage limit reached|{resets}")) as api:
        options = options_for(api, tmp_path, rate_limit_max_wait_s=60, max_attempts=0)
        outcome, events = run("Write done.txt", options)
    assert outcome.status == "failed"
    assert "--max-rate-limit-wait" in outcome.reason
    assert not [e for e in events if isinstance(e, AgentPaused)]


def test_ctrl_c_during_a_pause_exits_130_at_once(tmp_path: Path, agentproxy_home: Path) -> None:
    project = tmp_path / "project"
    resets = int(time.time()) + 3600
    with FakeAnthropic(Error(429, "rate_limit_error", f"usage limit reached|{resets}")) as api:
        env = {**isolated_claude_env(api.url, tmp_path / "claude-home"), "AGENTPROXY_HOME": str(agentproxy_home)}
        pa = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agentproxy",
                "-d",
                str(project),
                "--claude-bin",
                find_claude_bin() or "claude",
                "--output",
                "json",
                "Write done.txt",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert pa.stdout is not None
        lines = []
        for line in pa.stdout:
            lines.append(json.loads(line))
            if lines[-1]["kind"] == "agent_paused":
                break
        started = time.monotonic()
        os.kill(pa.pid, signal.SIGINT)
        out, _ = pa.communicate(timeout=30)
    assert pa.returncode == 130
    assert time.monotonic() - started < 10
    assert lines[-1]["wait_s"] > 3000
    assert '"status":"interrupted"' in out.replace(" ", "")
