"""`pa --agent codex`: pa drives the REAL Codex CLI (`codex exec --json`, resumed by thread id) against the
project's fake of the OpenAI Responses API, with the user's own Codex configuration (CODEX_HOME)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentproxy.testing.codex_env import DEFAULT_MODEL, find_codex_bin, isolated_codex_env
from agentproxy.testing.fake_openai import CapturedRequest, FakeOpenAI, Hang, Shell, Status, Text, write_file
from agentproxy.testing.processes import processes_with
from agentproxy.testing.projects import git, new_project, of_kind

pytestmark = [
    pytest.mark.codex_cli,
    pytest.mark.timeout(180),
]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return new_project(tmp_path / "project")


def pa(api: FakeOpenAI, tmp_path: Path, task: str, *flags: str) -> tuple[int, list[dict[str, Any]]]:
    """`pa --agent codex` to the end, with a private CODEX_HOME aimed at the fake: its exit code and events."""
    env = {**isolated_codex_env(api.base_url, tmp_path / "codex-home"), "AGENTPROXY_HOME": str(tmp_path / "pa-home")}
    argv = [
        *(sys.executable, "-m", "agentproxy", "-d", str(tmp_path / "project"), "--output", "json"),
        *("--agent", "codex", "--codex-bin", find_codex_bin() or "codex", *flags, task),
    ]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=150)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert events and events[-1]["kind"] == "session_finished", done.stderr[-3000:]
    return done.returncode, events


def test_codex_creates_a_file_and_pa_commits_it_with_what_the_turn_cost(project: Path, tmp_path: Path) -> None:
    with FakeOpenAI(write_file("hello.txt", "hello\n"), Text("Created hello.txt.")) as api:
        code, events = pa(api, tmp_path, "create hello.txt saying hello")
    assert code == 0, events[-1]
    assert (project / "hello.txt").read_text() == "hello\n"
    assert "hello.txt" in git(project, "show", "--stat", "--format=%s", "HEAD")
    started = of_kind(events, "agent_started")
    assert [(e["agent"], e["cwd"]) for e in started] == [("codex", str(project))]
    assert started[0]["agent_session_id"] == api.requests[0].thread_id
    assert started[0]["model"] == DEFAULT_MODEL == api.requests[0].body["model"], "the user's Codex configuration"
    assert [e["tool"] for e in of_kind(events, "agent_used_tool")] == ["shell"]
    finished = of_kind(events, "agent_finished")[-1]
    assert finished["result"] == "Created hello.txt." and finished["usage"]["input_tokens"] > 0
    assert finished["usage"]["cost_usd"] > 0 and events[-1]["cost_usd"] == pytest.approx(finished["usage"]["cost_usd"])


def test_a_failing_check_brings_a_follow_up_into_the_same_codex_thread(project: Path, tmp_path: Path) -> None:
    script = [write_file("hello.txt", "draft\n"), Text("Done."), write_file("hello.txt", "final\n"), Text("Fixed.")]
    with FakeOpenAI(*script) as api:
        code, events = pa(api, tmp_path, "write hello.txt", "--check", "grep -q final hello.txt")
    assert code == 0, events[-1]
    assert (project / "hello.txt").read_text() == "final\n"
    assert len(of_kind(events, "follow_up_sent")) == 1
    threads = {request.thread_id for request in api.requests}
    assert len(threads) == 1, "the follow-up resumed the same thread"
    follow_up = api.requests[2]
    assert "grep -q final hello.txt" in follow_up.last_user_text
    assert "write hello.txt" in follow_up.first_user_text, "the resumed thread carries its history"
    costs = [e["usage"]["input_tokens"] for e in of_kind(events, "agent_finished")]
    assert len(costs) == 2 and all(tokens > 0 for tokens in costs)
    # Codex reports the thread's totals: each turn is charged its own part, not the history again.
    assert costs[1] == sum(r.usage["input_tokens"] for r in api.requests[2:])


def test_an_api_error_ends_the_subtask_with_codexs_reason(project: Path, tmp_path: Path) -> None:
    with FakeOpenAI(Status(401, "Incorrect API key provided")) as api:
        code, events = pa(api, tmp_path, "create hello.txt", "--max-attempts", "0")
    assert code == 1
    reason = events[-1]["reason"]
    assert "agent failed" in reason and "401 Unauthorized" in reason and "Incorrect API key provided" in reason
    assert not (project / "hello.txt").exists()


def test_a_hung_codex_is_killed_by_the_watchdog_and_leaves_no_process(project: Path, tmp_path: Path) -> None:
    with FakeOpenAI(Hang()) as api:
        code, events = pa(api, tmp_path, "create hello.txt", "--agent-silence-timeout", "3")
    assert code == 1
    assert "silent for 3s" in events[-1]["reason"], events[-1]["reason"]
    leftovers = processes_with(f"CODEX_HOME={tmp_path / 'codex-home' / '.codex'}")
    assert not leftovers, "the watchdog killed the agent's whole process group"


def test_a_codex_repeating_a_failing_command_is_stopped_and_refocused_in_the_same_thread(
    project: Path, tmp_path: Path
) -> None:
    def reply(request: CapturedRequest) -> Any:
        if "You are repeating yourself" not in request.last_user_text:
            return Shell("false")  # the same failing call, again and again
        return Text("Created hello.txt another way.") if request.tool_outputs else write_file("hello.txt", "hi\n")

    with FakeOpenAI(default=reply) as api:
        code, events = pa(api, tmp_path, "create hello.txt")
        threads = {request.thread_id for request in api.requests}
    assert code == 0, events[-1]
    assert [(e["action"], "false" in e["pattern"]) for e in of_kind(events, "stuck")] == [("refocus", True)]
    assert len(threads) == 1, "the refocus resumed the same thread"
    assert (project / "hello.txt").read_text() == "hi\n"


def test_codex_turns_count_against_the_budget_at_the_users_prices(project: Path, tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text("[codex]\ndefault = { input = 1000.0, output = 1000.0 }\n")  # dear enough to spend it in a turn
    with FakeOpenAI(write_file("hello.txt", "hello\n"), Text("Created hello.txt.")) as api:
        code, events = pa(api, tmp_path, "create hello.txt", "--agent-prices", str(prices), "--max-budget-usd", "0.5")
        tokens = sum(r.usage["input_tokens"] + r.usage["output_tokens"] for r in api.requests if r.usage)
    assert code == 1
    assert events[-1]["status"] == "budget" and "budget" in events[-1]["reason"], events[-1]
    [finished] = of_kind(events, "agent_finished")
    assert finished["usage"]["cost_usd"] == pytest.approx(tokens * 1000.0 / 1e6)
    assert events[-1]["cost_usd"] == pytest.approx(finished["usage"]["cost_usd"]) and events[-1]["cost_usd"] > 0.5
