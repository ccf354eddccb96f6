"""The pa-server application: the original's endpoints (POST /task streaming, /health, /sessions,
/session/{id}, /stop), following a session live, continuing it, and the dashboard at /.

Every answer that is not a stream is JSON; every refusal is a 4xx with {"status_code", "detail"}.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar, Request, get, post
from litestar.config.cors import CORSConfig
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.response import Response, ServerSentEvent, ServerSentEventMessage
from litestar.static_files import create_static_files_router

from agentproxy.api import event_kind
from agentproxy.errors import AgentProxyError, UnknownSessionError, UsageError
from agentproxy.messages import to_json
from agentproxy.server.runs import FINISHED, Busy, Runs, SessionLog
from agentproxy.server.security import AllowedRoots, Forbidden, token_matches

MAX_BODY_BYTES = 1024 * 1024
RUN_OPTIONS = (  # TaskRequest's fields that are `pa`'s run options, passed on as given
    "checks",
    "setup",
    "parallel",
    "check_parallel",
    "max_attempts",
    "max_budget_usd",
    "agent_model",
    "no_qa",
    "allow_tools",
    "deny",
    "agent",
    "best_of",
)
STATIC = Path(__file__).with_name("static")


class Screenshot(msgspec.Struct, forbid_unknown_fields=True):
    path: str
    description: str = ""


class TaskRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A task, and the run options of `pa` by their names (see `pa --help`)."""

    task: str
    working_dir: str = "."
    session_id: str | None = None
    screenshots: list[Screenshot] = []
    checks: list[str] | None = None
    setup: str | None = None
    parallel: int | None = None
    check_parallel: int | None = None
    max_attempts: int | None = None
    max_budget_usd: float | None = None
    agent_model: str | None = None
    no_qa: bool | None = None
    allow_tools: list[str] | None = None
    deny: list[str] | None = None
    agent: str | None = None  # claude, codex or gemini
    agents: list[str] | None = None  # several: the brain gives each subtask one
    best_of: int | None = None


class MessageRequest(msgspec.Struct, forbid_unknown_fields=True):
    """More work for a session: continues it like `pa -s ID "more work"`."""

    task: str


class StopRequest(msgspec.Struct, forbid_unknown_fields=True):
    session_id: str


@dataclass(frozen=True)
class ServerConfig:
    roots: AllowedRoots
    token: str | None = None  # required of every API call when set (a non-loopback bind)
    cors_origins: tuple[str, ...] = ()
    claude_bin: str | None = None
    fleet: Any = None  # agentproxy.bridge.fleet.Fleet: remote workers serving every run (--listen)
    listen: Any = None  # its ListenOptions (each run's local slots)


def create_app(config: ServerConfig) -> Litestar:
    runs = Runs()

    def start(request: TaskRequest | MessageRequest, session_id: str | None, working_dir: str) -> SessionLog:
        cwd = config.roots.check(working_dir, "working_dir")
        options: dict[str, Any] = {}
        if isinstance(request, TaskRequest):
            options = {name: getattr(request, name) for name in RUN_OPTIONS if getattr(request, name) is not None}
            options["screenshots"] = [config.roots.check(shot.path, "screenshot") for shot in request.screenshots]
            if request.agents is not None:
                options["agents"] = ",".join(request.agents)
        if not request.task.strip():
            raise UsageError("task must not be empty")
        if config.fleet is not None:
            options.update(fleet=config.fleet, listen=config.listen)
        return runs.start(request.task, cwd, session_id, claude_bin=config.claude_bin, **options)

    @post("/task", status_code=200)
    async def post_task(data: TaskRequest) -> ServerSentEvent:
        """Start a task: its events as a stream (the first names the session, the last is `done`)."""
        log = start(data, data.session_id, data.working_dir)
        return ServerSentEvent(stream(log, after=0, announce=True))

    @post("/session/{session_id:str}/message", status_code=200)
    async def post_message(session_id: str, data: MessageRequest) -> ServerSentEvent:
        """Continue a session with more work: the stream goes on from its earlier events' numbers."""
        session = runs.session(session_id)
        log = start(data, session.row.id, session.row.working_dir)
        return ServerSentEvent(stream(log, after=log.earlier, announce=True))

    @get("/session/{session_id:str}/events")
    async def get_events(session_id: str, request: Request[Any, Any, Any]) -> ServerSentEvent:
        """A session's events from the start (or after Last-Event-ID), then live until it ends."""
        after = last_event_id(request.headers.get("last-event-id"))
        session = runs.session(session_id)
        log = runs.log_of(session.row.id)
        if log is None:
            return ServerSentEvent(replay(session, after))
        return ServerSentEvent(stream(log, after=after, announce=False))

    @get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "healthy", "active_sessions": len(runs.active())}

    @get("/sessions")
    async def sessions() -> dict[str, Any]:
        from agentproxy import api

        return {"sessions": [session_json(row) for row in api.list_sessions()]}

    @get("/session/{session_id:str}")
    async def session(session_id: str) -> dict[str, Any]:
        found = runs.session(session_id)
        return {
            **session_json(found.row),
            "tasks": found.tasks,
            "subtasks": [dataclasses.asdict(row) for row in found.subtasks],
            "events": len(found.events),
        }

    @post("/stop", status_code=200)
    async def stop(data: StopRequest) -> dict[str, Any]:
        """Stop a running session: its agents' process groups are killed, it ends `interrupted`."""
        found = runs.session(data.session_id)
        return {"session_id": found.row.id, "stopped": runs.stop(found.row.id)}

    def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        """Every API call needs the token (when there is one); the dashboard's page itself does not: it asks."""
        if handler.opt.get("public"):
            return
        if config.token is not None and not token_matches(connection.headers.get("authorization"), config.token):
            raise NotAuthorizedException("a bearer token is needed: Authorization: Bearer <token>")

    return Litestar(
        route_handlers=[
            post_task,
            post_message,
            get_events,
            health,
            sessions,
            session,
            stop,
            create_static_files_router(
                path="/", directories=[STATIC], html_mode=True, include_in_schema=False, opt={"public": True}
            ),
        ],
        guards=[guard],
        exception_handlers={AgentProxyError: refusal},
        request_max_body_size=MAX_BODY_BYTES,
        cors_config=CORSConfig(allow_origins=list(config.cors_origins)) if config.cors_origins else None,
        openapi_config=OpenAPIConfig(title="pa-server", version="1"),
    )


def refusal(_: Request[Any, Any, Any], exc: AgentProxyError) -> Response[dict[str, Any]]:
    """agentproxy's errors as JSON: bad input 400, a path outside the roots 403, no such session 404,
    a directory in use 409; anything else went wrong here (500)."""
    status = 500
    match exc:
        case Forbidden():
            status = 403
        case UnknownSessionError():
            status = 404
        case Busy():
            status = 409
        case UsageError():
            status = 400
    return Response({"status_code": status, "detail": str(exc)}, status_code=status)


def last_event_id(header: str | None) -> int:
    if header is None or not header.strip():
        return 0
    try:
        number = int(header.strip())
    except ValueError:
        raise HTTPException(status_code=400, detail="Last-Event-ID must be an event number") from None
    if number < 0:
        raise HTTPException(status_code=400, detail="Last-Event-ID must be an event number")
    return number


def event_message(number: int, event: Any) -> ServerSentEventMessage:
    return ServerSentEventMessage(data=to_json(event).decode(), event=event_kind(event), id=number)


def done_message(session_id: str, outcome: Any) -> ServerSentEventMessage:
    data = {"session_id": session_id, "status": "unknown", "reason": "", "cost_usd": 0.0, "commit": None}
    if outcome is not None:
        data.update(status=outcome.status, reason=outcome.reason, cost_usd=outcome.cost_usd, commit=outcome.commit)
    return ServerSentEventMessage(data=msgspec.json.encode(data).decode(), event="done")


async def stream(log: SessionLog, after: int, announce: bool) -> AsyncIterator[ServerSentEventMessage]:
    if announce:
        yield ServerSentEventMessage(data=msgspec.json.encode({"session_id": log.session_id}).decode(), event="session")
    async for item in log.follow(after):
        if item is FINISHED:
            yield done_message(log.session_id, log.outcome)
            return
        number, event = item  # type: ignore[misc]
        yield event_message(number, event)


async def replay(session: Any, after: int) -> AsyncIterator[ServerSentEventMessage]:
    """A session no run of this server holds: its stored events, then `done` with how it ended."""
    for number, event in enumerate(session.events[after:], start=after + 1):
        yield event_message(number, event)
    row = session.row
    if row.status != "running":
        outcome = StoredOutcome(status=row.status, reason=row.reason, cost_usd=row.cost_usd, commit=None)
        yield done_message(row.id, outcome)


@dataclass(frozen=True)
class StoredOutcome:
    status: str
    reason: str
    cost_usd: float
    commit: str | None


def session_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "task": row.task,
        "working_dir": row.working_dir,
        "status": row.status,
        "reason": row.reason,
        "cost_usd": row.cost_usd,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }
