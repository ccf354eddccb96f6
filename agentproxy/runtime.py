"""Run one task end to end: start the supervised actor tree, wait for the outcome, stop everything.

This is the Python API behind `pa` (and later the server): ``run_task(task, options)``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pykka

from agentproxy import config, procs, redact
from agentproxy.actors.base import (
    BRIDGE,
    CLARIFIER,
    CONTEXT_KEEPER,
    DISPATCHER,
    INTEGRATOR,
    PLANNER,
    VERIFIER,
    Directory,
)
from agentproxy.actors.clarifier import Clarifier
from agentproxy.actors.claude_worker import ClaudeWorker
from agentproxy.actors.context_keeper import ContextKeeper, Subscriber
from agentproxy.actors.dispatcher import Dispatcher, RunOutcome
from agentproxy.actors.exec_worker import ExecWorker
from agentproxy.actors.integrator import Integrator
from agentproxy.actors.planner import Planner
from agentproxy.actors.supervisor import Supervisor
from agentproxy.actors.verifier import Verifier
from agentproxy.agents.registry import exec_backend
from agentproxy.brain import Brain, OfflineBrain
from agentproxy.knowledge import KnowledgeBoard
from agentproxy.messages import (
    AnyEvent,
    BrainCalled,
    Cancel,
    GetContext,
    Notice,
    OpenSession,
    PeerLost,
    PeersSaid,
    Record,
    RunTask,
    SessionStarted,
    Spent,
)
from agentproxy.options import RunOptions
from agentproxy.secret_files import exclusion_warning
from agentproxy.sessions import Resumption
from agentproxy.store import check_store
from agentproxy.workspace import Workspace, check_repo_state, exclusive

if TYPE_CHECKING:
    from agentproxy.bridge.fleet import Fleet

# How often the waiting thread wakes, so that Ctrl-C is seen promptly.
POLL_S = 0.2
CANCEL_WAIT_S = 20.0
SHUTDOWN_TIMEOUT_S = 30.0


class StopRequest(threading.Event):
    """A cancel of a run from another thread (the Python API's Run.stop), with the reason its outcome gives."""

    def __init__(self) -> None:
        super().__init__()
        self.reason = "stopped"

    def stop(self, reason: str) -> None:
        self.reason = reason
        self.set()


@dataclass(frozen=True)
class ActorClasses:
    """Which class plays each part; tests swap one in to inject a fault."""

    context_keeper: type[ContextKeeper] = ContextKeeper
    planner: type[Planner] = Planner
    clarifier: type[Clarifier] = Clarifier
    verifier: type[Verifier] = Verifier
    integrator: type[Integrator] = Integrator
    dispatcher: type[Dispatcher] = Dispatcher
    worker: type[ClaudeWorker] = ClaudeWorker


def run_task(
    task: str,
    options: RunOptions,
    *,
    brain: Brain | None = None,
    subscribers: Sequence[Subscriber] = (),
    resume: Resumption | None = None,
    store_path: Path | None = None,
    classes: ActorClasses = ActorClasses(),
    timeout_s: float | None = None,
    cancel: threading.Event | None = None,
    fleet: Fleet | None = None,
) -> RunOutcome:
    """Run task in options.working_dir (already prepared) and return how it ended.

    Blocks the calling thread. KeyboardInterrupt, or cancel set from another thread, cancels the run:
    every agent process is killed, the session is recorded as interrupted, and the outcome says so
    (with a StopRequest's reason). fleet: the workers' broker this run shares with others (pa-server's);
    without it, options.listen makes one for this run alone.
    """
    with exclusive(options.working_dir):
        return _run(
            task, options, brain or OfflineBrain(), subscribers, resume, store_path, classes, timeout_s, cancel, fleet
        )


def _run(
    task: str,
    options: RunOptions,
    brain: Brain,
    subscribers: Sequence[Subscriber],
    resume: Resumption | None,
    store_path: Path | None,
    classes: ActorClasses,
    timeout_s: float | None,
    cancel: threading.Event | None,
    fleet: Fleet | None,
) -> RunOutcome:
    # Refused before ensure_repo, so that a bad store or repository state leaves the directory as it was.
    check_store(store_path or config.store_path())
    check_repo_state(options.working_dir)
    subscribers = [*subscribers, *_telemetry()]
    workspace = Workspace(options.working_dir)
    workspace.ensure_repo()
    redactor = redact.for_run(options.working_dir)
    redact.install(redactor)  # the log file and the CLI's error line use the run's redactor too
    directory = Directory()
    outcome: concurrent.futures.Future[RunOutcome] = concurrent.futures.Future()
    board = KnowledgeBoard()
    board.update(agents=options.agents)
    stopping = threading.Event()  # set when the run ends: checks and setup steps still running are abandoned

    def finished(result: RunOutcome) -> None:
        if not outcome.done():
            outcome.set_result(result)

    def record(event: AnyEvent) -> None:
        directory.tell(CONTEXT_KEEPER, Record(event=event))

    def brain_event(event: AnyEvent) -> None:
        record(event)
        if isinstance(event, BrainCalled) and event.cost_usd:
            directory.tell(DISPATCHER, Spent(usd=event.cost_usd, by="brain"))  # against the run's budget

    factories: dict[str, Callable[[str], pykka.ActorRef]] = {
        CONTEXT_KEEPER: lambda name: classes.context_keeper.start(
            name, directory, store_path or config.store_path(), subscribers, board, redactor
        ),
        PLANNER: lambda name: classes.planner.start(name, directory, brain, board),
        CLARIFIER: lambda name: classes.clarifier.start(name, directory, brain, board, options),
        VERIFIER: lambda name: classes.verifier.start(
            name, directory, brain, board, options, store_path or config.store_path(), config.envs_dir(), stopping
        ),
        INTEGRATOR: lambda name: classes.integrator.start(name, directory, options.working_dir),
        DISPATCHER: lambda name: classes.dispatcher.start(name, directory, options, finished),
    }
    session_id = ""  # read by on_escalate, which may fire before the session is open
    own_fleet = fleet is None and options.listen is not None  # pa --listen: this run's own; pa-server: shared
    if own_fleet:
        fleet = _fleet(options)
    if fleet is not None:
        run_key = fleet.attach(_attached(directory, record))
        factories[BRIDGE] = lambda name: _bridge_class().start(name, directory, options, fleet, run_key, brain, board)
    supervisor = Supervisor.start(
        directory,
        factories,
        lambda name, agent: (
            classes.worker.start(name, directory, options)
            if agent == "claude"
            else ExecWorker.start(name, directory, options, exec_backend(agent))
        ),
        remote_worker_factory=lambda name: _remote_agent_class().start(name, directory),
        intensity=options.restart_intensity,
        period_s=options.restart_period_s,
        on_escalate=lambda name, reason: finished(
            RunOutcome(session_id=session_id, status="failed", reason=f"the {name} actor kept crashing: {reason}")
        ),
    )
    brain.events.connect(brain_event)
    try:
        screenshots = [str(p) for p in options.screenshots]
        session_id = directory.ask(
            CONTEXT_KEEPER,
            OpenSession(
                task=task,
                working_dir=str(options.working_dir),
                screenshots=screenshots,
                continue_session=resume.session_id if resume else None,
            ),
        )
        # Each run of a session is its own trace: a continued session's ids must not repeat the first run's.
        trace = session_id if resume is None else f"{session_id}.{secrets.token_hex(4)}"
        record(
            SessionStarted(
                task=task,
                working_dir=str(options.working_dir),
                screenshots=screenshots,
                continued=resume is not None,
                trace=trace,
            )
        )
        if workspace.excluded:
            record(Notice(level="warning", text=exclusion_warning(workspace.excluded)))
        if fleet is not None:
            record(Notice(text=fleet.about))
        directory.ask(
            CONTEXT_KEEPER,
            GetContext(
                working_dir=str(options.working_dir),
                context_dir=str(options.context_dir) if options.context_dir else None,
                screenshots=screenshots,
            ),
        )
        directory.tell(
            DISPATCHER,
            RunTask(
                session_id=session_id,
                trace=trace,
                task=task,
                working_dir=str(options.working_dir),
                screenshots=screenshots,
                plan=resume.plan if resume else None,
                done_subtasks=list(resume.done_subtasks) if resume else [],
                verified_subtasks=list(resume.verified_subtasks) if resume else [],
                agent_sessions=dict(resume.agent_sessions) if resume else {},
                agent_costs=dict(resume.agent_costs) if resume else {},
                agents=dict(resume.agents) if resume else {},
                resume_agent_session=resume.agent_session_id if resume else None,
            ),
        )
        ended = _wait(outcome, directory, session_id, timeout_s, cancel)
        return dataclasses.replace(ended, reason=redactor.redact(ended.reason))
    finally:
        brain.events.connect(None)
        stopping.set()
        if fleet is not None:
            fleet.detach(run_key)
            if own_fleet:
                fleet.stop()
        # This run's commands only: its tree, its worktrees, its environments' setup in them.
        procs.kill_running([options.working_dir, *([config.worktrees_dir(session_id)] if session_id else [])])
        with contextlib.suppress(pykka.Timeout):
            supervisor.stop(block=True, timeout=SHUTDOWN_TIMEOUT_S)
        # Stragglers (a stuck brain call) run on daemon threads: told to stop, not waited for. Only this
        # run's actors: another run in the same process (the server) goes on.
        for name in directory.names():
            if (ref := directory.unbind(name)) is not None:
                ref.stop(block=False)


def _telemetry() -> list[Subscriber]:
    """With AGENTPROXY_ENABLE_TELEMETRY=1, the run's trace and metrics; off, nothing of opentelemetry is imported."""
    from agentproxy.telemetry.ids import enabled

    if not enabled():
        return []
    from agentproxy.telemetry.setup import start
    from agentproxy.telemetry.trace_builder import TraceBuilder

    telemetry = start()
    return [TraceBuilder(telemetry)] if telemetry is not None else []


def _fleet(options: RunOptions) -> Any:
    """The broker for remote workers, bound before any actor starts: a bad address ends the run at once."""
    from agentproxy.bridge.fleet import Fleet  # lazy: zmq only when --listen is given

    assert options.listen is not None
    return Fleet(options.listen)


def _attached(directory: Directory, record: Callable[[AnyEvent], None]) -> Any:
    """How the fleet tells this run's Bridge what the workers say."""
    from agentproxy.bridge.fleet import Attached

    return Attached(
        said=lambda said: directory.tell(BRIDGE, PeersSaid(said=said)),
        lost=lambda peer, reason: directory.tell(BRIDGE, PeerLost(peer=peer, reason=reason)),
        notice=lambda text: record(Notice(level="warning", text=text)),
    )


def _bridge_class() -> Any:
    from agentproxy.actors.bridge import Bridge  # lazy: zmq only when --listen is given

    return Bridge


def _remote_agent_class() -> Any:
    from agentproxy.actors.remote_agent import RemoteAgent

    return RemoteAgent


def _wait(
    outcome: concurrent.futures.Future[RunOutcome],
    directory: Directory,
    session_id: str,
    timeout_s: float | None,
    cancel: threading.Event | None,
) -> RunOutcome:
    waited = 0.0
    try:
        while True:
            if cancel is not None and cancel.is_set():
                reason = cancel.reason if isinstance(cancel, StopRequest) else "stopped"
                return _cancel(outcome, directory, session_id, reason)
            try:
                return outcome.result(timeout=POLL_S)
            except concurrent.futures.TimeoutError:
                waited += POLL_S
                if timeout_s is not None and waited >= timeout_s:
                    return _cancel(outcome, directory, session_id, f"run exceeded its time limit of {timeout_s:g}s")
    except KeyboardInterrupt:
        return _cancel(outcome, directory, session_id, "interrupted (Ctrl-C or SIGTERM)")


def _cancel(
    outcome: concurrent.futures.Future[RunOutcome], directory: Directory, session_id: str, reason: str
) -> RunOutcome:
    directory.tell(DISPATCHER, Cancel(reason=reason))
    try:
        return outcome.result(timeout=CANCEL_WAIT_S)
    except (concurrent.futures.TimeoutError, KeyboardInterrupt):
        return RunOutcome(session_id=session_id, status="interrupted", reason=reason)
