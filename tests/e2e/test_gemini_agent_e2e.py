"""`pa --agent gemini`: pa drives the REAL Gemini CLI (`gemini -p --output-format stream-json`, resumed by
session id) against the project's fake of the Gemini API, with the user's own ~/.gemini settings and key."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agentproxy.testing.fake_gemini import FakeGemini, Hang, RawText, Status, write_file
from agentproxy.testing.gemini_cli_env import find_gemini_bin, isolated_gemini_env
from agentproxy.testing.processes import processes_with
from agentproxy.testing.projects import git, new_project, of_kind

pytestmark = [
    pytest.mark.gemini_cli,
    pytest.mark.timeout(180),
]
BRAIN_KEY = "AIzaSy-e2e-brain-key-0123456789abcdef"
PASSED = {"passed": True, "findings": ["meets the criteria"]}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return new_project(tmp_path / "project")


def users_own_gemini(api: FakeGemini, tmp_path: Path) -> dict[str, str]:
    """The environment of a user whose Gemini CLI has its own key, in ~/.gemini/.env: pa has no Gemini key."""
    env = isolated_gemini_env(api.url, tmp_path / "gemini-home")
    dotenv = tmp_path / "gemini-home" / ".gemini" / ".env"
    dotenv.write_text(
        f"GEMINI_API_KEY={env.pop('GEMINI_API_KEY')}\nGOOGLE_GEMINI_BASE_URL={env.pop('GOOGLE_GEMINI_BASE_URL')}\n"
    )
    return env


def pa(env: dict[str, str], tmp_path: Path, task: str, *flags: str) -> tuple[int, list[dict[str, Any]]]:
    """`pa --agent gemini` to the end: its exit code and events."""
    argv = [
        *(sys.executable, "-m", "agentproxy", "-d", str(tmp_path / "project"), "--output", "json"),
        *("--agent", "gemini", "--gemini-bin", find_gemini_bin() or "gemini", *flags, task),
    ]
    environment = {**env, "AGENTPROXY_HOME": str(tmp_path / "pa-home")}
    done = subprocess.run(argv, env=environment, capture_output=True, text=True, timeout=150)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert events and events[-1]["kind"] == "session_finished", done.stderr[-3000:]
    return done.returncode, events


def test_gemini_creates_a_file_and_pa_commits_it_with_what_the_turn_cost(project: Path, tmp_path: Path) -> None:
    with FakeGemini(write_file("hello.txt", "hello\n"), RawText("Created hello.txt.")) as api:
        code, events = pa(users_own_gemini(api, tmp_path), tmp_path, "create hello.txt saying hello")
    assert code == 0, events[-1]
    assert (project / "hello.txt").read_text() == "hello\n"
    assert "hello.txt" in git(project, "show", "--stat", "--format=%s", "HEAD")
    started = of_kind(events, "agent_started")
    assert [(e["agent"], e["cwd"]) for e in started] == [("gemini", str(project))]
    assert [e["tool"] for e in of_kind(events, "agent_used_tool")] == ["write_file"]
    finished = of_kind(events, "agent_finished")[-1]
    assert finished["result"] == "Created hello.txt." and finished["usage"]["output_tokens"] > 0
    assert finished["usage"]["cost_usd"] > 0 and events[-1]["cost_usd"] == pytest.approx(finished["usage"]["cost_usd"])


def test_a_failing_check_brings_a_follow_up_into_the_same_gemini_session(project: Path, tmp_path: Path) -> None:
    script = [
        write_file("hello.txt", "draft\n"),
        RawText("Done."),
        write_file("hello.txt", "final\n"),
        RawText("Fixed."),
    ]
    with FakeGemini(*script) as api:
        code, events = pa(
            users_own_gemini(api, tmp_path), tmp_path, "write hello.txt", "--check", "grep -q final hello.txt"
        )
        follow_up = api.requests[2]
    assert code == 0, events[-1]
    assert (project / "hello.txt").read_text() == "final\n"
    assert len(of_kind(events, "follow_up_sent")) == 1
    assert len({e["agent_session_id"] for e in of_kind(events, "agent_finished")}) == 1, "one agent session"
    assert "grep -q final hello.txt" in follow_up.last_user_text
    assert "write hello.txt" in follow_up.task_text, "the resumed session carries its history"


def test_an_api_error_ends_the_subtask_with_the_clis_reason(project: Path, tmp_path: Path) -> None:
    with FakeGemini(Status(400, "API key not valid. Please pass a valid API key.")) as api:
        code, events = pa(users_own_gemini(api, tmp_path), tmp_path, "create hello.txt", "--max-attempts", "0")
    assert code == 1
    reason = events[-1]["reason"]
    assert "agent failed" in reason and "API key not valid" in reason, reason
    assert not (project / "hello.txt").exists()


def test_a_hung_gemini_is_killed_by_the_watchdog(project: Path, tmp_path: Path) -> None:
    with FakeGemini(Hang(120)) as api:
        code, events = pa(users_own_gemini(api, tmp_path), tmp_path, "create hello.txt", "--agent-silence-timeout", "4")
    assert code == 1
    assert "silent for 4s" in events[-1]["reason"], events[-1]["reason"]
    assert not processes_with(f"HOME={tmp_path / 'gemini-home'}"), "the watchdog killed the agent's process group"


def test_a_quota_error_pauses_the_agent_until_it_lifts_then_the_work_goes_on(project: Path, tmp_path: Path) -> None:
    lifts_at = int(time.time()) + 8  # the API says when: "|<epoch>", as Anthropic's usage limits do
    script = [
        Status(429, f"Quota exceeded for this minute|{lifts_at}"),
        write_file("hello.txt", "hello\n"),
        RawText("Done."),
    ]
    with FakeGemini(*script) as api:
        code, events = pa(users_own_gemini(api, tmp_path), tmp_path, "create hello.txt")
        continued = api.requests[1]
    assert code == 0, events[-1]
    [paused] = of_kind(events, "agent_paused")
    assert "Quota exceeded" in paused["reason"] and paused["until"] == pytest.approx(lifts_at, abs=1)
    assert continued.received_at >= api.requests[0].received_at + 2, "it waited for the quota to lift"
    # The CLI saves no session whose first request failed: a new one is told the task, then to go on.
    assert "The API limit that stopped your last turn has passed" in continued.last_user_text
    assert "create hello.txt" in continued.task_text
    assert (project / "hello.txt").read_text() == "hello\n"
    assert not of_kind(events, "follow_up_sent"), "a pause is not an attempt"
