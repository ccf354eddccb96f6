"""The terminal view: one readable line (or none) per event."""

from __future__ import annotations

import io

from agentproxy.messages import (
    AgentUsedTool,
    BrainFellBack,
    CheckResult,
    ChecksRan,
    Plan,
    PlanMade,
    SessionFinished,
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
    plan = Plan(subtasks=[Subtask(id="1", title="API", instructions="x", checks=["pytest -q"]),
                          Subtask(id="2", title="UI", instructions="y", depends_on=["1"])])
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
