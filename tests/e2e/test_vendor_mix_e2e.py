"""Claude Code and Codex in one run: the REAL CLIs against the project's fakes of their APIs.

--best-of 2 across both vendors lands the attempt that passes the checks and discards the other; a
plan whose subtasks the Gemini brain gives to different agents runs them at once and lands both.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentproxy.testing import fake_anthropic, fake_openai
from agentproxy.testing.claude_env import find_claude_bin, isolated_claude_env
from agentproxy.testing.codex_env import find_codex_bin, isolated_codex_env
from agentproxy.testing.fake_gemini import FakeGemini, Json
from agentproxy.testing.projects import git, new_project, of_kind

pytestmark = [
    pytest.mark.claude_cli,
    pytest.mark.codex_cli,
    pytest.mark.timeout(240),
]
GEMINI_KEY = "AIzaSy-e2e-vendor-mix-key-0123456789"
PASSED = {"passed": True, "findings": ["meets the criteria"]}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return new_project(tmp_path / "project")


def pa(
    claude: fake_anthropic.FakeAnthropic,
    codex: fake_openai.FakeOpenAI,
    tmp_path: Path,
    task: str,
    *flags: str,
    env: dict[str, str] | None = None,
) -> tuple[int, list[dict[str, Any]]]:
    """`pa` with both agents aimed at their fakes: its exit code and events."""
    environment = {
        **isolated_claude_env(claude.url, tmp_path / "claude-home"),
        **isolated_codex_env(codex.base_url, tmp_path / "codex-home"),
        "AGENTPROXY_HOME": str(tmp_path / "pa-home"),
        **(env or {}),
    }
    argv = [
        *(sys.executable, "-m", "agentproxy", "-d", str(tmp_path / "project"), "--output", "json"),
        *("--claude-bin", find_claude_bin() or "claude", "--codex-bin", find_codex_bin() or "codex"),
        *("--agents", "claude,codex", *flags, task),
    ]
    done = subprocess.run(argv, env=environment, capture_output=True, text=True, timeout=200)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert events and events[-1]["kind"] == "session_finished", done.stderr[-3000:]
    return done.returncode, events


def session_branches(project: Path) -> list[str]:
    return git(project, "branch", "--list", "agentproxy/*", "--format=%(refname:short)").split()


def test_best_of_two_lands_the_attempt_that_passes_and_discards_the_other(project: Path, tmp_path: Path) -> None:
    claude_script = [fake_anthropic.write_file("answer.txt", "bad\n"), fake_anthropic.Text("Wrote answer.txt.")]
    codex_script = [fake_openai.write_file("answer.txt", "good\n"), fake_openai.Text("Wrote answer.txt.")]
    with fake_anthropic.FakeAnthropic(*claude_script) as claude, fake_openai.FakeOpenAI(*codex_script) as codex:
        code, events = pa(
            claude, codex, tmp_path, "write answer.txt", "--best-of", "2", "--check", "grep -q good answer.txt"
        )
    assert code == 0, events[-1]
    assert (project / "answer.txt").read_text() == "good\n"
    started = {e["subtask_id"]: e["agent"] for e in of_kind(events, "subtask_started") if e["subtask_id"] != "1"}
    assert started == {"1~1": "claude", "1~2": "codex"}
    [chosen] = of_kind(events, "best_of_chosen")
    assert (chosen["subtask_id"], chosen["chosen"], chosen["passed"]) == ("1", "1~2", True)
    verdicts = {a["attempt_id"]: (a["agent"], a["passed"]) for a in chosen["attempts"]}
    assert verdicts == {"1~1": ("claude", False), "1~2": ("codex", True)}
    assert "smallest diff" in chosen["reason"]
    finished = {e["subtask_id"]: e["status"] for e in of_kind(events, "subtask_finished")}
    assert finished == {"1~1": "discarded", "1~2": "done", "1": "done"}
    assert not of_kind(events, "follow_up_sent"), "the failing attempt is discarded, not followed up"
    # The loser's branch and worktree are gone, and so is everything else of the run once it landed.
    assert session_branches(project) == []
    assert git(project, "worktree", "list", "--porcelain").count("worktree ") == 1
    costs = {e["subtask_id"]: e["usage"]["cost_usd"] for e in of_kind(events, "agent_finished")}
    assert set(costs) == {"1~1", "1~2"} and all(cost > 0 for cost in costs.values())
    assert events[-1]["cost_usd"] == pytest.approx(sum(costs.values()))


def test_the_brain_gives_subtasks_to_claude_and_codex_which_run_at_once_and_both_land(
    project: Path, tmp_path: Path
) -> None:
    plan = {
        "subtasks": [
            {"id": "docs", "title": "Docs", "instructions": "write docs.txt", "agent": "claude"},
            {"id": "code", "title": "Code", "instructions": "write code.txt", "agent": "codex"},
        ]
    }
    claude_script = [
        fake_anthropic.Delay(1.0, fake_anthropic.write_file("docs.txt", "docs\n")),
        fake_anthropic.Text("Wrote docs.txt."),
    ]
    codex_script = [
        fake_openai.Delay(1.0, fake_openai.write_file("code.txt", "code\n")),
        fake_openai.Text("Wrote code.txt."),
    ]
    with (
        fake_anthropic.FakeAnthropic(*claude_script) as claude,
        fake_openai.FakeOpenAI(*codex_script) as codex,
        FakeGemini(Json(plan), default=Json(PASSED)) as gemini,
    ):
        env = {"GEMINI_API_KEY": GEMINI_KEY, "GOOGLE_GEMINI_BASE_URL": gemini.url}
        code, events = pa(claude, codex, tmp_path, "write the docs and the code", env=env)
        plan_prompt = gemini.requests[0].text
        overlapped = claude.requests[0].received_at < codex.requests[-1].answered_at
    assert code == 0, events[-1]
    assert "codex" in plan_prompt and "claude" in plan_prompt, "the planner is told which agents it can use"
    agents = {e["subtask_id"]: e["agent"] for e in of_kind(events, "subtask_started")}
    assert agents == {"docs": "claude", "code": "codex"}
    assert {e["subtask_id"]: e["agent"] for e in of_kind(events, "agent_started")} == agents
    assert overlapped, "the two agents worked at once"
    assert (project / "docs.txt").read_text() == "docs\n" and (project / "code.txt").read_text() == "code\n"
    assert session_branches(project) == []


def test_when_no_attempt_passes_the_one_that_broke_the_fewest_checks_gets_the_follow_up(
    project: Path, tmp_path: Path
) -> None:
    (project / "answer.txt").write_text("ok\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "answer")
    claude_script = [fake_anthropic.write_file("answer.txt", "bug1 bug2\n"), fake_anthropic.Text("Done.")]
    codex_script = [
        fake_openai.write_file("answer.txt", "bug1\n"),
        fake_openai.Text("Done."),
        fake_openai.write_file("answer.txt", "fixed\n"),
        fake_openai.Text("Fixed it."),
    ]
    checks = ("--check", "! grep -q bug1 answer.txt", "--check", "! grep -q bug2 answer.txt")
    with fake_anthropic.FakeAnthropic(*claude_script) as claude, fake_openai.FakeOpenAI(*codex_script) as codex:
        code, events = pa(claude, codex, tmp_path, "fix answer.txt", "--best-of", "2", *checks)
        claude_turns = len(claude.requests)
    assert code == 0, events[-1]
    assert (project / "answer.txt").read_text() == "fixed\n"
    [chosen] = of_kind(events, "best_of_chosen")
    assert (chosen["chosen"], chosen["passed"]) == ("1~2", False)
    assert {a["attempt_id"]: a["failing"] for a in chosen["attempts"]} == {"1~1": 2, "1~2": 1}
    assert [e["subtask_id"] for e in of_kind(events, "follow_up_sent")] == ["1~2"]
    assert claude_turns == 2, "the discarded attempt got no follow-up"
    finished = {e["subtask_id"]: e["status"] for e in of_kind(events, "subtask_finished")}
    assert finished == {"1~1": "discarded", "1~2": "done", "1": "done"}
    assert session_branches(project) == []
