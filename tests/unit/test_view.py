"""The terminal view: one readable line (or none) per event."""

from __future__ import annotations

import io

from agentproxy.messages import (
    AgentUsedTool,
    BaselineRan,
    BrainFellBack,
    CheckResult,
    ChecksRan,
    CheckVerdict,
    Plan,
    PlanMade,
    SessionFinished,
    SetupStarted,
    SetupStepRan,
    Subtask,
    to_json,
)
from agentproxy.view import JsonView, TextView, describe

PYTEST_TAIL = "..F\n=== FAILURES ===\nE   assert 1 == 2\nFAILED test_a.py::test_x - assert 1 == 2\n1 failed in 0.1s"


def test_a_failing_check_shows_the_line_that_names_the_error() -> None:
    event = ChecksRan(subtask_id="1", results=[CheckResult(command="pytest -q", exit_code=1, output_tail=PYTEST_TAIL)])
    line = describe(event)
    assert line is not None and "✗ pytest -q" in line
    assert line.splitlines()[1] == "[1]     FAILED test_a.py::test_x - assert 1 == 2"


def test_the_plan_shows_order_and_checks() -> None:
    plan = Plan(
        subtasks=[
            Subtask(id="1", title="API", instructions="x", checks=["pytest -q"]),
            Subtask(id="2", title="UI", instructions="y", depends_on=["1"]),
        ]
    )
    line = describe(PlanMade(plan=plan, brain="gemini"))
    assert line == "  plan (gemini brain): 2 subtasks\n    1. API  (check: pytest -q)\n    2. UI  (after 1)"


def test_a_question_tool_use_gets_no_line_of_its_own() -> None:
    assert describe(AgentUsedTool(subtask_id="1", tool="AskUserQuestion")) is None
    assert describe(AgentUsedTool(subtask_id="1", tool="Write", detail="/p/a.py")) == "[1]   ✎ Write /p/a.py"


def test_the_end_shows_both_costs_and_fallbacks_are_warned() -> None:
    end = describe(SessionFinished(status="done", cost_usd=0.25, duration_s=3.0, brain_cost_usd=0.0012))
    assert end == "■ done\n  3.0s, agent cost $0.2500, supervisor brain cost $0.0012"
    warning = describe(BrainFellBack(purpose="answer", reason="Gemini answer call failed: HTTP 500"))
    assert warning is not None and warning.startswith("  ⚠ brain:") and "offline brain's answer" in warning


def test_views_write_a_line_per_event() -> None:
    text, json_lines = io.StringIO(), io.StringIO()
    event = SessionFinished(status="failed", reason="boom")
    TextView(text)(event)
    JsonView(json_lines)(event)
    assert text.getvalue().startswith("■ failed: boom\n")
    assert json_lines.getvalue() == to_json(event).decode() + "\n"


HOSTILE = (
    "\x1b]52;c;cm0gLXJmIH4=\x07"  # OSC 52: write the clipboard
    "\x1b]0;pwned title\x1b\\"  # OSC 0: the window title, ST-terminated
    "\x1b[2J\x1b[H\x1b[31m"  # CSI: clear the screen, home, red
    "\x07\x08\r\x00\x7f"  # BEL, backspace, carriage return, NUL, DEL
    "\x9b2J\x9d0;c1 title\x9c\x90dcs\x9c\x85"  # the 8-bit (C1) forms
    "\x1bc"  # reset the terminal
)


def hostile_events() -> list:
    from agentproxy.messages import AgentSaid, Notice, SubtaskFinished

    return [
        AgentSaid(subtask_id="1", text=f"ok ✓ é 中{HOSTILE}done"),
        AgentUsedTool(subtask_id="1", tool="Bash", detail=f"echo ✓ é 中{HOSTILE}done"),
        ChecksRan(
            subtask_id="1", results=[CheckResult(command="pytest", exit_code=1, output_tail=f"{HOSTILE}✓ é 中 Error")]
        ),
        SubtaskFinished(subtask_id="1", status="failed", reason=f"✓ é 中{HOSTILE}done"),
        Notice(level="warning", text=f"✓ é 中{HOSTILE}done"),
    ]


def test_the_text_view_lets_no_escape_sequence_or_control_through() -> None:
    out = io.StringIO()
    view = TextView(out)
    for event in hostile_events():
        view(event)
    printed = out.getvalue()
    assert not [c for c in printed if (ord(c) < 0x20 and c not in "\n") or 0x7F <= ord(c) < 0xA0]
    assert "cm0gLXJmIH4=" not in printed and "pwned title" not in printed and "c1 title" not in printed
    assert printed.count("✓ é 中") == len(hostile_events())


def test_the_json_view_escapes_every_control_and_stays_json() -> None:
    import json

    out = io.StringIO()
    view = JsonView(out)
    events = hostile_events()
    for event in events:
        view(event)
    printed = out.getvalue()
    assert not [c for c in printed if (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) < 0xA0]
    decoded = [json.loads(line) for line in printed.splitlines()]
    assert decoded[0]["text"] == events[0].text  # escaped, not lost


def test_terminal_safe_keeps_text_tabs_and_newlines() -> None:
    from agentproxy.view import terminal_safe

    assert terminal_safe("a\tb\nc ✓ é 中 \x1b[1mbold\x1b[0m") == "a\tb\nc ✓ é 中 bold"
    assert terminal_safe("cut off \x1b]52;c;AAAA") == "cut off "


def test_a_pause_and_a_loop_each_get_a_line() -> None:
    from agentproxy.messages import AgentPaused, Stuck

    paused = describe(AgentPaused(subtask_id="2", reason="API 429: rate limited", wait_s=5400, until=1_800_000_000))
    assert paused is not None and paused.startswith("[2]") and "90 min" in paused and "429" in paused
    refocused = describe(Stuck(subtask_id="2", pattern="the same call (Bash make) 4 times", action="refocus"))
    assert refocused is not None and "refocused" in refocused and "Bash make" in refocused
    failed = describe(Stuck(subtask_id="2", pattern="alternating", action="failed"))
    assert failed is not None and "again" in failed


def test_a_check_that_could_not_run_is_marked_as_the_environment() -> None:
    from agentproxy.messages import CheckResult, ChecksRan

    line = describe(
        ChecksRan(
            subtask_id="1",
            results=[CheckResult(command="pytest", exit_code=4, environment="pytest-cov is not installed; fix: pip")],
        )
    )
    assert line is not None and "⚠ pytest" in line and "environment: pytest-cov is not installed" in line


def test_each_verdict_kind_has_its_mark_and_says_why() -> None:
    results = [
        CheckResult(command="pytest", exit_code=1, output_tail="E   assert 3 == 4\nFAILED t.py::test_b"),
        CheckResult(command="make lint", exit_code=2, output_tail="lint: 3 problems"),
        CheckResult(
            command="tox", exit_code=127, output_tail="tox: not found", environment="tox; fix: pip install tox"
        ),
        CheckResult(command="mypy", exit_code=0),
    ]
    verdicts = [
        CheckVerdict(command="pytest", kind="failed", new_failures=["t::test_b"], summary="fails now: t::test_b"),
        CheckVerdict(command="make lint", kind="preexisting", summary="already failed the same way"),
        CheckVerdict(command="tox", kind="environment", summary="could not run: tox is not installed"),
        CheckVerdict(command="mypy", kind="passed", summary="passed"),
    ]

    text = describe(ChecksRan(subtask_id="1", results=results, verdicts=verdicts))

    assert text is not None
    head, *details = text.splitlines()
    assert "✗ pytest" in head and "○ make lint" in head and "⚠ tox" in head and "✓ mypy" in head
    assert details[0].endswith("fails now: t::test_b | E assert 3 == 4")  # the line naming the error
    assert "not held against the agent: already failed the same way" in details[1]
    assert "environment: could not run: tox is not installed" in details[2]
    assert len(details) == 3


def test_setup_and_the_base_run_are_shown_command_by_command() -> None:
    install = "/envs/p/bin/python -m pip install -e ."
    started = SetupStarted(cwd="/p", reasons=["python: pip install into /envs/p"], commands=[install])
    output = "ERROR: No matching distribution found for pkgq"
    failed = SetupStepRan(why="install the tree", result=CheckResult(command=install, exit_code=1, output_tail=output))
    results = [
        CheckResult(command="pytest", exit_code=1, duration_s=2.0),
        CheckResult(command="make lint", exit_code=0),
    ]
    base = BaselineRan(subtask_id="1", commit="abc", results=results, cached=["make lint"])

    assert describe(started) == f"  setup in /p: python: pip install into /envs/p\n    $ {install}"
    assert describe(failed) == f"  ✗ setup: install the tree: {install} exited 1\n    {output}"
    assert describe(base) == "[1]   before the change: ✗ pytest (2.0s), ✓ make lint (cached)"


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def test_views_write_each_event_and_flush_once_per_batch() -> None:
    from agentproxy.messages import AgentSaid

    batch = [AgentSaid(subtask_id="1", text=f"line {n}") for n in range(3)]
    for view_class in (TextView, JsonView):
        out = CountingStream()
        view = view_class(out)
        for event in batch:
            view(event)
        assert len(out.getvalue().splitlines()) == 3 and out.flushes == 0
        view.flush()
        assert out.flushes == 1


def test_the_worktree_and_merge_lines_and_a_kept_result_name_the_command_that_merges_it() -> None:
    from agentproxy.messages import Landed, MergeConflicted, Merged, SubtaskFinished, WorktreeCreated
    from agentproxy.view import describe

    created = WorktreeCreated(subtask_id="2", branch="agentproxy/ab/2", path="/data/worktrees/ab/2", start="c0ffee")
    assert describe(created) == "[2]   worktree /data/worktrees/ab/2 on agentproxy/ab/2"
    assert describe(Merged(subtask_id="2", branch="agentproxy/ab/2", commit="0123456789abc")) == (
        "[2]   ⤵ merged into the run's result (0123456789)"
    )
    assert "greeting.txt" in (describe(MergeConflicted(subtask_id="2", files=["greeting.txt"])) or "")
    kept = describe(
        Landed(
            how="kept", branch="main", reason="your working tree has changes", command="git merge agentproxy/ab/result"
        )
    )
    assert kept is not None and kept.endswith("\n    git merge agentproxy/ab/result")
    assert describe(Landed(how="fast-forward", branch="main", commit="feedface00")) == (
        "  landed on main (fast-forward) at feedface00"
    )
    blocked = describe(SubtaskFinished(subtask_id="3", status="blocked", reason="it depends on 2, which failed"))
    assert blocked == "[3] ⊘ blocked: it depends on 2, which failed"


def test_remote_workers_and_assignments_get_a_line_each() -> None:
    from agentproxy.messages import SubtaskAssigned, WorkerJoined, WorkerLeft

    joined = describe(WorkerJoined(worker="gpu-1", slots=2, capabilities={"claude": "2.1.330"}))
    assert joined == "  ⇄ worker gpu-1 joined: 2 slot(s) (claude 2.1.330)"
    assert describe(WorkerLeft(worker="gpu-1", reason="silent for 3.2s")) == "  ⇄ worker gpu-1 left: silent for 3.2s"
    sent = describe(SubtaskAssigned(subtask_id="2", worker="gpu-1", epoch=3, bundle_bytes=1234))
    assert sent == "[2]   on worker gpu-1 (epoch 3, base sent: 1,234 bytes)"
    held = describe(SubtaskAssigned(subtask_id="2", worker="gpu-1", epoch=1))
    assert held is not None and held.endswith("base already there)")
