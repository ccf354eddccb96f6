"""`pa --best-of N` with the scripted agent (Claude Code's wire protocol, no model): the race's rules on the
path a user takes, without the npm CLIs. Mixed vendors are in tests/e2e/test_vendor_mix_e2e.py."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PA = Path(sys.executable).with_name("pa")
RUN_TIMEOUT_S = 120
GIT = ("git", "-c", "user.name=t", "-c", "user.email=t@example.com")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    directory = tmp_path / "project"
    directory.mkdir()
    subprocess.run([*GIT, "init", "-q", "-b", "main"], cwd=directory, check=True, timeout=30)
    (directory / "README.md").write_text("# project\n")
    subprocess.run([*GIT, "add", "-A"], cwd=directory, check=True, timeout=30)
    subprocess.run([*GIT, "commit", "-q", "-m", "start"], cwd=directory, check=True, timeout=30)
    return directory


def run_pa(tmp_path: Path, agentproxy_home: Path, turns: list[list[dict[str, Any]]], *flags: str) -> tuple[int, list]:
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"turns": turns}))
    agent = shlex.join([sys.executable, "-m", "agentproxy.scripted_agent", "--script", str(script)])
    env = {k: v for k, v in os.environ.items() if k != "CLAUDE_BIN"} | {"AGENTPROXY_HOME": str(agentproxy_home)}
    argv = [str(PA), "-d", str(tmp_path / "project"), "--claude-bin", agent, "--output", "json", *flags, "write hello"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert events and events[-1]["kind"] == "session_finished", done.stderr[-2000:]
    return done.returncode, events


def of_kind(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [event for event in events if event["kind"] == kind]


def git_out(project: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=project, capture_output=True, text=True, check=True, timeout=30).stdout


def test_of_equal_attempts_that_pass_the_first_to_pass_lands_and_the_others_are_gone(
    project: Path, tmp_path: Path, agentproxy_home: Path
) -> None:
    turns = [[{"write": {"path": "hello.txt", "content": "hello\n"}}, {"result": "Wrote hello.txt."}]]
    code, events = run_pa(tmp_path, agentproxy_home, turns, "--best-of", "3")
    assert code == 0, events[-1]
    assert (project / "hello.txt").read_text() == "hello\n"
    [chosen] = of_kind(events, "best_of_chosen")
    reviewed = [e["subtask_id"] for e in of_kind(events, "reviewed")]
    assert chosen["chosen"] == reviewed[0], "equal diffs: the first to pass"
    assert [a["diff_lines"] for a in chosen["attempts"]] == [1, 1, 1]
    assert all(a["passed"] and a["agent"] == "claude" for a in chosen["attempts"])
    statuses = {e["subtask_id"]: e["status"] for e in of_kind(events, "subtask_finished")}
    losers = {f"1~{n}" for n in (1, 2, 3)} - {chosen["chosen"]}
    assert statuses == {**dict.fromkeys(losers, "discarded"), chosen["chosen"]: "done", "1": "done"}
    assert {e["subtask_id"] for e in of_kind(events, "worktree_removed")} >= losers
    assert git_out(project, "branch", "--list", "agentproxy/*").strip() == ""
    assert git_out(project, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert len(of_kind(events, "agent_finished")) == 3, "every attempt's turn is in the ledger"


def test_when_every_attempt_fails_the_subtask_fails_and_their_worktrees_are_kept(
    project: Path, tmp_path: Path, agentproxy_home: Path
) -> None:
    code, events = run_pa(tmp_path, agentproxy_home, [[{"exit": 3}]], "--best-of", "2")
    assert code == 1
    assert "every attempt failed" in events[-1]["reason"], events[-1]["reason"]
    statuses = {e["subtask_id"]: e["status"] for e in of_kind(events, "subtask_finished")}
    assert statuses == {"1~1": "failed", "1~2": "failed", "1": "failed"}
    assert not of_kind(events, "best_of_chosen")
    kept = [e["text"] for e in of_kind(events, "notice") if "worktrees kept" in e["text"]]
    assert kept and "1-1" in kept[0] and "1-2" in kept[0], "failed work is kept for inspection"
