"""A short, deterministic summary of one recorded session, for the brain's memory of the project."""

from __future__ import annotations

from collections.abc import Sequence

from agentproxy.messages import (
    AgentFinished,
    Committed,
    Event,
    FollowUpSent,
    PlanMade,
    QuestionAnswered,
    SessionFinished,
    SessionStarted,
    SubtaskFinished,
    SubtaskStarted,
)

MAX_SUMMARY_CHARS = 800
# Per-line caps whose sum, with the newlines, stays under MAX_SUMMARY_CHARS whatever the events hold.
TASK_CHARS, OUTCOME_CHARS, SUBTASKS_CHARS, ANSWERS_CHARS, COMMIT_CHARS, TOTALS_CHARS = 150, 120, 200, 200, 80, 40


def summarise_session(events: Sequence[Event]) -> str:
    tasks: list[str] = []
    titles: dict[str, str] = {}
    status: dict[str, str] = {}
    answers: list[tuple[str, str]] = []
    follow_ups = 0
    cost = 0.0
    commit = ""
    outcome = "Outcome: unfinished (no end recorded)"
    for event in events:
        match event:
            case SessionStarted(task=task):
                tasks.append(_one_line(task))
            case PlanMade(plan=plan):
                for subtask in plan.subtasks:
                    titles[subtask.id] = subtask.title
                    status.setdefault(subtask.id, "pending")
            case SubtaskStarted(subtask_id=sid, title=title):
                titles[sid] = title or titles.get(sid, sid)
                status[sid] = "running"
            case SubtaskFinished(subtask_id=sid, status=done, reason=reason):
                status[sid] = f"{done} ({_clip(reason, 60)})" if reason else done
            case QuestionAnswered(answers=given):
                answers += given.items()
            case FollowUpSent():
                follow_ups += 1
            case AgentFinished(usage=usage):
                cost += usage.cost_usd
            case Committed(commit=sha, message=message):
                subject = message.strip().split("\n", 1)[0]  # a commit message's first line is its summary
                commit = f"Commit: {sha[:12]} {subject}"
            case SessionFinished(status=end, reason=reason):
                outcome = f"Outcome: {end}" + (f" ({_one_line(reason)})" if reason else "")
    lines = [
        _clip(("Task: " if len(tasks) < 2 else "Tasks: ") + ("; then ".join(tasks) or "(none recorded)"), TASK_CHARS),
        _clip(outcome, OUTCOME_CHARS),
    ]
    if status:
        subtasks = "; ".join(f"{titles.get(sid) or sid}: {state}" for sid, state in status.items())
        lines.append(_clip(f"Subtasks: {subtasks}", SUBTASKS_CHARS))
    if answers:
        qa = "; ".join(f"{_clip(q, 70)} → {_clip(a, 70)}" for q, a in answers)
        lines.append(_clip(f"Answered: {qa}", ANSWERS_CHARS))
    if commit:
        lines.append(_clip(commit, COMMIT_CHARS))
    lines.append(_clip(f"Follow-ups: {follow_ups}; agent cost: ${cost:.2f}", TOTALS_CHARS))
    return "\n".join(lines)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _clip(text: str, limit: int) -> str:
    text = _one_line(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
