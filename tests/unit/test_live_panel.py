"""The live panel: plain lines for one subtask, a row per subtask on screen once a second one starts."""

from __future__ import annotations

import io
import os
import re

from rich.console import Console

from agentproxy.live_panel import LivePanel
from agentproxy.messages import (
    AgentFinished,
    AgentSaid,
    AgentUsedTool,
    BaselineRan,
    ChecksRan,
    Event,
    FollowUpSent,
    Reviewed,
    SessionFinished,
    SubtaskFinished,
    SubtaskStarted,
    Usage,
    Verdict,
)
from agentproxy.view import TextView, describe, text_view_for

NOW = 1000.0
_CURSOR_CODES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


def panel_on(out: io.StringIO) -> LivePanel:
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    return LivePanel(console, clock=lambda: NOW, auto_refresh=False)


def feed(panel: LivePanel, *events: Event) -> None:
    """As the ContextKeeper does: each event, then the batch's flush."""
    for event in events:
        panel(event)
    panel.flush()


def last_panel(output: str) -> list[list[str]]:
    """The rows of the panel as last drawn (the lines after its last header), cell by cell; empty cells vanish."""
    screen = _CURSOR_CODES.sub("\n", output)
    drawn = screen[screen.rindex("subtask  state") :].splitlines()[1:]
    return [re.split(r"\s{2,}", line.strip()) for line in drawn if line.strip()]


def two_subtasks() -> list[Event]:
    return [
        SubtaskStarted(subtask_id="1", title="API", at=NOW - 90),
        AgentSaid(subtask_id="1", text="Reading the routes.\nThen the handlers.", at=NOW - 80),
        SubtaskStarted(subtask_id="2", title="UI", at=NOW - 30),
    ]


def test_one_subtask_prints_what_the_text_view_prints() -> None:
    events = [
        SubtaskStarted(subtask_id="1", title="API", at=1.0),
        AgentUsedTool(subtask_id="1", tool="Write", detail="/p/api.py", at=2.0),
        SubtaskFinished(subtask_id="1", status="done", at=3.0),
        SessionFinished(status="done", cost_usd=0.1, duration_s=2.0, at=4.0),
    ]
    out, plain = io.StringIO(), io.StringIO()
    feed(panel_on(out), *events)
    view = TextView(plain)
    for event in events:
        view(event)
    assert out.getvalue() == plain.getvalue()
    assert "\x1b" not in out.getvalue()


def test_a_second_subtask_brings_up_a_row_per_subtask() -> None:
    out = io.StringIO()
    panel = panel_on(out)
    feed(panel, *two_subtasks())
    assert panel.live is not None
    before, _, _ = out.getvalue().partition("\x1b")
    assert before == "[1] ● API\n[1]   agent: Reading the routes. Then the handlers.\n[2] ● UI\n"
    assert last_panel(out.getvalue()) == [
        ["1", "API", "running", "Reading the routes.", "1m30s", "$0.0000"],
        ["2", "UI", "preparing", "30s", "$0.0000"],
    ]
    panel.stop()


def test_states_follow_the_subtask_and_costs_add_up() -> None:
    out = io.StringIO()
    panel = panel_on(out)
    feed(panel, *two_subtasks())
    usage = Usage(cost_usd=0.25)
    feed(
        panel,
        BaselineRan(subtask_id="2", commit="abc", results=[], at=NOW - 20),
        AgentFinished(subtask_id="1", agent_session_id="a", is_error=False, usage=usage, at=NOW - 15),
        ChecksRan(subtask_id="1", results=[], at=NOW - 14),
    )
    assert [(r.state, r.cost_usd) for r in panel.rows.values()] == [("reviewing", 0.25), ("running", 0.0)]
    feed(
        panel,
        Reviewed(subtask_id="1", verdict=Verdict(passed=False), at=NOW - 12),
        FollowUpSent(subtask_id="1", attempt=2, instruction="fix it", at=NOW - 11),
        AgentUsedTool(subtask_id="1", tool="Bash", detail="pytest -q", at=NOW - 10),
        AgentFinished(subtask_id="1", agent_session_id="a", is_error=False, usage=usage, at=NOW - 9),
        SubtaskFinished(subtask_id="1", status="done", at=NOW - 5),
        SubtaskFinished(subtask_id="2", status="blocked", reason="needs 1", at=NOW - 4),
    )
    assert last_panel(out.getvalue()) == [
        ["1", "API", "done", "Bash pytest -q", "1m25s", "$0.5000"],
        ["2", "UI", "blocked", "26s", "$0.0000"],
    ]
    panel.stop()


def test_event_lines_print_above_the_panel() -> None:
    out = io.StringIO()
    panel = panel_on(out)
    feed(panel, *two_subtasks())
    feed(panel, AgentUsedTool(subtask_id="2", tool="Write", detail="/p/ui.py", at=NOW))
    screen = _CURSOR_CODES.sub("\n", out.getvalue())
    line_at = screen.rindex("[2]   ✎ Write /p/ui.py")
    assert screen.rindex("subtask  state") > line_at  # the panel is drawn again below the new line
    panel.stop()


def test_the_session_summary_goes_below_the_last_panel() -> None:
    out = io.StringIO()
    panel = panel_on(out)
    feed(panel, *two_subtasks())
    feed(panel, SessionFinished(status="failed", reason="subtask 2 failed", at=NOW))
    assert panel.live is None
    assert out.getvalue().endswith(
        "\x1b[?25h■ failed: subtask 2 failed\n  0.0s, agent cost $0.0000, supervisor brain cost $0.0000\n"
    )


def test_what_agents_write_reaches_the_panel_without_escape_sequences() -> None:
    hostile = "\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2Jok\x9b2J"
    out = io.StringIO()
    panel = panel_on(out)
    feed(
        panel,
        SubtaskStarted(subtask_id="1", title=f"API{hostile}", at=NOW),
        SubtaskStarted(subtask_id="2", title="UI", at=NOW),
        AgentSaid(subtask_id="2", text=f"done{hostile}", at=NOW),
    )
    panel.stop()
    printed = out.getvalue()
    assert "cm0gLXJmIH4=" not in printed and "\x1b[2J" not in printed and "\x9b" not in printed
    assert "APIok" in printed and "doneok" in printed


def test_a_terminal_gets_the_panel_and_anything_else_the_text_view() -> None:
    primary, secondary = os.openpty()
    with open(secondary, "w", encoding="utf-8") as terminal:
        assert isinstance(text_view_for(terminal), LivePanel)
    os.close(primary)
    assert isinstance(text_view_for(io.StringIO()), TextView)


def test_without_a_terminal_every_line_of_a_subtask_names_it() -> None:
    out = io.StringIO()
    view = TextView(out)
    events = [
        *two_subtasks(),
        ChecksRan(subtask_id="2", results=[], at=NOW),
        AgentSaid(subtask_id="1", text="two\nlines", at=NOW),
        SubtaskFinished(subtask_id="2", status="failed", reason="checks failed", at=NOW),
    ]
    for event in events:
        view(event)
    lines = out.getvalue().splitlines()
    assert len(lines) == sum(len((describe(e) or "").splitlines()) for e in events)
    assert [line[:3] for line in lines] == ["[1]", "[1]", "[2]", "[2]", "[1]", "[2]"]
