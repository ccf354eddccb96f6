"""Supervision that catches misbehaving agents: `pa` drives the REAL Claude Code CLI against the fake API.

Each test scripts a model that misbehaves (asks in prose, claims work it did not do, loops, hits a
rate limit) and checks what the supervisor did about it: the exit code, the `--output json`
events, and the files on disk.
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

import pytest

from agentproxy.testing.claude_env import isolated_claude_env, pa_argv
from agentproxy.testing.fake_anthropic import CapturedRequest, Error, FakeAnthropic, Text, ToolUse, write_file

REFOCUS_MARK = "You are repeating yourself"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    directory = tmp_path / "project"
    directory.mkdir()
    return directory


def pa_env(api: FakeAnthropic, tmp_path: Path) -> dict[str, str]:
    return {
        **isolated_claude_env(api.url, tmp_path / "claude-home"),
        "AGENTPROXY_HOME": str(tmp_path / "agentproxy-home"),
    }


def pa(api: FakeAnthropic, tmp_path: Path, task: str, *flags: str) -> tuple[int, list[dict[str, Any]]]:
    """Run `pa` to the end; its exit code and its events."""
    done = subprocess.run(
        pa_argv(tmp_path / "project", task, *flags),
        env=pa_env(api, tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
    )
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert events and events[-1]["kind"] == "session_finished", done.stderr[-2000:]
    return done.returncode, events


def of_kind(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [event for event in events if event["kind"] == kind]


def agent_sessions(events: list[dict[str, Any]]) -> set[str]:
    return {event["agent_session_id"] for event in of_kind(events, "agent_started")}


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


def test_a_question_in_prose_without_a_question_mark_gets_an_answer_turn(project: Path, tmp_path: Path) -> None:
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
        code, events = pa(api, tmp_path, "Add settings storage")
    assert code == 0, events[-1]
    asked = of_kind(events, "question_asked")
    assert asked and asked[0]["via"] == "final_text" and "prefer" in asked[0]["questions"][0]["question"]
    assert of_kind(events, "question_answered")
    assert "Answers to your question" in (project / "settings.py").read_text()


def test_an_offer_after_finished_work_gets_no_answer_turn(project: Path, tmp_path: Path) -> None:
    with FakeAnthropic(
        write_file("cli.py", "print('hi')\n"),
        Text("Done: cli.py prints hi.\n\nWould you like me to add tests for it as well?"),
    ) as api:
        code, events = pa(api, tmp_path, "Create cli.py that prints hi")
    assert code == 0, events[-1]
    assert not of_kind(events, "question_asked")
    assert len(api.requests) == 2  # the write and the report: no third turn answering the offer


def test_done_with_no_changes_is_sent_back_once_then_the_work_is_done(project: Path, tmp_path: Path) -> None:
    with FakeAnthropic(
        Text("Done! I've created hello.py."),
        write_file("hello.py", "print('hello')\n"),
        Text("Now really created hello.py."),
    ) as api:
        code, events = pa(api, tmp_path, "Create hello.py printing hello")
    assert code == 0, events[-1]
    follow_ups = of_kind(events, "follow_up_sent")
    assert len(follow_ups) == 1 and "nothing changed" in follow_ups[0]["instruction"]
    assert (project / "hello.py").is_file()
    assert len(agent_sessions(events)) == 1  # the same agent session was sent back


def test_done_with_no_changes_twice_fails_with_the_reason(project: Path, tmp_path: Path) -> None:
    with FakeAnthropic(default=Text("Done! I've created hello.py.")) as api:
        code, events = pa(api, tmp_path, "Create hello.py printing hello")
    assert code == 1
    assert "changed nothing" in of_kind(events, "subtask_finished")[-1]["reason"]
    assert not (project / "hello.py").exists()


def test_a_task_that_changes_nothing_by_nature_is_not_sent_back(project: Path, tmp_path: Path) -> None:
    with FakeAnthropic(Text("The store keeps every session in SQLite, one row per event.")) as api:
        code, events = pa(api, tmp_path, "Explain how the session store works")
    assert code == 0, events[-1]
    assert not of_kind(events, "follow_up_sent")


def looping_model(request: CapturedRequest) -> ToolUse | Text:
    """Runs the same failing command until refocused; then writes the file another way and reports."""
    if not any(REFOCUS_MARK in text for text in user_texts(request)):
        return ToolUse("Bash", {"command": "cat missing-config.toml"})
    if REFOCUS_MARK in request.last_user_text:
        return write_file("config.toml", "[app]\nname = 'x'\n")
    return Text("Created config.toml instead of reading a missing one.")


def test_a_loop_is_interrupted_and_the_agent_refocused(project: Path, tmp_path: Path) -> None:
    with FakeAnthropic(default=looping_model) as api:
        code, events = pa(api, tmp_path, "Set up the app config")
    assert code == 0, events[-1]
    stuck = of_kind(events, "stuck")
    assert [s["action"] for s in stuck] == ["refocus"] and "cat missing-config.toml" in stuck[0]["pattern"]
    assert any(REFOCUS_MARK in r.last_user_text for r in api.requests)
    assert (project / "config.toml").is_file()
    runs = [e for e in of_kind(events, "agent_used_tool") if "missing-config" in e.get("detail", "")]
    assert 4 <= len(runs) <= 6  # interrupted at the fourth repeat, not at the wall-clock limit
    assert len(agent_sessions(events)) == 1


def test_a_loop_that_comes_back_after_refocusing_fails_the_subtask_as_stuck(project: Path, tmp_path: Path) -> None:
    with FakeAnthropic(default=ToolUse("Bash", {"command": "cat missing-config.toml"})) as api:
        code, events = pa(api, tmp_path, "Set up the app config")
    assert code == 1
    assert [s["action"] for s in of_kind(events, "stuck")] == ["refocus", "failed"]
    assert of_kind(events, "subtask_finished")[-1]["reason"].startswith("stuck:")


def test_the_same_failing_check_after_two_follow_ups_ends_the_subtask(project: Path, tmp_path: Path) -> None:
    attempts = iter(range(100))

    def model(request: CapturedRequest) -> ToolUse | Text:
        if request.tool_results:
            return Text("Changed value.py.")
        return write_file("value.py", f"VALUE = {next(attempts)}\n")

    # Passes at the base; once value.py exists it fails, the same way whatever the agent writes.
    check = f"{sys.executable} -c \"import os, sys; os.path.exists('value.py') and sys.exit('wrong answer')\""
    with FakeAnthropic(default=model) as api:
        code, events = pa(api, tmp_path, "Make the check pass", "--check", check, "--max-attempts", "5")
    assert code == 1
    stuck = of_kind(events, "stuck")
    assert stuck and stuck[0]["action"] == "failed"
    assert len(of_kind(events, "follow_up_sent")) == 2  # not all 5 allowed


def test_a_rate_limit_pauses_the_agent_then_the_same_session_completes(project: Path, tmp_path: Path) -> None:
    resets = int(time.time()) + 3
    with FakeAnthropic(
        Error(429, "rate_limit_error", f"Rate limited, resets|{resets}"),
        write_file("done.txt", "ok\n"),
        Text("Wrote done.txt."),
    ) as api:
        code, events = pa(api, tmp_path, "Write done.txt", "--max-attempts", "0")
    assert code == 0, events[-1]
    paused = of_kind(events, "agent_paused")
    assert len(paused) == 1 and "429" in paused[0]["reason"] and paused[0]["until"] == pytest.approx(resets, abs=1)
    assert (project / "done.txt").read_text() == "ok\n"
    assert len(agent_sessions(events)) == 1
    assert not of_kind(events, "follow_up_sent")  # a pause is not an attempt


def test_a_limit_past_the_longest_wait_fails_with_the_reason(project: Path, tmp_path: Path) -> None:
    resets = int(time.time()) + 7200
    with FakeAnthropic(Error(429, "rate_limit_error", f"Claude AI usage limit reached|{resets}")) as api:
        code, events = pa(api, tmp_path, "Write done.txt", "--max-rate-limit-wait", "60", "--max-attempts", "0")
    assert code == 1
    assert "--max-rate-limit-wait" in events[-1]["reason"]
    assert not of_kind(events, "agent_paused")


def test_ctrl_c_during_a_pause_exits_130_at_once(project: Path, tmp_path: Path) -> None:
    resets = int(time.time()) + 3600
    with FakeAnthropic(Error(429, "rate_limit_error", f"usage limit reached|{resets}")) as api:
        running = subprocess.Popen(
            pa_argv(project, "Write done.txt"), env=pa_env(api, tmp_path), stdout=subprocess.PIPE, text=True
        )
        assert running.stdout is not None
        seen = []
        for line in running.stdout:
            seen.append(json.loads(line))
            if seen[-1]["kind"] == "agent_paused":
                break
        started = time.monotonic()
        os.kill(running.pid, signal.SIGINT)
        rest, _ = running.communicate(timeout=30)
    assert running.returncode == 130
    assert time.monotonic() - started < 10
    assert seen[-1]["wait_s"] > 3000
    assert json.loads(rest.splitlines()[-1])["status"] == "interrupted"
