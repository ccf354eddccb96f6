"""What an agent's stream-json lines amount to: the events they record, its changes, its loops."""

from __future__ import annotations

from pathlib import Path

from agentproxy.agents import claude_stream as wire
from agentproxy.agents.claude_turns import AgentActivity, failure
from agentproxy.messages import AgentFinished, AgentRetrying, AgentSaid, AgentUsedTool, Event, Notice

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "protocol-samples"


def events_of_transcript(activity: AgentActivity, name: str) -> list[Event]:
    lines = [line for line in (SAMPLES / name).read_bytes().splitlines() if line.strip()]
    return [event for line in lines for event in activity.events_of(wire.parse_line(line), "1", "earlier-session")]


def test_a_real_write_transcript_records_what_the_agent_said_and_did_and_what_it_cost() -> None:
    activity = AgentActivity(stuck_repeats=4)
    events = events_of_transcript(activity, "claude_stream_json_write_2.1.330.jsonl")
    assert [type(e) for e in events] == [AgentSaid, AgentUsedTool, AgentSaid, AgentFinished]
    used, finished = events[1], events[3]
    assert isinstance(used, AgentUsedTool) and (used.tool, used.detail.endswith("/hello.py")) == ("Write", True)
    assert isinstance(finished, AgentFinished) and finished.agent_session_id != "earlier-session"
    assert (finished.usage.output_tokens, finished.usage.cost_usd) == (40, 0.0016)
    assert activity.made_changes() is True
    assert "[Write] " in activity.tail()


def test_retries_and_an_api_error_are_recorded_and_the_failure_says_why() -> None:
    events = events_of_transcript(AgentActivity(stuck_repeats=4), "claude_api_error_500_retries.jsonl")
    assert [(e.attempt, e.error_status) for e in events if isinstance(e, AgentRetrying)] == [(1, 500), (2, 500)]
    finished = events[-1]
    assert isinstance(finished, AgentFinished) and finished.is_error and finished.api_error_status == 500
    result = wire.parse_line((SAMPLES / "claude_api_error_500_retries.jsonl").read_bytes().splitlines()[-1])
    assert isinstance(result, wire.ResultLine) and failure(result).startswith("agent failed (success): API error 500: ")


def test_an_unreadable_line_is_a_warning() -> None:
    [notice] = AgentActivity(stuck_repeats=4).events_of(wire.parse_line(b"not json"), "1", "")
    assert isinstance(notice, Notice) and notice.level == "warning"


def test_commands_alone_may_or_may_not_have_changed_anything() -> None:
    activity = AgentActivity(stuck_repeats=4)
    assert activity.made_changes() is False
    activity.content("1", wire.ContentBlock(type="tool_use", id="t1", name="Bash", input={"command": "make"}))
    assert activity.made_changes() is None


def loop_of(activity: AgentActivity, calls: int) -> str | None:
    """The agent runs the same failing command `calls` times; the loop the last result closes."""
    loop = None
    for n in range(calls):
        activity.content("1", wire.ContentBlock(type="tool_use", id=f"t{n}", name="Bash", input={"command": "make"}))
        result = wire.UserContentBlock(
            type="tool_result", tool_use_id=f"t{n}", content="make: *** Error 2", is_error=True
        )
        loop = activity.loop_closed_by(wire.UserLine(message=wire.UserMessage(content=[result])))
    return loop


def test_a_loop_is_refocused_once_then_failed() -> None:
    activity = AgentActivity(stuck_repeats=3)
    assert loop_of(activity, 2) is None
    loop = loop_of(activity, 1)
    assert loop and "make" in loop
    assert activity.on_loop(loop) == "refocus"
    assert activity.on_loop(loop) is None  # the refocus is on its way
    refocus = activity.refocus_turn()
    assert refocus and loop in refocus and activity.refocus_turn() is None
    assert loop_of(activity, 2) is None  # the steps before the refocus are forgotten
    again = loop_of(activity, 1)
    assert again and activity.on_loop(again) == "failed"
