"""The original README's curl examples, verbatim but for the port, against a live pa-server whose
agent is the REAL Claude Code CLI talking to the Anthropic fake."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from agentproxy.testing.claude_env import find_claude_bin, isolated_claude_env
from agentproxy.testing.fake_anthropic import FakeAnthropic, Text, write_file
from agentproxy.testing.live_server import Server, sse

pytestmark = pytest.mark.claude_cli


def curl(command: str, port: int) -> subprocess.CompletedProcess[str]:
    """One of the README's commands as written there, with its port changed."""
    return subprocess.run(
        command.replace("localhost:8000", f"localhost:{port}"), shell=True, capture_output=True, text=True, timeout=240
    )


START_TASK = """curl -N -X POST http://localhost:8000/task \\
  -H "Content-Type: application/json" \\
  -d '{"task": "Create hello.py", "working_dir": "./sandbox"}'"""
WITH_SCREENSHOT = """curl -N -X POST http://localhost:8000/task \\
  -H "Content-Type: application/json" \\
  -d '{"task": "Match this UI", "screenshots": [{"path": "/path/to/design.png"}]}'"""
HEALTH = "curl http://localhost:8000/health"
SESSIONS = "curl http://localhost:8000/sessions"


def test_the_original_readmes_curl_examples_run_as_written(tmp_path: Path, server_with: Callable[..., Server]) -> None:
    with FakeAnthropic(write_file("hello.py", "print('hello')\n"), Text("Created hello.py.")) as api:
        server = server_with(find_claude_bin() or "claude", env=isolated_claude_env(api.url, tmp_path / "claude-home"))
        port = int(server.url.rsplit(":", 1)[1])
        started = curl(START_TASK, port)
        shown = curl(WITH_SCREENSHOT, port)
        health, listed = curl(HEALTH, port), curl(SESSIONS, port)
    messages = list(sse(iter(started.stdout.splitlines())))
    assert messages[0]["event"] == "session" and messages[-1]["event"] == "done", started.stdout[-2000:]
    session_id = json.loads(messages[0]["data"])["session_id"]
    assert json.loads(messages[-1]["data"])["status"] == "done"
    assert all(json.loads(m["data"])["kind"] == m["event"] for m in messages[1:-1])
    assert (server.root / "sandbox" / "hello.py").read_text() == "print('hello')\n"
    # The screenshot lies outside the directory pa-server serves: refused, with the reason, as JSON.
    refusal = json.loads(shown.stdout)
    assert refusal["status_code"] == 403 and "/path/to/design.png" in refusal["detail"]
    assert json.loads(health.stdout) == {"status": "healthy", "active_sessions": 0}
    sessions = json.loads(listed.stdout)["sessions"]
    assert [s["id"] for s in sessions] == [session_id] and sessions[0]["status"] == "done"
