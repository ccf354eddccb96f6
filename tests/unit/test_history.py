"""Session summaries: what one recorded session did, short and the same every time."""

from __future__ import annotations

from agentproxy.history import MAX_SUMMARY_CHARS, summarise_session
from agentproxy.messages import (
    AgentFinished,
    AgentQuestion,
    AgentSaid,
    Committed,
    Event,
    FollowUpSent,
    Plan,
    PlanMade,
    QuestionAnswered,
    QuestionAsked,
    Reviewed,
    SessionFinished,
    SessionStarted,
    Subtask,
    SubtaskFinished,
    SubtaskStarted,
    Usage,
    Verdict,
)


def realistic_session() -> list[Event]:
    plan = Plan(
        subtasks=[
            Subtask(id="s1", title="Fix the date parser", instructions="..."),
            Subtask(id="s2", title="Add regression tests", instructions="...", depends_on=["s1"]),
            Subtask(id="s3", title="Update the changelog", instructions="..."),
        ]
    )
    question = AgentQuestion(question="Which timezone should naive dates use?")
    return [
        SessionStarted(task="fix the date parsing bug in invoices", working_dir="/w"),
        PlanMade(plan=plan, brain="gemini"),
        SubtaskStarted(subtask_id="s1", title="Fix the date parser"),
        AgentSaid(subtask_id="s1", text="Looking at parse_date."),
        QuestionAsked(subtask_id="s1", questions=[question]),
        QuestionAnswered(subtask_id="s1", answers={question.question: "UTC"}, by="gemini"),
        AgentFinished(subtask_id="s1", agent_session_id="a1", is_error=False, usage=Usage(cost_usd=0.25)),
        Reviewed(subtask_id="s1", verdict=Verdict(passed=False, follow_up="handle DST")),
        FollowUpSent(subtask_id="s1", attempt=2, instruction="handle DST"),
        AgentFinished(subtask_id="s1", agent_session_id="a1", is_error=False, usage=Usage(cost_usd=0.125)),
        SubtaskFinished(subtask_id="s1", status="done"),
        SubtaskStarted(subtask_id="s2", title="Add regression tests"),
        AgentFinished(subtask_id="s2", agent_session_id="a2", is_error=False, usage=Usage(cost_usd=0.125)),
        SubtaskFinished(subtask_id="s2", status="failed", reason="pytest failed after 3 attempts"),
        Committed(commit="0123456789abcdef0123", message="Fix invoice date parsing\n\nlong body"),
        SessionFinished(status="failed", reason="subtask s2 failed", cost_usd=0.5),
    ]


def test_summary_mentions_task_outcome_subtasks_answers_commit_and_cost() -> None:
    summary = summarise_session(realistic_session())
    assert summary.splitlines() == [
        "Task: fix the date parsing bug in invoices",
        "Outcome: failed (subtask s2 failed)",
        "Subtasks: Fix the date parser: done; Add regression tests: failed (pytest failed after 3 attempts);"
        " Update the changelog: pending",
        "Answered: Which timezone should naive dates use? → UTC",
        "Commit: 0123456789ab Fix invoice date parsing",
        "Follow-ups: 1; agent cost: $0.50",
    ]
    assert summarise_session(realistic_session()) == summary


def test_continued_and_unfinished_sessions() -> None:
    events: list[Event] = [
        SessionStarted(task="first", working_dir="/w"),
        SessionFinished(status="done"),
        SessionStarted(task="second", working_dir="/w", continued=True),
    ]
    summary = summarise_session(events)
    assert summary.splitlines()[0] == "Tasks: first; then second"
    assert "Outcome: done" in summary  # the last recorded end
    assert summarise_session([]).splitlines() == [
        "Task: (none recorded)",
        "Outcome: unfinished (no end recorded)",
        "Follow-ups: 0; agent cost: $0.00",
    ]


def test_summary_is_bounded_however_much_happened() -> None:
    huge = "word " * 2000
    events: list[Event] = [SessionStarted(task=huge, working_dir="/w") for _ in range(20)]
    for i in range(100):
        events += [
            SubtaskStarted(subtask_id=f"s{i}", title=huge),
            QuestionAnswered(subtask_id=f"s{i}", answers={huge: huge}, by="brain"),
            FollowUpSent(subtask_id=f"s{i}", attempt=2, instruction=huge),
            SubtaskFinished(subtask_id=f"s{i}", status="failed", reason=huge),
        ]
    events += [Committed(commit="f" * 40, message=huge), SessionFinished(status="failed", reason=huge)]
    summary = summarise_session(events)
    assert len(summary) <= MAX_SUMMARY_CHARS
    assert "Follow-ups: 100" in summary and summary.count("\n") == 5
