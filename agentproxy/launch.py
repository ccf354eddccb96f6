"""From the CLI's arguments to a finished run: validate, build RunOptions, run, pick the exit code."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from agentproxy import config
from agentproxy.agents.claude import resolve_agent_command
from agentproxy.brain import Brain, OfflineBrain
from agentproxy.errors import UsageError
from agentproxy.options import RunOptions
from agentproxy.policy import parse_deny_patterns
from agentproxy.sessions import Resumption, resumption
from agentproxy.workspace import prepare_workdir

EXIT_CODES = {"done": 0, "failed": 1, "interrupted": 130}


def run_from_cli(args: dict[str, Any]) -> int:
    from agentproxy.runtime import run_task
    from agentproxy.view import JsonView, TextView

    resume = _resumption(args["session"], args["task"])
    task = args["task"] or (resume.task if resume else "")
    # Validate the rest first: the working directory is created when prepared, and bad input
    # should leave nothing behind.
    agent_command = tuple(resolve_agent_command(args["claude_bin"]))
    deny_patterns = parse_deny_patterns(list(args["deny"] or ()))
    screenshots = tuple(_readable_screenshots(args["screenshots"] or ()))
    context_dir = _context_dir(args["context_dir"])
    brain = make_brain(args["model"])
    working_dir = _working_dir(args, resume)
    options = RunOptions(
        working_dir=working_dir,
        agent_command=agent_command,
        model=args["agent_model"],
        checks=tuple(args["checks"] or ()),
        check_timeout_s=args["check_timeout"],
        max_attempts=args["max_attempts"],
        silence_timeout_s=args["agent_silence_timeout"],
        agent_timeout_s=args["agent_timeout"],
        deny_patterns=deny_patterns,
        screenshots=screenshots,
        context_dir=context_dir,
        brain_review=not args["no_qa"],
        ask_human=args["ask_human"],
        ask_human_timeout_s=args["ask_human_timeout"],
    )
    view = JsonView() if args["output"].value == "json" else TextView()
    signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop is a Ctrl-C: clean up, record it
    outcome = run_task(task, options, brain=brain, subscribers=[view], resume=resume)
    return EXIT_CODES[outcome.status]


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
        raise UsageError("GEMINI_API_KEY is set but google-genai is not installed: pip install 'agentproxy[gemini]'") from exc
    from agentproxy.brain.resilient import ResilientBrain

    return ResilientBrain(GeminiBrain(api_key, model))


def _context_dir(given: Path | None) -> Path | None:
    chosen = given or config.saved_contextdir()
    if chosen is not None and not chosen.is_dir():
        raise UsageError(f"the saved context directory {chosen} no longer exists (pa --set-contextdir DIR)")
    return chosen


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
    if resume is not None:
        if args["working_dir"] is not None and args["working_dir"].resolve() != Path(resume.working_dir):
            raise UsageError(f"session {resume.session_id} works in {resume.working_dir}, not {args['working_dir']}")
        return prepare_workdir(Path(resume.working_dir))
    chosen = args["working_dir"] or args["set_workdir"] or config.saved_workdir() or Path.cwd()
    return prepare_workdir(Path(chosen))


def _readable_screenshots(paths: Any) -> list[Path]:
    screenshots = []
    for path in paths:
        resolved = Path(path).expanduser().resolve()
        if not resolved.is_file() or not os.access(resolved, os.R_OK):
            raise UsageError(f"screenshot not readable: {path}")
        screenshots.append(resolved)
    return screenshots
