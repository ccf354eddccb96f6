"""Secrets stay secret, with the REAL Claude Code CLI against the fake Anthropic API.

The supervisor's key never reaches the agent, a check or a hook; secrets a check prints are stored,
shown and logged as [redacted]; secret-looking files are never committed; the user's pre-commit
hook decides whether agentproxy's commit happens.
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest

from agentproxy import config
from agentproxy.messages import ChecksRan, Event, Notice, to_json
from agentproxy.runtime import run_task
from agentproxy.store import SessionStore
from agentproxy.testing.claude_env import (
    fake_api_options,
    find_claude_bin,
    isolated_claude_env,
    pa_argv,
)
from agentproxy.testing.fake_anthropic import FakeAnthropic, Text, ToolUse, write_file
from agentproxy.view import JsonView, TextView

CLAUDE_BIN = find_claude_bin() or "claude"
GEMINI_KEY = "AIzaSy-supervisor-gemini-key-0001"
GOOGLE_KEY = "AIzaSy-supervisor-google-key-0002"
SERVICE_TOKEN = "svc-token-of-the-user-0003"
DOTENV_PASSWORD = "dotenv-password-0004"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    directory = tmp_path / "project"
    directory.mkdir()
    return directory


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_the_agent_and_the_checks_never_see_the_supervisors_key_and_secrets_are_redacted(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
    monkeypatch.setenv("GOOGLE_API_KEY", GOOGLE_KEY)
    monkeypatch.setenv("MY_SERVICE_TOKEN", SERVICE_TOKEN)
    (project / ".env").write_text(f"DB_PASSWORD={DOTENV_PASSWORD}\n")
    (project / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    check = "printenv; cat .env"
    text_out, json_out = io.StringIO(), io.StringIO()
    events: list[Event] = []
    with FakeAnthropic(
        ToolUse("Bash", {"command": "printenv > env.txt && echo 'k' > deploy.pem"}),
        Text(f"Saved it; MY_SERVICE_TOKEN is {SERVICE_TOKEN}."),
    ) as api:
        options = fake_api_options(api.url, project, tmp_path / "claude-home", checks=(check,))
        assert options.agent_env is not None and options.agent_env["GEMINI_API_KEY"] == GEMINI_KEY  # the copy has it
        outcome = run_task(
            "Save the environment to env.txt",
            options,
            subscribers=[events.append, TextView(text_out), JsonView(json_out)],
            timeout_s=180,
        )

    assert outcome.status == "done", outcome.reason
    agent_saw = (project / "env.txt").read_text()
    assert "ANTHROPIC_BASE_URL=" in agent_saw  # the agent's own settings pass
    assert "GEMINI_API_KEY" not in agent_saw and "GOOGLE_API_KEY" not in agent_saw
    assert GEMINI_KEY not in agent_saw and GOOGLE_KEY not in agent_saw

    [checks] = [e for e in events if isinstance(e, ChecksRan)]
    check_output = checks.results[0].output_tail
    assert "GEMINI_API_KEY" not in check_output and "GOOGLE_API_KEY" not in check_output
    assert "MY_SERVICE_TOKEN=[redacted]" in check_output and "DB_PASSWORD=[redacted]" in check_output

    secrets = (GEMINI_KEY, GOOGLE_KEY, SERVICE_TOKEN, DOTENV_PASSWORD)
    with SessionStore(config.store_path()) as store:
        stored = [to_json(e).decode() for e in store.events(outcome.session_id)]
    for shown in ("\n".join(stored), text_out.getvalue(), json_out.getvalue()):
        assert "[redacted]" in shown
        assert not [secret for secret in secrets if secret in shown]
    raw_store = b"".join(p.read_bytes() for p in config.store_path().parent.glob("sessions.db*"))
    assert not [secret for secret in secrets if secret.encode() in raw_store]

    committed = git(project, "ls-tree", "-r", "--name-only", "HEAD").split()
    assert "env.txt" in committed
    assert not {".env", "id_rsa", "deploy.pem"} & set(committed)
    warnings = [e.text for e in events if isinstance(e, Notice) and e.level == "warning"]
    assert any(".env" in w and "id_rsa" in w for w in warnings), warnings  # the baseline's
    assert any("deploy.pem" in w for w in warnings), warnings  # the final commit's
    assert "not committed, as they look like secrets" in text_out.getvalue()


def pa(
    project: Path, tmp_path: Path, agentproxy_home: Path, api: FakeAnthropic, *extra: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **isolated_claude_env(api.url, tmp_path / "claude-home"),
        "AGENTPROXY_HOME": str(agentproxy_home),
        "AGENTPROXY_LOG_LEVEL": "DEBUG",
        "MY_SERVICE_TOKEN": SERVICE_TOKEN,
    }
    return subprocess.run(
        pa_argv(project, "Create hello.txt containing hi", *extra, output="text"),
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def user_repo_with_hook(project: Path, tmp_path: Path, hook: str) -> str:
    git(project, "init", "-q")
    git(project, "config", "user.name", "Ada")
    git(project, "config", "user.email", "ada@example.com")
    (project / "README.md").write_text("readme\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "initial")
    hook_file = project / ".git" / "hooks" / "pre-commit"
    hook_file.write_text(f"#!/bin/sh\ndate >> '{tmp_path}/hook-ran'\n{hook}")
    hook_file.chmod(0o755)
    return git(project, "rev-parse", "HEAD").strip()


def test_a_failing_pre_commit_hook_fails_the_run_and_leaves_the_work_uncommitted(
    project: Path, tmp_path: Path, agentproxy_home: Path
) -> None:
    initial = user_repo_with_hook(project, tmp_path, 'echo "lint failed: $MY_SERVICE_TOKEN" >&2\nexit 1\n')
    with FakeAnthropic(write_file("hello.txt", "hi\n"), Text("Created hello.txt.")) as api:
        done = pa(project, tmp_path, agentproxy_home, api, "--check", "echo $MY_SERVICE_TOKEN")

    assert done.returncode == 1, done.stderr
    assert (tmp_path / "hook-ran").is_file()
    assert git(project, "rev-parse", "HEAD").strip() == initial  # nothing committed
    assert (project / "hello.txt").read_text() == "hi\n"  # the work is left for inspection
    assert "hello.txt" in git(project, "status", "--porcelain")
    assert (
        "■ failed: the work is done but could not be committed: the commit was refused by a git hook (pre-commit)"
        in done.stdout
    )
    assert "lint failed: [redacted]" in done.stdout and "changes left uncommitted" in done.stdout
    log_file = agentproxy_home / "data" / config.LOG_FILE
    for shown in (done.stdout, done.stderr, log_file.read_text()):
        assert SERVICE_TOKEN not in shown


def test_a_passing_pre_commit_hook_lets_the_commit_happen(project: Path, tmp_path: Path, agentproxy_home: Path) -> None:
    initial = user_repo_with_hook(project, tmp_path, "exit 0\n")
    with FakeAnthropic(write_file("hello.txt", "hi\n"), Text("Created hello.txt.")) as api:
        done = pa(project, tmp_path, agentproxy_home, api, "--output", "json")

    assert done.returncode == 0, done.stderr
    assert (tmp_path / "hook-ran").is_file()
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events[-1]["kind"] == "session_finished" and events[-1]["status"] == "done"
    assert git(project, "log", "--format=%s", f"{initial}..HEAD").splitlines() == [
        "agentproxy: Create hello.txt containing hi"
    ]
    assert git(project, "status", "--porcelain") == ""
