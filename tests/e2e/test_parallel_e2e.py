"""Several agents at once: `pa` drives REAL Claude Code CLIs against the fake API, one scripted
conversation per subtask, each agent in its own git worktree; the verified work is merged and lands
on the user's branch, or stays on the run's integration branch when part of it failed."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentproxy.testing.claude_env import isolated_claude_env, pa_argv
from agentproxy.testing.fake_anthropic import (
    CapturedRequest,
    Delay,
    Error,
    FakeAnthropic,
    Text,
    ToolUse,
    write_file,
)
from agentproxy.testing.fake_gemini import FakeGemini, Json
from agentproxy.testing.projects import git, new_project, of_kind

GEMINI_KEY = "AIzaSy-e2e-parallel-key-0123456789"
RESOLVE_KEY = "A git merge in this directory stopped on conflicts"
FIX_KEY = "the review of the whole against the task found problems"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return new_project(tmp_path / "project")


def pa_env(api: FakeAnthropic, tmp_path: Path) -> dict[str, str]:
    return {
        **isolated_claude_env(api.url, tmp_path / "claude-home"),
        "AGENTPROXY_HOME": str(tmp_path / "agentproxy-home"),
    }


def pa(
    api: FakeAnthropic, tmp_path: Path, task: str, *flags: str, env: dict[str, str] | None = None
) -> tuple[int, list[dict[str, Any]], str]:
    """Run `pa` to the end; its exit code, its events and its stderr. An empty task: `pa -s ID` (in flags)."""
    argv = pa_argv(tmp_path / "project", task, *flags)
    done = subprocess.run(
        argv if task else argv[:-1],
        env={**pa_env(api, tmp_path), **(env or {})},
        capture_output=True,
        text=True,
        timeout=240,
    )
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert events and events[-1]["kind"] == "session_finished", done.stderr[-3000:]
    return done.returncode, events, done.stderr


def finished(events: list[dict[str, Any]]) -> dict[str, str]:
    return {event["subtask_id"]: event["status"] for event in of_kind(events, "subtask_finished")}


def session_branches(project: Path) -> list[str]:
    return git(project, "branch", "--list", "agentproxy/*", "--format=%(refname:short)").split()


def worktrees(project: Path) -> list[str]:
    return [
        line for line in git(project, "worktree", "list", "--porcelain").splitlines() if line.startswith("worktree ")
    ]


def wait_until(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def part(number: int, total: int, title: str) -> str:
    """What only that subtask's agent is told (every prompt holds the overall task): its conversation's key."""
    return f"Your part ({number} of {total}): {title}"


def writes(name: str, content: str, delay_s: float = 0.0) -> list[Any]:
    """An agent that writes one file (after a delay) and says it is done."""
    first = write_file(name, content)
    return [Delay(delay_s, first) if delay_s else first, Text(f"Wrote {name}.")]


def test_three_independent_subtasks_run_at_once_and_land_on_the_users_branch(project: Path, tmp_path: Path) -> None:
    names = ("alpha", "beta", "gamma")
    conversations = {
        part(i, 3, f"write {n}.txt"): writes(f"{n}.txt", f"{n}\n", delay_s=2.0) for i, n in enumerate(names, 1)
    }
    start = git(project, "rev-parse", "HEAD")
    with FakeAnthropic(conversations=conversations) as api:
        code, events, stderr = pa(api, tmp_path, "Add three files:\n" + "".join(f"- write {n}.txt\n" for n in names))
        delayed = [api.turns(key)[0] for key in conversations]
    assert code == 0, stderr[-2000:]
    assert all(a.overlaps(b) for a in delayed for b in delayed if a is not b)  # the three turns ran at once
    assert finished(events) == {"1": "done", "2": "done", "3": "done"}
    for name in names:
        assert (project / f"{name}.txt").read_text() == f"{name}\n"
    assert git(project, "merge-base", "--is-ancestor", start, "HEAD") == ""  # fast-forwarded onto main
    assert git(project, "status", "--porcelain") == ""
    assert session_branches(project) == [] and len(worktrees(project)) == 1  # nothing left behind
    landed = of_kind(events, "landed")
    assert [(e["how"], e["branch"]) for e in landed] == [("fast-forward", "main")]
    created = of_kind(events, "worktree_created")
    assert {e["subtask_id"] for e in created} == {"result", "1", "2", "3"}
    assert all(not Path(e["path"]).is_relative_to(project) for e in created)  # never inside the user's tree


def test_a_chain_runs_in_order_and_the_second_sees_the_firsts_files(project: Path, tmp_path: Path) -> None:
    def second(request: CapturedRequest) -> ToolUse:
        seen = "saw first" if (Path(request.cwd) / "first.txt").exists() else "no first"
        return write_file("second.txt", f"{seen}\n")

    conversations = {
        part(1, 2, "write first.txt"): writes("first.txt", "1\n"),
        part(2, 2, "write second.txt"): [second, Text("Wrote second.txt.")],
    }
    with FakeAnthropic(conversations=conversations) as api:
        code, events, stderr = pa(api, tmp_path, "1. write first.txt\n2. write second.txt")
    assert code == 0, stderr[-2000:]
    assert (project / "second.txt").read_text() == "saw first\n"
    started = [e["subtask_id"] for e in of_kind(events, "subtask_started")]
    assert started.index("2") > started.index("1")
    assert session_branches(project) == []


def test_two_subtasks_editing_the_same_lines_are_merged_by_a_resolving_agent(project: Path, tmp_path: Path) -> None:
    (project / "greeting.txt").write_text("hello\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "greeting")
    conversations = {  # the resolver's prompt holds the overall task too: its key is tried first
        RESOLVE_KEY: [write_file("greeting.txt", "hello, world\nbonjour le monde\n"), Text("Resolved.")],
        part(1, 2, "greet in english"): writes("greeting.txt", "hello, world\n", delay_s=1.0),
        part(2, 2, "greet in french"): writes("greeting.txt", "bonjour le monde\n", delay_s=1.0),
    }
    no_markers = "! grep -q '^<<<<<<<' greeting.txt"
    with FakeAnthropic(conversations=conversations) as api:
        code, events, stderr = pa(api, tmp_path, "Greet:\n- greet in english\n- greet in french", "--check", no_markers)
        resolver_prompt = api.turns(RESOLVE_KEY)[0].first_user_text
    assert code == 0, stderr[-2000:]
    assert (project / "greeting.txt").read_text() == "hello, world\nbonjour le monde\n"
    conflicted = of_kind(events, "merge_conflicted")
    assert len(conflicted) == 1 and conflicted[0]["files"] == ["greeting.txt"]
    assert "greet in english" in resolver_prompt and "greet in french" in resolver_prompt  # both intents
    assert "greeting.txt" in resolver_prompt
    assert {e["subtask_id"] for e in of_kind(events, "merged")} == {"1", "2"}
    final_checks = [e for e in of_kind(events, "checks_ran") if e["subtask_id"] == "final"]
    assert final_checks and [v["kind"] for v in final_checks[-1]["verdicts"]] == ["passed"]
    assert session_branches(project) == [] and len(worktrees(project)) == 1


def test_a_failed_subtask_blocks_its_dependents_while_independent_work_is_kept(project: Path, tmp_path: Path) -> None:
    plan = {
        "subtasks": [
            {"id": "good", "title": "Good", "instructions": "write good.txt"},
            {"id": "bad", "title": "Bad", "instructions": "write bad.txt"},
            {"id": "after", "title": "After bad", "instructions": "write after.txt", "depends_on": ["bad"]},
        ]
    }
    conversations = {
        part(1, 3, "Good"): writes("good.txt", "good\n"),
        part(2, 3, "Bad"): [Text("Done, all good."), Text("Done, really.")],  # claims work it never did
    }
    start = git(project, "rev-parse", "HEAD")
    with FakeAnthropic(conversations=conversations) as api, FakeGemini(Json(plan), default=Json(PASSED)) as gemini:
        env = {"GEMINI_API_KEY": GEMINI_KEY, "GOOGLE_GEMINI_BASE_URL": gemini.url}
        code, events, _ = pa(api, tmp_path, "Write the files", env=env)
        assert not [r for r in api.requests if "After bad" in r.first_user_text]  # its agent never started
    assert code == 1
    assert finished(events) == {"good": "done", "bad": "failed", "after": "blocked"}, of_kind(
        events, "subtask_finished"
    )
    assert git(project, "rev-parse", "HEAD") == start and not (project / "good.txt").exists()  # untouched
    session = events[0]["session_id"]
    result = f"agentproxy/{session}/result"
    assert git(project, "show", f"{result}:good.txt") == "good"  # the verified part is kept
    kept = [e["text"] for e in of_kind(events, "notice") if "worktrees kept" in e["text"]]
    assert kept and "bad" in kept[0]
    assert set(session_branches(project)) == {result, f"agentproxy/{session}/bad"}


PASSED = {"passed": True, "findings": ["meets the criteria"]}


def test_the_budget_stops_the_run_and_interrupts_the_agents_still_running(project: Path, tmp_path: Path) -> None:
    conversations = {
        part(1, 2, "write fast.txt"): writes("fast.txt", "fast\n"),
        part(2, 2, "write slow.txt"): writes("slow.txt", "slow\n", delay_s=30.0),
    }
    start = git(project, "rev-parse", "HEAD")
    with FakeAnthropic(conversations=conversations) as api:
        code, events, stderr = pa(
            api, tmp_path, "Files:\n- write fast.txt\n- write slow.txt", "--max-budget-usd", "0.01"
        )
    assert code == 1, stderr[-2000:]
    ended = events[-1]
    assert ended["status"] == "budget" and "--max-budget-usd" in ended["reason"]
    assert ended["duration_s"] < 25  # the slow agent was not waited for
    interrupted = [e["text"] for e in of_kind(events, "notice") if e["text"].startswith("interrupting the agent")]
    assert interrupted and "of 2" in interrupted[0]
    assert not of_kind(events, "follow_up_sent") and not of_kind(events, "reviewed")  # no new turn, no review
    assert git(project, "rev-parse", "HEAD") == start


def test_a_rate_limited_agent_pauses_while_another_finishes(project: Path, tmp_path: Path) -> None:
    resets = int(time.time()) + 5
    conversations = {
        part(1, 2, "write limited.txt"): [
            Error(429, "rate_limit_error", f"Rate limited, resets|{resets}"),
            *writes("limited.txt", "limited\n"),
        ],
        part(2, 2, "write free.txt"): writes("free.txt", "free\n", delay_s=1.0),
    }
    with FakeAnthropic(conversations=conversations) as api:
        code, events, stderr = pa(api, tmp_path, "Files:\n- write limited.txt\n- write free.txt")
    assert code == 0, stderr[-2000:]
    paused = of_kind(events, "agent_paused")
    assert [p["subtask_id"] for p in paused] == ["1"]
    free_done = next(e for e in of_kind(events, "subtask_finished") if e["subtask_id"] == "2")
    assert paused[0]["at"] < free_done["at"] < paused[0]["until"]  # the other agent finished during the pause
    assert (project / "limited.txt").exists() and (project / "free.txt").exists()


def test_kill_9_mid_run_then_resume_redoes_nothing_and_merges_once(project: Path, tmp_path: Path) -> None:
    conversations = {
        part(1, 3, "write one.txt"): writes("one.txt", "1\n"),
        # Their first turn hangs until pa is killed; resumed, the same agent sessions write their files.
        part(2, 3, "write two.txt"): [Delay(120, Text("never")), *writes("two.txt", "2\n")],
        part(3, 3, "write three.txt"): [Delay(120, Text("never")), *writes("three.txt", "3\n")],
    }
    task = "Files:\n- write one.txt\n- write two.txt\n- write three.txt"
    with FakeAnthropic(conversations=conversations) as api:
        first = subprocess.Popen(pa_argv(project, task), env=pa_env(api, tmp_path), stdout=subprocess.PIPE, text=True)
        assert first.stdout is not None
        session = ""
        for line in first.stdout:
            event = json.loads(line)
            session = session or event["session_id"]
            if event["kind"] == "merged" and event["subtask_id"] == "1":
                break
        hanging = [key for key in conversations if "one.txt" not in key]
        wait_until(lambda: all(api.turns(key) for key in hanging))  # both agents are inside their first turn
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        code, events, stderr = pa(api, tmp_path, "", "-s", session)
        turns = {key: len(api.turns(key)) for key in conversations}
    assert code == 0, (stderr[-3000:], events[-1])
    assert turns[part(1, 3, "write one.txt")] == 2  # the finished subtask was not redone
    assert {e["subtask_id"] for e in of_kind(events, "merged")} == {"2", "3"}  # subtask 1 is not merged again
    log = git(project, "log", "--format=%s")
    assert [log.count(f"agentproxy: merge {n}:") for n in ("1", "2", "3")] == [1, 1, 1]
    for name, content in (("one", "1"), ("two", "2"), ("three", "3")):
        assert (project / f"{name}.txt").read_text() == f"{content}\n"
    assert session_branches(project) == []


def test_a_result_stays_on_its_branch_when_you_changed_your_tree_during_the_run(project: Path, tmp_path: Path) -> None:
    def edit_users_tree_then_write(request: CapturedRequest) -> ToolUse:
        (project / "README.md").write_text("# project\n\nedited by you during the run\n")
        return write_file("two.txt", "2\n")

    conversations = {
        part(1, 2, "write one.txt"): writes("one.txt", "1\n"),
        part(2, 2, "write two.txt"): [edit_users_tree_then_write, Text("Wrote two.txt.")],
    }
    start = git(project, "rev-parse", "HEAD")
    with FakeAnthropic(conversations=conversations) as api:
        code, events, stderr = pa(api, tmp_path, "Files:\n- write one.txt\n- write two.txt")
    assert code == 0, stderr[-2000:]
    result = f"agentproxy/{events[0]['session_id']}/result"
    assert [(e["how"], e["command"]) for e in of_kind(events, "landed")] == [("kept", f"git merge {result}")]
    assert git(project, "rev-parse", "HEAD") == start and not (project / "one.txt").exists()
    assert "edited by you" in (project / "README.md").read_text()  # your change is yours
    assert session_branches(project) == [result] and len(worktrees(project)) == 1
    git(project, "commit", "-qam", "my edit")
    git(project, "merge", "-q", "--no-edit", result)  # the printed command merges it
    assert (project / "one.txt").exists() and (project / "two.txt").exists()


def test_discard_removes_a_sessions_kept_worktrees_and_branches(project: Path, tmp_path: Path) -> None:
    conversations = {
        part(1, 2, "write good.txt"): writes("good.txt", "good\n"),
        part(2, 2, "write bad.txt"): [Text("Done."), Text("Done, really.")],  # claims work it never did
    }
    with FakeAnthropic(conversations=conversations) as api:
        code, events, _ = pa(api, tmp_path, "Files:\n- write good.txt\n- write bad.txt")
        session = events[0]["session_id"]
        assert code == 1 and session_branches(project)
        kept = [Path(e["path"]) for e in of_kind(events, "worktree_created") if e["subtask_id"] == "2"]
        assert kept and kept[0].is_dir()
        discarded = subprocess.run(
            pa_argv(project, "", "-s", session, "--discard")[:-1],
            env={**os.environ, "AGENTPROXY_HOME": str(tmp_path / "agentproxy-home")},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert discarded.returncode == 0, discarded.stderr
    assert "discarded" in discarded.stdout
    assert session_branches(project) == [] and len(worktrees(project)) == 1 and not kept[0].exists()


def test_your_branch_moved_with_a_conflicting_commit_is_merged_by_an_agent_before_landing(
    project: Path, tmp_path: Path
) -> None:
    def commit_on_main_then_write(request: CapturedRequest) -> ToolUse:
        (project / "README.md").write_text("# project, by you\n")
        git(project, "commit", "-qam", "your commit during the run")
        return write_file("README.md", "# project, by the agent\n")

    conversations = {
        RESOLVE_KEY: [write_file("README.md", "# project, by you and the agent\n"), Text("Resolved.")],
        part(1, 2, "rewrite the readme"): [commit_on_main_then_write, Text("Rewrote it.")],
        part(2, 2, "write notes.txt"): writes("notes.txt", "notes\n"),
    }
    with FakeAnthropic(conversations=conversations) as api:
        code, events, stderr = pa(api, tmp_path, "Docs:\n- rewrite the readme\n- write notes.txt")
        resolver_prompt = api.turns(RESOLVE_KEY)[0].first_user_text
    assert code == 0, stderr[-2000:]
    assert [e["subtask_id"] for e in of_kind(events, "merge_conflicted")] == ["result"]
    assert "new commits on your branch" in resolver_prompt and "README.md" in resolver_prompt
    assert [e["how"] for e in of_kind(events, "landed")] == ["merge"]
    assert (project / "README.md").read_text() == "# project, by you and the agent\n"
    assert "your commit during the run" in git(project, "log", "--format=%s")  # your commit stays in the history
    assert (project / "notes.txt").exists() and session_branches(project) == []


def test_a_failed_review_of_the_whole_becomes_a_fix_in_the_integration_worktree(project: Path, tmp_path: Path) -> None:
    plan = {
        "subtasks": [
            {"id": "1", "title": "A", "instructions": "write a.txt"},
            {"id": "2", "title": "B", "instructions": "write b.txt"},
        ]
    }
    whole_fails = {
        "passed": False,
        "findings": ["a.txt and b.txt are not listed in index.txt"],
        "follow_up": "Write index.txt listing a.txt and b.txt.",
    }
    conversations = {
        FIX_KEY: writes("index.txt", "a.txt\nb.txt\n"),
        part(1, 2, "A"): writes("a.txt", "a\n"),
        part(2, 2, "B"): writes("b.txt", "b\n"),
    }
    gemini_replies = [Json(plan), Json(PASSED), Json(PASSED), Json(whole_fails), Json(PASSED), Json(PASSED)]
    with FakeAnthropic(conversations=conversations) as api, FakeGemini(*gemini_replies) as gemini:
        env = {"GEMINI_API_KEY": GEMINI_KEY, "GOOGLE_GEMINI_BASE_URL": gemini.url}
        code, events, stderr = pa(api, tmp_path, "Write a.txt and b.txt, and an index", env=env)
        fix_prompt = api.turns(FIX_KEY)[0].first_user_text
    assert code == 0, stderr[-2000:]
    assert "index.txt" in fix_prompt and "not listed in index.txt" in fix_prompt
    reviewed = [(e["subtask_id"], e["verdict"].get("passed", False)) for e in of_kind(events, "reviewed")]
    assert reviewed[-3:] == [("final", False), ("fix-1", True), ("final", True)]
    assert (project / "index.txt").read_text() == "a.txt\nb.txt\n"
    assert session_branches(project) == []


def test_a_worktree_gets_the_ignored_files_worktreeinclude_names(project: Path, tmp_path: Path) -> None:
    (project / ".gitignore").write_text("local.cfg\n.env\nvendor/\n")
    (project / ".worktreeinclude").write_text("local.cfg\nlink:vendor\n.env*\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "ignore local files")
    (project / "local.cfg").write_text("debug = true\n")
    (project / ".env").write_text("API_TOKEN=not-for-agents\n")
    (project / "vendor").mkdir()
    (project / "vendor" / "lib.txt").write_text("vendored\n")

    def report_what_is_here(request: CapturedRequest) -> ToolUse:
        here = Path(request.cwd)
        seen = {
            "local.cfg": (here / "local.cfg").is_file(),
            "vendor linked": (here / "vendor").is_symlink(),
            ".env": (here / ".env").exists(),
        }
        return write_file("seen.txt", json.dumps(seen, sort_keys=True) + "\n")

    conversations = {
        part(1, 2, "report what is here"): [report_what_is_here, Text("Reported.")],
        part(2, 2, "write other.txt"): writes("other.txt", "other\n"),
    }
    with FakeAnthropic(conversations=conversations) as api:
        code, events, stderr = pa(api, tmp_path, "Look:\n- report what is here\n- write other.txt")
    assert code == 0, stderr[-2000:]
    shown = [e["text"] for e in of_kind(events, "notice") if "from .worktreeinclude" in e["text"]]
    assert len(shown) == 3 and all("local.cfg (copied)" in t and "vendor (linked)" in t for t in shown)  # and result
    seen = json.loads((project / "seen.txt").read_text())
    assert seen == {".env": False, "local.cfg": True, "vendor linked": True}  # a secret only when named exactly
    assert "vendor" not in git(project, "ls-files")  # the link is not committed


def test_resuming_a_partly_failed_run_does_the_rest_and_lands_everything(project: Path, tmp_path: Path) -> None:
    conversations = {
        part(1, 3, "write good.txt"): writes("good.txt", "good\n"),
        # Claims work it never did, twice (the subtask fails); resumed, it does the work.
        part(2, 3, "write late.txt"): [Text("Done."), Text("Done, really."), *writes("late.txt", "late\n")],
        part(3, 3, "write after.txt"): writes("after.txt", "after\n"),
    }
    task = "1. write good.txt\n2. write late.txt\n3. write after.txt"
    with FakeAnthropic(conversations=conversations) as api:
        code, events, _ = pa(api, tmp_path, task)
        session = events[0]["session_id"]
        assert code == 1 and finished(events) == {"1": "done", "2": "failed", "3": "blocked"}
        code, resumed, stderr = pa(api, tmp_path, "", "-s", session)
        first_turns = len(api.turns(part(1, 3, "write good.txt")))
    assert code == 0, (stderr[-2000:], resumed[-1:])
    assert first_turns == 2  # the verified subtask was not redone
    assert [e["subtask_id"] for e in of_kind(resumed, "subtask_started")] == ["2", "3"]
    for name in ("good", "late", "after"):
        assert (project / f"{name}.txt").read_text() == f"{name}\n"
    assert session_branches(project) == []


@pytest.mark.parametrize("check_parallel", [1, 2])
def test_checks_of_different_subtasks_run_at_once_up_to_check_parallel(
    project: Path, tmp_path: Path, check_parallel: int
) -> None:
    log = tmp_path / "checks.log"
    check = tmp_path / "check.sh"
    check.write_text(f"echo start >> {log}\nsleep 1.5\necho end >> {log}\n")
    conversations = {
        part(1, 2, "write one.txt"): writes("one.txt", "1\n"),
        part(2, 2, "write two.txt"): writes("two.txt", "2\n"),
    }
    with FakeAnthropic(conversations=conversations) as api:
        code, _, stderr = pa(
            api, tmp_path, "Files:\n- write one.txt\n- write two.txt",
            "--check", f"sh {check}", "--check-parallel", str(check_parallel),
        )  # fmt: skip
    assert code == 0, stderr[-2000:]
    marks = log.read_text().split()
    overlapped = any(a == b == "start" for a, b in itertools.pairwise(marks))
    assert overlapped == (check_parallel > 1), marks


def test_an_agent_session_that_cannot_be_resumed_gives_way_to_a_new_one(project: Path, tmp_path: Path) -> None:
    conversations = {
        # Claims work it never did, twice (the run fails); resumed later, it does the work.
        "write late.txt": [Text("Done."), Text("Done, really."), *writes("late.txt", "late\n")],
    }
    with FakeAnthropic(conversations=conversations) as api:
        code, events, _ = pa(api, tmp_path, "write late.txt")
        assert code == 1
        transcripts = list((tmp_path / "claude-home").rglob("*.jsonl"))
        assert transcripts
        for transcript in transcripts:  # as a kill in the middle of writing one can leave it: gone
            transcript.unlink()
        code, resumed, stderr = pa(api, tmp_path, "", "-s", events[0]["session_id"])
    assert code == 0, (stderr[-2000:], resumed[-1:])
    notices = [e["text"] for e in of_kind(resumed, "notice") if "could not be resumed" in e["text"]]
    assert notices and "a new session takes the turn" in notices[0]
    assert (project / "late.txt").read_text() == "late\n"


def test_a_worker_crash_during_a_parallel_run_restarts_that_worker_only(project: Path, tmp_path: Path) -> None:
    # A fault can only be injected inside pa: the run goes through run_task, with the real CLI and fake API.
    from agentproxy.actors.claude_worker import ClaudeWorker

    from agentproxy.messages import ActorRestarted, AgentStarted, Event, SubtaskFinished
    from agentproxy.runtime import ActorClasses, run_task
    from agentproxy.testing.claude_env import fake_api_options

    left = {"crashes": 1}

    def on_agent_line(self: Any, raw: str) -> None:
        if self.subtask_id == "2" and left["crashes"]:
            left["crashes"] -= 1
            raise RuntimeError("injected crash of the worker of subtask 2")
        ClaudeWorker.on_agent_line(self, raw)

    crashing = type("CrashingWorker", (ClaudeWorker,), {"on_agent_line": on_agent_line})

    def writer(name: str) -> Callable[[CapturedRequest], ToolUse | Text]:
        # Each turn writes the file and then says so: the crash may cut the turn the fake already answered.
        return lambda request: Text(f"Wrote {name}.") if request.tool_results else write_file(name, f"{name[0]}\n")

    conversations = {part(i, 3, f"write {n}.txt"): [writer(f"{n}.txt")] * 6 for i, n in enumerate("abc", 1)}
    with FakeAnthropic(conversations=conversations) as api:
        options = fake_api_options(api.url, project, tmp_path / "claude-home", parallel=3)
        events: list[Event] = []
        outcome = run_task(
            "Files:\n- write a.txt\n- write b.txt\n- write c.txt",
            options,
            subscribers=[events.append],
            classes=ActorClasses(worker=crashing),
            timeout_s=180,
        )
    assert outcome.status == "done", outcome.reason
    assert [(e.actor, e.restarts) for e in events if isinstance(e, ActorRestarted)] == [("worker:2", 1)]
    assert {e.subtask_id: e.status for e in events if isinstance(e, SubtaskFinished)} == {
        "1": "done",
        "2": "done",
        "3": "done",
    }
    started = [e.subtask_id for e in events if isinstance(e, AgentStarted)]
    assert started.count("1") == 1 and started.count("3") == 1  # the others' agents were not disturbed
    for name in "abc":
        assert (project / f"{name}.txt").read_text() == f"{name}\n"
