"""From pa's arguments to a finished run: validate, build RunOptions, run, pick the exit code.

prepare_run is shared by the CLI and the Python API (agentproxy.api): both check their input alike.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentproxy import config
from agentproxy.agents.claude import resolve_agent_command
from agentproxy.agents.prices import load_prices
from agentproxy.agents.registry import backend_named, parse_agents
from agentproxy.blocklist import parse_deny_patterns
from agentproxy.brain import Brain, OfflineBrain
from agentproxy.errors import UsageError
from agentproxy.options import ListenOptions, RunOptions
from agentproxy.sessions import Resumption, resumption
from agentproxy.store import check_store
from agentproxy.workspace import check_repo_state, prepare_workdir

EXIT_CODES = {"done": 0, "failed": 1, "budget": 1, "interrupted": 130}
# A task file bigger than this is a mistake (a log, a binary, /dev/zero), not a task.
MAX_TASK_BYTES = 1_000_000


def read_task(task: str | None, task_file: Path | None) -> str | None:
    """The task of TASK, of -f FILE, or of stdin for TASK `-`, stripped; None when none is given.

    UsageError when both are given, or the text is unreadable, not UTF-8, holds a NUL or is blank.
    """
    if task is not None and task_file is not None:
        raise UsageError("give the task as TASK or with -f FILE, not both")
    if task_file is not None:
        return _task_text(_read_task_file(task_file), f"the task file {task_file}")
    if task == "-":
        return _task_text(sys.stdin.buffer.read(MAX_TASK_BYTES + 1), "the task on stdin")
    if task is None:
        return None
    return task_text(task)


def task_text(task: str) -> str:
    """A task given as text (an argument, or the Python API's), checked like a file's and stripped."""
    # argv carries bytes that are not UTF-8 as lone surrogates: back to those bytes, checked like a file's.
    return _task_text(os.fsencode(task), "the task")


def _read_task_file(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_TASK_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read the task file {path}: {exc.strerror or exc}") from exc


def _task_text(data: bytes, source: str) -> str:
    if len(data) > MAX_TASK_BYTES:
        raise UsageError(f"{source} is longer than {MAX_TASK_BYTES} bytes")
    try:
        text = data.decode("utf-8-sig")  # an editor's byte-order mark is not part of the task
    except UnicodeDecodeError as exc:
        raise UsageError(f"{source} is not valid UTF-8 (byte {exc.start})") from None
    if "\0" in text:  # git, the store and the agent's argv all stop at a NUL
        raise UsageError(f"{source} contains a NUL byte")
    if not text.strip():
        raise UsageError(f"{source} is empty")
    return text.strip()


@dataclass(frozen=True)
class PreparedRun:
    """What runtime.run_task takes for one run, from checked arguments."""

    task: str
    options: RunOptions
    brain: Brain
    resume: Resumption | None


def run_from_cli(args: dict[str, Any]) -> int:
    from agentproxy.runtime import run_task
    from agentproxy.view import JsonView, text_view_for

    run = prepare_run(args)
    view = JsonView() if args["output"].value == "json" else text_view_for(sys.stdout)
    signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop is a Ctrl-C: clean up, record it
    outcome = run_task(run.task, run.options, brain=run.brain, subscribers=[view], resume=run.resume)
    return EXIT_CODES[outcome.status]


def prepare_run(args: dict[str, Any]) -> PreparedRun:
    """pa's parsed arguments (by their Python names, task already read) to a run: UsageError for bad input.

    Everything is checked before the working directory is prepared (created), so that bad input leaves
    nothing behind.
    """
    resume = _resumption(args["session"], args["task"])
    task = args["task"] or (resume.task if resume else "")
    agents = _agents(args["agent"], args["agents"])
    if resume is not None:  # the agents whose sessions the resumed subtasks go on with
        agents += tuple(agent for agent in dict.fromkeys(resume.agents.values()) if agent not in agents)
    # Only the agents the run may use must be installed.
    agent_command = tuple(resolve_agent_command(args["claude_bin"])) if "claude" in agents else ()
    vendor_commands = {name: backend_named(name).resolve(args[f"{name}_bin"]) for name in agents if name != "claude"}
    prices = load_prices(args["agent_prices"])
    deny_patterns = parse_deny_patterns(list(args["deny"] or ()))
    screenshots = tuple(_readable_screenshots(args["screenshots"] or ()))
    context_dir = _context_dir(args["context_dir"])
    listen = listen_options(args)
    if args["best_of"] > 1 and listen is not None and listen.local_slots == 0:
        raise UsageError("--best-of runs its attempts on this machine: --local-slots 0 leaves it no slot")
    brain = make_brain(args["model"])
    check_store(config.store_path())
    working_dir = _working_dir(args, resume)
    options = RunOptions(
        working_dir=working_dir,
        agent_command=agent_command,
        model=args["agent_model"],
        checks=tuple(args["checks"] or ()),
        check_timeout_s=args["check_timeout"],
        setup=args["setup"],
        max_attempts=args["max_attempts"],
        silence_timeout_s=args["agent_silence_timeout"],
        agent_timeout_s=args["agent_timeout"],
        deny_patterns=deny_patterns,
        allow_tools=tuple(args["allow_tools"] or ()),
        screenshots=screenshots,
        context_dir=context_dir,
        brain_review=not args["no_qa"],
        ask_human=args["ask_human"],
        ask_human_timeout_s=args["ask_human_timeout"],
        rate_limit_max_wait_s=args["max_rate_limit_wait"],
        parallel=args["parallel"],
        max_budget_usd=args["max_budget_usd"],
        check_parallel=args["check_parallel"],
        listen=listen,
        agents=agents,
        vendor_commands=vendor_commands,
        agent_prices=prices,
        share_gemini_key=args["share_gemini_key"],
        best_of=args["best_of"],
    )
    return PreparedRun(task=task, options=options, brain=brain, resume=resume)


def _agents(agent: str, agents: str | None) -> tuple[str, ...]:
    """--agent or --agents: the backends the run may use, its default first."""
    if agents is None:
        return (backend_named(agent).name,)
    if agent != "claude":
        raise UsageError("give --agent or --agents, not both")
    return parse_agents(agents)


def listen_options(args: dict[str, Any]) -> ListenOptions | None:
    """--listen and its companions; those companions without --listen are a mistake worth saying."""
    endpoint, insecure = args["listen"], args["listen_insecure"]
    if endpoint and insecure:
        raise UsageError("--listen and --listen-insecure exclude each other: choose one")
    if not endpoint and not insecure:
        if args["authorized_keys"] is not None or args["local_slots"] is not None:
            raise UsageError("--authorized-keys and --local-slots go with --listen tcp://ADDR:PORT")
        return None
    try:
        from agentproxy.bridge.keys import is_loopback  # lazy: zmq only with --listen
    except ImportError as exc:
        raise UsageError(f"--listen needs pyzmq: pip install 'agentproxy[bridge]' ({exc})") from None
    local = is_loopback(endpoint or insecure)  # also a one-line error for an address that is not tcp://HOST:PORT
    if insecure and not local:
        raise UsageError(f"--listen-insecure {insecure}: only a loopback address (tcp://127.0.0.1:PORT); use --listen")
    return ListenOptions(
        endpoint=endpoint or insecure,
        secure=not insecure,
        authorized_keys=args["authorized_keys"],
        local_slots=args["local_slots"],
        heartbeat_s=args["heartbeat"],
        liveness=args["liveness"],
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def make_brain(model: str | None) -> Brain:
    """The Gemini brain when a key is set (GEMINI_API_KEY, or GOOGLE_API_KEY), else the offline one."""
    api_key = os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
    if not api_key:
        return OfflineBrain()
    try:
        from agentproxy.brain.gemini import GeminiBrain
    except ImportError as exc:
        raise UsageError(
            "GEMINI_API_KEY is set but google-genai is not installed: pip install 'agentproxy[gemini]'"
        ) from exc
    from agentproxy.brain.resilient import ResilientBrain

    return ResilientBrain(GeminiBrain(api_key, model))


def _context_dir(given: Path | None) -> Path | None:
    if given is not None:
        resolved = given.expanduser().resolve()
        if not resolved.is_dir():
            raise UsageError(f"--context-dir {given}: not an existing directory")
        return resolved
    saved = config.saved_contextdir()
    if saved is not None and not saved.is_dir():
        raise UsageError(f"the saved context directory {saved} no longer exists (pa --set-contextdir DIR)")
    return saved


def _resumption(session: str | None, task: str | None) -> Resumption | None:
    if session is None:
        return None
    found = resumption(session)
    if task is None:
        return found
    # New work in an old session: only the agent session and the directory carry over.
    return Resumption(
        session_id=found.session_id,
        working_dir=found.working_dir,
        task=task,
        agent_session_id=found.agent_session_id,
    )


def _working_dir(args: dict[str, Any], resume: Resumption | None) -> Path:
    """The directory to work in, checked (read-only) before it is created."""
    if resume is not None:
        if args["working_dir"] is not None and args["working_dir"].resolve() != Path(resume.working_dir):
            raise UsageError(f"session {resume.session_id} works in {resume.working_dir}, not {args['working_dir']}")
        chosen = Path(resume.working_dir)
    else:
        chosen = Path(args["working_dir"] or args["set_workdir"] or config.saved_workdir() or Path.cwd())
    check_repo_state(chosen)
    return prepare_workdir(chosen)


def _readable_screenshots(paths: Any) -> list[Path]:
    screenshots = []
    for path in paths:
        try:
            resolved = Path(path).expanduser().resolve()
            readable = resolved.is_file() and os.access(resolved, os.R_OK)
        except (OSError, RuntimeError):  # a name too long, an unknown ~user
            readable = False
        if not readable:
            raise UsageError(f"screenshot not readable: {str(path)[:200]}")
        screenshots.append(resolved)
    return screenshots
