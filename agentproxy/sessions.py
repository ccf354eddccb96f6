"""Reading recorded sessions: the listing, and what a resumed session carries over."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from agentproxy import config
from agentproxy.errors import UsageError
from agentproxy.messages import (
    AgentFinished,
    AgentStarted,
    Merged,
    Plan,
    PlanMade,
    Reviewed,
    SessionStarted,
    SubtaskFinished,
)
from agentproxy.store import SessionRow, SessionStore


@dataclass(frozen=True)
class Resumption:
    """What continuing a session carries over into the next run."""

    session_id: str
    working_dir: str
    task: str  # the last task: re-run when no new task is given
    plan: Plan | None = None  # the last task's plan, reused when resuming it
    done_subtasks: tuple[str, ...] = ()
    verified_subtasks: tuple[str, ...] = ()  # passed review, not yet merged when pa stopped
    agent_sessions: dict[str, str] = field(default_factory=dict)  # subtask id -> its agent session
    agent_costs: dict[str, float] = field(default_factory=dict)  # subtask id -> what its agent session cost
    agents: dict[str, str] = field(default_factory=dict)  # subtask id -> the agent backend of its session
    agent_session_id: str | None = None  # the last one: a new task in the session continues it


def list_sessions(limit: int = 50) -> list[SessionRow]:
    store = SessionStore(config.store_path())
    try:
        return store.list_sessions(limit=limit)
    finally:
        store.close()


def format_sessions(rows: list[SessionRow]) -> str:
    if not rows:
        return "no sessions yet"
    lines = [f"{'ID':<9} {'STATUS':<12} {'STARTED':<17} {'COST':>8}  TASK / DIRECTORY"]
    for row in rows:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(row.created_at))
        task = " ".join(row.task.split())
        task = task if len(task) <= 60 else task[:59] + "…"
        cost = row.cost_usd + row.brain_cost_usd  # agents and supervisor: what the session cost in all
        lines.append(f"{row.id:<9} {row.status:<12} {started:<17} ${cost:>7.4f}  {task}")
        lines.append(f"{'':<50}{row.working_dir}")
    return "\n".join(lines)


def resumption(session_id_or_prefix: str) -> Resumption:
    """Read back the session's last task: its plan, the subtasks it finished or verified, their agent sessions."""
    store = SessionStore(config.store_path())
    try:
        row = _not_running(store, session_id_or_prefix)
        events = store.events(row.id)
    finally:
        store.close()
    task, plan, agent_session = row.task, None, row.last_agent_session
    done: list[str] = []
    verified: set[str] = set()
    sessions: dict[str, str] = {}
    costs: dict[str, float] = {}
    agents: dict[str, str] = {}
    for event in events:
        match event:
            case SessionStarted(task=started, continued=continued):
                if not continued or started != task:  # a new task: only what follows its start carries over
                    task, plan, done, agent_session = started, None, [], row.last_agent_session
                    verified, sessions, costs, agents = set(), {}, {}, {}
            case PlanMade(plan=made):
                plan = made
            case SubtaskFinished(subtask_id=sid, status="done") | Merged(subtask_id=sid):
                done.append(sid)
            case SubtaskFinished(subtask_id=sid):
                verified.discard(sid)
            case Reviewed(subtask_id=sid, verdict=verdict) if verdict.passed:
                verified.add(sid)
            case AgentStarted(subtask_id=sid, agent_session_id=session, agent=backend):
                agent_session = sessions[sid] = session
                agents[sid] = backend or "claude"
            case AgentFinished(subtask_id=sid, usage=usage):
                costs[sid] = costs.get(sid, 0.0) + usage.cost_usd
    return Resumption(
        session_id=row.id,
        working_dir=row.working_dir,
        task=task,
        plan=plan,
        done_subtasks=tuple(dict.fromkeys(done)),
        verified_subtasks=tuple(sorted(verified - set(done))),
        agent_sessions=sessions,
        agent_costs=costs,
        agents=agents,
        agent_session_id=agent_session,
    )


def discard(session_id_or_prefix: str) -> str:
    """Remove a finished session's worktrees and branches and mark it discarded; what was removed."""
    from agentproxy.worktrees import SessionWorktrees, session_branches

    store = SessionStore(config.store_path())
    try:
        row = _not_running(store, session_id_or_prefix)
        worktrees = SessionWorktrees(Path(row.working_dir), config.worktrees_dir(row.id), row.id)
        branches, places = session_branches(Path(row.working_dir), row.id), worktrees.listed()
        worktrees.remove_all()
        store.set_status(row.id, "discarded", "discarded by pa -s ID --discard")
    finally:
        store.close()
    return f"session {row.id} discarded: {len(places)} worktrees and {len(branches)} branches removed"


def _not_running(store: SessionStore, session_id_or_prefix: str) -> SessionRow:
    """The session's row; UsageError while a pa still runs it (one that died is marked interrupted first)."""
    store.mark_interrupted_orphans()
    row = store.get(session_id_or_prefix)
    if row.status == "running":
        raise UsageError(f"session {row.id} is still running (pa pid {row.pid}); wait for it or stop it first")
    return row
