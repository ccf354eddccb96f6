"""How a run looks on the terminal: one short line per event (text), or the events as JSON lines.

Views are ContextKeeper subscribers: called on its thread, one event at a time, in order; it calls their
flush() after each batch of events, so a flood of events costs one write to the terminal per batch.
What agents and checks print is untrusted: no escape sequence of theirs reaches the terminal.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from agentproxy.messages import (
    ActorRestarted,
    AgentFinished,
    AgentPaused,
    AgentRetrying,
    AgentSaid,
    AgentStarted,
    AgentUsedTool,
    BaselineRan,
    BestOfChosen,
    BrainFellBack,
    CheckResult,
    ChecksRan,
    CheckVerdict,
    Committed,
    ContextLoaded,
    Event,
    FollowUpSent,
    Landed,
    MergeConflicted,
    Merged,
    Notice,
    PlanMade,
    QuestionAnswered,
    QuestionAsked,
    Reviewed,
    SessionFinished,
    SessionStarted,
    SetupStarted,
    SetupStepRan,
    Stuck,
    Subtask,
    SubtaskAssigned,
    SubtaskFinished,
    SubtaskStarted,
    ToolDecided,
    WorkerJoined,
    WorkerLeft,
    WorktreeCreated,
    to_json,
)

TEXT_LIMIT = 160
_ERROR = re.compile(r"\w+(Error|Exception)\b|\bassert|\berror\b|panicked")
# rich's Text.from_ansi keeps a BEL-ended OSC's payload (OSC 52's clipboard data, OSC 0's title) and
# passes the 8-bit (C1) forms and DCS strings, so one pattern takes every sequence whole, in both forms.
_ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b[]P^_X]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC, DCS, SOS, PM, APC strings
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"  # CSI
    r"|\x1b[ -/]*[0-~]?"  # any other escape
)
# Every C0 control but tab and newline, DEL, and every C1 control.
_CONTROLS = dict.fromkeys([*range(0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)])
_JSON_UNSAFE = re.compile("[\x7f-\x9f]")


class JsonView:
    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout

    def __call__(self, event: Event) -> None:
        # The encoder escapes C0 controls; DEL and C1 would reach the terminal as they are.
        line = _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", to_json(event).decode())
        self.out.write(line + "\n")

    def flush(self) -> None:
        self.out.flush()


class TextView:
    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout

    def __call__(self, event: Event) -> None:
        line = describe(event)
        if line is not None:
            self.out.write(terminal_safe(line) + "\n")

    def flush(self) -> None:
        self.out.flush()


def text_view_for(stream: TextIO) -> Callable[[Event], None]:
    """The view of `pa`'s text output: on a terminal the live panel once several subtasks run, else TextView."""
    if not stream.isatty():
        return TextView(stream)
    from rich.console import Console  # lazy: rich costs `pa --help` and the plain view nothing

    from agentproxy.live_panel import LivePanel

    return LivePanel(Console(file=stream))


def describe(event: Event) -> str | None:
    """One line for the terminal, or None for events not worth a line."""
    match event:
        case SessionStarted():
            verb = "continuing" if event.continued else "session"
            return f"▶ {verb} {event.session_id}: {clip(event.task)}\n  in {event.working_dir}"
        case ContextLoaded(sources=sources, chars=chars, images=images) if sources or images:
            names = ", ".join(Path(source).name if "/" in source else source for source in sources[:6])
            more = f" and {len(sources) - 6} more" if len(sources) > 6 else ""
            pictures = f", {images} image{'s' if images != 1 else ''}" if images else ""
            return f"  context: {names}{more} ({chars} chars{pictures})"
        case PlanMade(plan=plan, brain=brain):
            count = len(plan.subtasks)
            steps = "".join(f"\n    {s.id}. {clip(s.title)}{_plan_details(s)}" for s in plan.subtasks)
            return f"  plan ({brain} brain): {count} subtask{'s' if count != 1 else ''}{steps}"
        case SubtaskStarted(subtask_id=sid, title=title, agent=agent):
            return f"[{sid}] ● {clip(title)}" + (f" ({agent})" if agent else "")
        case AgentStarted(subtask_id=sid, agent_session_id=session, model=model, agent=agent):
            return f"[{sid}]   {agent or 'agent'} session {session}" + (f" ({model})" if model else "")
        case AgentSaid(subtask_id=sid, text=text):
            return f"[{sid}]   agent: {clip(text)}"
        case AgentUsedTool(tool="AskUserQuestion"):
            return None  # the question itself gets its own line
        case AgentUsedTool(subtask_id=sid, tool=tool, detail=detail):
            return f"[{sid}]   ✎ {tool} {clip(detail)}".rstrip()
        case ToolDecided(subtask_id=sid, allowed=False, tool=tool, reason=reason):
            return f"[{sid}]   ⛔ denied {tool}: {reason}"
        case AgentRetrying(subtask_id=sid, attempt=attempt, error_status=status):
            return f"[{sid}]   agent retrying its API call (attempt {attempt}, status {status})"
        case AgentPaused(subtask_id=sid, reason=reason, wait_s=wait, until=until):
            resume = time.strftime("%H:%M:%S", time.localtime(until)) if until else f"in {wait:.0f}s"
            return f"[{sid}]   ⏸ paused until {resume} ({_duration(wait)}): {clip(reason)}"
        case Stuck(subtask_id=sid, pattern=pattern, action="refocus"):
            return f"[{sid}]   ⟲ stuck: {clip(pattern)}; interrupted and refocused"
        case Stuck(subtask_id=sid, pattern=pattern):
            return f"[{sid}]   ⟲ stuck again: {clip(pattern)}"
        case QuestionAsked(subtask_id=sid, questions=questions):
            return "\n".join(f"[{sid}]   ? {clip(q.question)}" for q in questions)
        case QuestionAnswered(subtask_id=sid, answers=answers, by=by):
            return "\n".join(f"[{sid}]   ↳ {clip(a)}  (answered by {by})" for a in answers.values())
        case AgentFinished(subtask_id=sid, is_error=True, result=result):
            return f"[{sid}]   agent failed: {clip(result)}"
        case AgentFinished(subtask_id=sid, usage=usage, num_turns=turns):
            # Only Claude Code counts its model turns; the other CLIs report tokens.
            used = f"{turns} model turns" if turns else f"{usage.input_tokens + usage.output_tokens} tokens"
            return f"[{sid}]   agent finished its turn ({used}, ${usage.cost_usd:.4f})"
        case ChecksRan(subtask_id=sid, results=results, verdicts=verdicts) if verdicts:
            marks = ", ".join(
                f"{_KIND_MARK[v.kind]} {r.command} ({r.duration_s:.1f}s)"
                for r, v in zip(results, verdicts, strict=False)
            )
            details = [_verdict_detail(r, v) for r, v in zip(results, verdicts, strict=False) if v.kind != "passed"]
            return f"[{sid}]   checks: {marks}" + "".join(f"\n[{sid}]     {clip(d)}" for d in details if d)
        case ChecksRan(subtask_id=sid, results=results):
            marks = ", ".join(f"{_check_mark(r)} {r.command} ({r.duration_s:.1f}s)" for r in results)
            errors = [
                f"environment: {r.environment}" if r.environment else _error_line(r.output_tail)
                for r in results
                if not r.passed
            ]
            return f"[{sid}]   checks: {marks}" + "".join(f"\n[{sid}]     {clip(e)}" for e in errors if e)
        case SetupStarted(cwd=cwd, reasons=reasons, problems=problems, commands=commands):
            lines = [f"  setup in {cwd}: {clip('; '.join(reasons))}"]
            lines += [f"    $ {clip(command)}" for command in commands]
            lines += [f"  ⚠ setup: {problem}" for problem in problems]
            return "\n".join(lines)
        case SetupStepRan(why=why, result=result) if result.passed:
            return f"  ✓ setup: {clip(why)} ({result.duration_s:.1f}s)"
        case SetupStepRan(why=why, result=result):
            ended = "timed out" if result.timed_out else f"exited {result.exit_code}"
            return (
                f"  ✗ setup: {clip(why)}: {clip(result.command)} {ended}\n    {clip(_error_line(result.output_tail))}"
            )
        case BaselineRan(subtask_id=sid, results=results, cached=cached):
            marks = ", ".join(
                f"{_check_mark(r)} {r.command}" + (" (cached)" if r.command in cached else f" ({r.duration_s:.1f}s)")
                for r in results
            )
            return f"[{sid}]   before the change: {marks}" if results else None
        case Reviewed(subtask_id=sid, verdict=verdict):
            mark = "passed" if verdict.passed else "failed"
            return f"[{sid}]   verdict: {mark}" + (f": {clip('; '.join(verdict.findings))}" if verdict.findings else "")
        case FollowUpSent(subtask_id=sid, attempt=attempt):
            return f"[{sid}]   ↻ follow-up sent to the same agent session (attempt {attempt})"
        case WorktreeCreated(subtask_id=sid, branch=branch, path=path):
            return f"[{sid}]   worktree {path} on {branch}"
        case Merged(subtask_id=sid, commit=commit):
            return f"[{sid}]   ⤵ merged into the run's result ({commit[:10]})"
        case WorkerJoined(worker=worker, slots=slots, capabilities=capabilities):
            agents = ", ".join(f"{cli} {version}" for cli, version in capabilities.items())
            return f"  ⇄ worker {worker} joined: {slots} slot(s)" + (f" ({agents})" if agents else "")
        case WorkerLeft(worker=worker, reason=reason):
            return f"  ⇄ worker {worker} left: {clip(reason)}"
        case SubtaskAssigned(subtask_id=sid, worker=worker, epoch=epoch, bundle_bytes=size):
            sent = f", base sent: {size:,} bytes" if size else ", base already there"
            return f"[{sid}]   on worker {worker} (epoch {epoch}{sent})"
        case MergeConflicted(subtask_id=sid, files=files):
            return f"[{sid}]   ⚡ merge conflict in {', '.join(files)}: an agent resolves it"
        case Landed(how="kept", reason=reason, command=command):
            return f"  the verified result is kept on its branch ({reason}); merge it with:\n    {command}"
        case Landed(how=how, branch=branch, commit=commit):
            return f"  landed on {branch} ({how}) at {commit[:10]}"
        case BestOfChosen(subtask_id=sid, chosen=chosen, passed=passed, reason=reason, attempts=attempts):
            tried = "; ".join(
                f"{a.attempt_id} {a.agent}: {'passed' if a.passed else 'failed'}, ${a.cost_usd:.4f}" for a in attempts
            )
            goes_on = "lands" if passed else "goes on alone"
            return f"[{sid}] ★ best of {len(attempts)}: {chosen} {goes_on} ({clip(reason)}) — {tried}"
        case SubtaskFinished(subtask_id=sid, status=status, reason=reason):
            mark = {"done": "✓", "blocked": "⊘", "discarded": "○"}.get(status, "✗")
            return f"[{sid}] {mark} {status}" + (f": {clip(reason)}" if reason else "")
        case ActorRestarted(actor=actor, reason=reason, restarts=n):
            return f"  ⚠ {actor} crashed ({clip(reason)}); restarted (#{n})"
        case Notice(level=level, text=text):
            return f"  {level}: {text}"
        case Committed(commit=commit, message=message):
            return f"  committed {commit[:10]}: {message}"
        case BrainFellBack(purpose=purpose, reason=reason):
            return f"  ⚠ brain: {clip(reason)}; the offline brain's {purpose} is used"
        case SessionFinished(status=status, reason=reason, cost_usd=cost, duration_s=duration, brain_cost_usd=brain):
            detail = f": {reason}" if reason else ""
            return f"■ {status}{detail}\n  {duration:.1f}s, agent cost ${cost:.4f}, supervisor brain cost ${brain:.4f}"
    return None


_KIND_MARK = {"passed": "✓", "failed": "✗", "preexisting": "○", "environment": "⚠"}


def _verdict_detail(result: CheckResult, verdict: CheckVerdict) -> str:
    """Why a check that did not pass counts as it does: what broke, what failed already, what could not run."""
    if verdict.kind == "failed":
        error = _error_line(result.output_tail)
        return f"{verdict.summary}" + (f" | {error}" if error and error not in verdict.summary else "")
    if verdict.kind == "preexisting":
        return f"not held against the agent: {verdict.summary}"
    return f"environment: {verdict.summary}"


def _check_mark(result: CheckResult) -> str:
    """Passed, failed, or could not run (the environment, not the code)."""
    return "✓" if result.passed else "⚠" if result.environment else "✗"


def _error_line(output: str) -> str:
    """The line of a failing check's output that names the error: the last one that looks like it."""
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    return next((line for line in reversed(lines) if _ERROR.search(line)), lines[-1] if lines else "")


def _plan_details(subtask: Subtask) -> str:
    details = [f"after {', '.join(subtask.depends_on)}"] if subtask.depends_on else []
    details += [f"check: {check}" for check in subtask.checks]
    return f"  ({clip('; '.join(details), 100)})" if details else ""


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def terminal_safe(text: str) -> str:
    """text without escape sequences or control characters; newlines and tabs stay."""
    return _ESCAPE_SEQUENCE.sub("", text).translate(_CONTROLS)


def clip(text: str, limit: int = TEXT_LIMIT) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
