"""examples/api_*.py run as written, as subprocesses, with the scripted agent as CLAUDE_BIN."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from agentproxy.actors.dispatcher import RunOutcome

import agentproxy

pytestmark = pytest.mark.usefixtures("git_env")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RUN_TIMEOUT_S = 60
WRITE_HELLO = [
    [{"say": "Writing hello.txt."}, {"write": {"path": "hello.txt", "content": "hello\n"}}, {"result": "Done."}]
]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """This test's environment (its agentproxy home, its git), with the scripted agent as the Claude Code command."""
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"turns": WRITE_HELLO}))
    environ = {key: value for key, value in os.environ.items() if not key.startswith("CLAUDECODE")}
    environ["CLAUDE_BIN"] = shlex.join([sys.executable, "-m", "agentproxy.scripted_agent", "--script", str(script)])
    return environ


def example(name: str, *args: str | Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *map(str, args)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def test_api_run_task_prints_each_event_kind_then_the_outcome(env: dict[str, str], tmp_path: Path) -> None:
    done = example("api_run_task.py", tmp_path / "project", "write hello", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "session_started" and "agent_said" in lines and lines[-2] == "session_finished"
    assert lines[-1].startswith("outcome: done (session ")
    assert (tmp_path / "project" / "hello.txt").read_text() == "hello\n"


def test_api_run_task_reports_bad_input_in_one_line(env: dict[str, str], tmp_path: Path) -> None:
    done = example("api_run_task.py", tmp_path / "project", " ", env=env, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: the task is empty" and done.stdout == ""


def test_api_async_runs_two_tasks_at_once(env: dict[str, str], tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    done = example("api_async.py", one, "write hello", two, "write hello too", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for label in ("1", "2"):
        own = [line.removeprefix(f"[{label}] ") for line in lines if line.startswith(f"[{label}] ")]
        assert own[0] == "session_started" and own[-2] == "session_finished", own
        assert own[-1].startswith("outcome: done (session ")
    # Interleaved: the second run had begun before the first one ended.
    assert lines.index("[2] session_started") < lines.index("[1] session_finished")
    assert (one / "hello.txt").exists() and (two / "hello.txt").exists()


def test_api_sessions_lists_the_sessions_and_shows_one(env: dict[str, str], tmp_path: Path) -> None:
    *_, outcome = agentproxy.run_task("write hello", tmp_path / "project", claude_bin=env["CLAUDE_BIN"])
    assert isinstance(outcome, RunOutcome) and outcome.status == "done", outcome
    session_id = outcome.session_id

    listing = example("api_sessions.py", env=env, cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    [line] = listing.stdout.splitlines()
    assert line.split()[:2] == [session_id, "done"] and line.endswith(f"{tmp_path / 'project'}  write hello")

    shown = example("api_sessions.py", session_id[:5], env=env, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[:3] == [f"session {session_id}: done", "task: write hello", f"directory: {tmp_path / 'project'}"]
    kinds = [line.split()[-1] for line in lines[3:]]
    assert kinds[0] == "session_started" and kinds[-1] == "session_finished" and "agent_said" in kinds

    unknown = example("api_sessions.py", "deadbeef", env=env, cwd=tmp_path)
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: unknown session 'deadbeef'")
