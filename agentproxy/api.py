"""The Python API, and pa-server's foundation: run tasks, follow their events, stop them, read past sessions.

    for item in agentproxy.run_task("Add a README", "path/to/project", parallel=2):
        print(item)  # each event as it happens, then the RunOutcome

A task's arguments are checked as `pa` checks its command line (the same options, by their Python
names, through pa's own parser); the task then runs on a thread of its own, so that several run at
once in one process (one per repository, as for `pa`). Light to import: the actor system loads when
a task starts.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from agentproxy.errors import UsageError

if TYPE_CHECKING:
    from agentproxy.actors.dispatcher import RunOutcome
    from agentproxy.bridge.fleet import Fleet
    from agentproxy.launch import PreparedRun
    from agentproxy.messages import AnyEvent, Event
    from agentproxy.options import ListenOptions
    from agentproxy.store import SessionRow, SubtaskRow

log = logging.getLogger("agentproxy.api")

# pa's parameters that are no option of a run: the command line's own actions, and start_task's parameters.
_NOT_RUN_OPTIONS = frozenset(
    {
        "task",
        "task_file",
        "working_dir",
        "session",
        "screenshots",
        "claude_bin",
        "list_sessions",
        "set_workdir",
        "show_workdir",
        "set_contextdir",
        "show_contextdir",
        "show_checks",
        "run_checks",
        "discard",
        "output",
        "demo",
        "version",
        # given together as listen=ListenOptions(...)
        "listen_insecure",
        "authorized_keys",
        "local_slots",
        "heartbeat",
        "liveness",
    }
)
# How long Run.session_id waits for the session to open: a store write and a few git queries away.
SESSION_OPEN_WAIT_S = 30.0
STOPPED_BY_CALLER = "stopped: the caller stopped reading the run's events"


def start_task(
    task: str,
    working_dir: str | Path,
    *,
    session_id: str | None = None,
    screenshots: Sequence[str | Path] = (),
    claude_bin: str | None = None,
    fleet: Fleet | None = None,
    **options: Any,
) -> Run:
    """Start task in working_dir on a thread of its own and return at once; the Run follows and stops it.

    session_id continues that session with task as more work, or resumes its unfinished task when task
    is empty (pa -s ID). options are pa's run options by their Python names (checks, parallel, no_qa,
    max_budget_usd, agent_model, model, listen=ListenOptions(...), ...). Bad arguments raise UsageError
    before anything starts; the working directory is prepared (created) as pa prepares it. fleet: remote
    workers shared with other runs (pa-server's broker), with listen= giving this run's local slots. The interpreter
    does not exit before the run has ended: stop() it to end it sooner.
    """
    from agentproxy import launch

    prepared = launch.prepare_run(_arguments(task, working_dir, session_id, screenshots, claude_bin, options))
    run = Run(prepared, fleet)
    with _runs_lock:
        _runs.append(run)
    run._thread.start()
    return run


def run_task(
    task: str,
    working_dir: str | Path,
    *,
    session_id: str | None = None,
    screenshots: Sequence[str | Path] = (),
    claude_bin: str | None = None,
    **options: Any,
) -> Iterator[AnyEvent | RunOutcome]:
    """Run task (arguments as for start_task): yields its events as they happen, then its RunOutcome.

    Starts when iterated; closing the generator early stops the run and returns once its agents are gone.
    An error that ended the run is raised in place of the outcome.
    """
    run = start_task(
        task, working_dir, session_id=session_id, screenshots=screenshots, claude_bin=claude_bin, **options
    )
    try:
        yield from run.events()
        yield run._result()
    finally:
        if not run.done:
            run.stop(STOPPED_BY_CALLER)
            run._join()


async def arun_task(
    task: str,
    working_dir: str | Path,
    *,
    session_id: str | None = None,
    screenshots: Sequence[str | Path] = (),
    claude_bin: str | None = None,
    **options: Any,
) -> AsyncIterator[AnyEvent | RunOutcome]:
    """run_task for asyncio: the run's thread hands each event to the loop; the loop never blocks on the run.

    Closing it early (aclose, or the task cancelled) stops the run and waits, off the loop, for its end.
    """
    loop = asyncio.get_running_loop()
    arrived: asyncio.Queue[AnyEvent | None] = asyncio.Queue()  # None: the run has ended
    start = functools.partial(
        start_task, task, working_dir, session_id=session_id, screenshots=screenshots, claude_bin=claude_bin, **options
    )

    def hand_over(event: AnyEvent | None) -> None:  # on the run's thread
        loop.call_soon_threadsafe(arrived.put_nowait, event)

    run = await _start_off_loop(loop, start)
    past, detach = run._follow(hand_over, functools.partial(hand_over, None))
    try:
        for event in past:
            yield event
        while (arrival := await arrived.get()) is not None:
            yield arrival
        yield run._result()
    finally:
        detach()
        if not run.done:
            run.stop(STOPPED_BY_CALLER)
            await asyncio.to_thread(run._join)


async def _start_off_loop(loop: asyncio.AbstractEventLoop, start: Callable[[], Run]) -> Run:
    """start_task on a worker thread (it reads the store and runs git); a run started after a cancel is stopped."""
    starting = loop.run_in_executor(None, start)
    try:
        return await asyncio.shield(starting)
    except asyncio.CancelledError:
        starting.add_done_callback(_stop_orphan)
        raise


def _stop_orphan(starting: asyncio.Future[Run]) -> None:
    if not starting.cancelled() and starting.exception() is None:
        starting.result().stop("stopped: the caller was cancelled while the run started")


@dataclass
class _Follower:
    on_event: Callable[[AnyEvent], None]
    on_end: Callable[[], None] | None = None


class Run:
    """One task running on a thread of its own (made by start_task): its events, its outcome, a way to stop it."""

    def __init__(self, prepared: PreparedRun, fleet: Fleet | None = None) -> None:
        from agentproxy.runtime import StopRequest

        self.task = prepared.task
        self.working_dir = prepared.options.working_dir
        self._prepared = prepared
        self._fleet = fleet
        self._stop_request = StopRequest()
        self._changed = threading.Condition()
        self._events: list[AnyEvent] = []
        self._followers: list[_Follower] = []
        self._opened: str | None = None  # the session's id, once its first event is recorded
        self._finished = False
        self._outcome: RunOutcome | None = None
        self._error: BaseException | None = None
        # Not a daemon: an ending interpreter waits for the run to kill its agents and record how it ended.
        self._thread = threading.Thread(target=self._main, name=f"agentproxy run in {self.working_dir}")

    @property
    def session_id(self) -> str | None:
        """The session's id, waiting (up to SESSION_OPEN_WAIT_S) for it to open; None if the run ended before."""
        with self._changed:
            self._changed.wait_for(lambda: self._opened is not None or self._finished, SESSION_OPEN_WAIT_S)
            return self._opened

    @property
    def done(self) -> bool:
        return self._finished

    @property
    def outcome(self) -> RunOutcome | None:
        """How the run ended; None while it runs, or when an error ended it."""
        return self._outcome

    @property
    def error(self) -> BaseException | None:
        """The exception that ended the run (a UsageError, a StoreError, ...), which wait() raises."""
        return self._error

    def events_so_far(self) -> list[AnyEvent]:
        with self._changed:
            return list(self._events)

    def events(self) -> Iterator[AnyEvent]:
        """Every event from the first, then each new one as it comes, until the run ends; one iterator per consumer."""
        seen = 0
        while batch := self._after(seen):
            seen += len(batch)
            yield from batch

    def subscribe(self, callback: Callable[[AnyEvent], None]) -> Callable[[], None]:
        """Call callback with each new event (none from before) on the thread delivering them; returns unsubscribe."""
        _, unsubscribe = self._attach(_Follower(callback))
        return unsubscribe

    def stop(self, reason: str = "stopped") -> None:
        """Cancel the run as Ctrl-C does (its agents killed, the session interrupted); returns at once."""
        self._stop_request.stop(reason)

    def wait(self, timeout: float | None = None) -> RunOutcome | None:
        """The outcome once the run ends, or None if it is still running after timeout seconds.

        Raises the exception that ended the run, if one did.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: self._finished, timeout):
                return None
        return self._result()

    def _result(self) -> RunOutcome:
        self._join()
        if self._error is not None:
            raise self._error
        assert self._outcome is not None  # the run's thread sets one of the two before it finishes
        return self._outcome

    def _join(self) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._finished)

    def _after(self, seen: int) -> list[AnyEvent]:
        """The events after the first seen, waiting for one; empty once the run has ended with no more."""
        with self._changed:
            self._changed.wait_for(lambda: len(self._events) > seen or self._finished)
            return self._events[seen:]

    def _follow(
        self, on_event: Callable[[AnyEvent], None], on_end: Callable[[], None]
    ) -> tuple[list[AnyEvent], Callable[[], None]]:
        """The events so far, and each later one to on_event, with none lost or repeated; on_end once it ends."""
        past, detach = self._attach(_Follower(on_event, on_end))
        if self._finished:
            on_end()  # ended before it was followed: nothing else will say so
        return past, detach

    def _attach(self, follower: _Follower) -> tuple[list[AnyEvent], Callable[[], None]]:
        with self._changed:
            if not self._finished:
                self._followers.append(follower)
            return list(self._events), functools.partial(self._detach, follower)

    def _detach(self, follower: _Follower) -> None:
        with self._changed:
            if follower in self._followers:
                self._followers.remove(follower)

    def _main(self) -> None:
        from agentproxy.runtime import run_task as run_in_this_thread

        prepared, outcome, error = self._prepared, None, None
        try:
            outcome = run_in_this_thread(
                prepared.task,
                prepared.options,
                brain=prepared.brain,
                subscribers=[self._record],
                resume=prepared.resume,
                cancel=self._stop_request,
                fleet=self._fleet,
            )
        except BaseException as exc:  # raised again by wait() in the caller's thread
            error = exc
        self._finish(outcome, error)

    def _record(self, recorded: Event) -> None:
        """The run's subscriber: keep the event, wake the iterators, tell the followers."""
        event = cast("AnyEvent", recorded)  # every event recorded is one of AnyEvent
        with self._changed:
            self._events.append(event)
            if self._opened is None and event.session_id:
                self._opened = event.session_id
            followers = list(self._followers)
            self._changed.notify_all()
        for follower in followers:
            _call(follower.on_event, event)

    def _finish(self, outcome: RunOutcome | None, error: BaseException | None) -> None:
        with self._changed:
            self._outcome, self._error, self._finished = outcome, error, True
            followers, self._followers = self._followers, []
            self._changed.notify_all()
        with _runs_lock:
            _runs.remove(self)
        for follower in followers:
            if follower.on_end is not None:
                _call(follower.on_end)


def _call(callback: Callable[..., None], *args: Any) -> None:
    try:
        callback(*args)
    except Exception:  # one broken consumer must not starve the others, nor the run
        log.exception("a consumer of a run's events failed")


# The runs started by this process that have not ended yet.
_runs: list[Run] = []
_runs_lock = threading.Lock()


def running() -> list[Run]:
    """The runs started by this process that are still going."""
    with _runs_lock:
        return [run for run in _runs if not run.done]


def stop_session(session_id: str) -> bool:
    """Stop the run of this session (its full id) started by this process; False if none runs it here."""
    for run in running():
        if run._opened == session_id:
            run.stop()
            return True
    return False


def list_sessions(limit: int = 50) -> list[SessionRow]:
    """The recorded sessions, newest first (those of every pa, not only this process's)."""
    from agentproxy import sessions

    return sessions.list_sessions(limit=limit)


@dataclass(frozen=True)
class SessionRecord:
    row: SessionRow
    events: list[AnyEvent]
    tasks: list[str]  # every task given to the session, the first one first
    subtasks: list[SubtaskRow]


def get_session(id_or_prefix: str) -> SessionRecord:
    """A recorded session (its id, or a unique prefix of it) and its events; UnknownSessionError if none."""
    from agentproxy import config
    from agentproxy.store import SessionStore

    with SessionStore(config.store_path()) as store:
        store.mark_interrupted_orphans()  # a session whose pa died reads as interrupted, as in the listing
        row = store.get(id_or_prefix)
        return SessionRecord(
            row=row, events=store.events(row.id), tasks=store.tasks(row.id), subtasks=store.subtasks(row.id)
        )


def event_kind(event: AnyEvent) -> str:
    """The event's kind, as in its JSON ("session_started", "agent_said", ...)."""
    return str(type(event).__struct_config__.tag)


# -- pa's arguments from a call -----------------------------------------------------------------


def _arguments(
    task: str,
    working_dir: str | Path,
    session_id: str | None,
    screenshots: Sequence[str | Path],
    claude_bin: str | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    """What pa would have for the equivalent command line, parsed by pa's own parser: its checks, its defaults."""
    from agentproxy import launch

    params = _pa_parameters()
    unknown = sorted(name for name in options if name not in params or name in _NOT_RUN_OPTIONS)
    if unknown:
        raise UsageError(f"unknown option{'s' * (len(unknown) > 1)}: {', '.join(unknown)}")
    if not task and session_id is None:
        raise UsageError("no task given: a task, or the session_id of a session to resume")
    given = {
        **options,
        "working_dir": working_dir,
        "session": session_id,
        "screenshots": screenshots,
        "claude_bin": claude_bin,
    }
    listen = given.pop("listen", None)
    argv = [token for name, value in given.items() for token in _option_argv(params[name], value)]
    args = _parse(argv + _listen_argv(listen))
    args["task"] = launch.task_text(task) if task else None
    return args


@functools.cache
def _pa_command() -> Any:
    import typer

    from agentproxy import cli

    return typer.main.get_command(cli.app)


def _pa_parameters() -> dict[str, Any]:
    return {param.name: param for param in _pa_command().params}


def _parse(argv: list[str]) -> dict[str, Any]:
    """pa's arguments from argv; a bad value is a UsageError naming the Python name of its option."""
    from agentproxy.cli import ClickUsageError

    try:
        return dict(_pa_command().make_context("pa", argv).params)
    except ClickUsageError as exc:
        cause = exc.__cause__
        param = getattr(cause, "param", None)
        if param is None:
            raise UsageError(str(exc.format_message())) from None
        raise UsageError(f"{param.name}: {str(getattr(cause, 'message', cause)).rstrip('.')}") from None


def _option_argv(param: Any, value: Any) -> list[str]:
    """param=value as pa's command line spells it (--long-flag=VALUE, never split from its flag)."""
    flag = param.opts[-1]  # the long spelling
    if value is None:
        return []
    if getattr(param, "is_flag", False):
        if not isinstance(value, bool):
            raise UsageError(f"{param.name} is True or False, not {value!r}")
        return [flag] if value else []
    if param.multiple:
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise UsageError(f"{param.name} is a list, not {value!r}")
        return [f"{flag}={_text(param.name, item)}" for item in value]
    return [f"{flag}={_text(param.name, value)}"]


def _text(name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float | os.PathLike):
        raise UsageError(f"{name} takes a text, a number or a path, not {type(value).__name__}")
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)


def _listen_argv(listen: ListenOptions | None) -> list[str]:
    """ListenOptions as pa's --listen flags, so that they are checked as pa checks those."""
    from agentproxy.options import ListenOptions

    if listen is None:
        return []
    if not isinstance(listen, ListenOptions):
        raise UsageError(f"listen is a ListenOptions or None, not {type(listen).__name__}")
    argv = [f"{'--listen' if listen.secure else '--listen-insecure'}={listen.endpoint}"]
    argv += [f"--heartbeat={listen.heartbeat_s}", f"--liveness={listen.liveness}"]
    if listen.authorized_keys is not None:
        argv.append(f"--authorized-keys={os.fspath(listen.authorized_keys)}")
    if listen.local_slots is not None:
        argv.append(f"--local-slots={listen.local_slots}")
    return argv
