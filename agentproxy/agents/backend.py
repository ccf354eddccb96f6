"""One interface to every vendor's agent CLI: how it is found and started, what its stream means, what it costs.

Claude Code keeps one process for a whole agent session and takes turns, answers and tool approvals
over its stdin (the control protocol): the ClaudeWorker drives it (agents.claude). The others are
``ExecBackend``s: one process per turn (``codex exec``, ``gemini -p``) that goes on in the same agent
session by resuming it; the ExecWorker drives them through ``turn_argv`` and a ``StreamReader``,
which turns the CLI's stdout lines into the vendor-neutral readings below.
"""

from __future__ import annotations

import abc
import os
import shlex
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from agentproxy.errors import AgentNotFoundError, UsageError


class Opened(msgspec.Struct, frozen=True):
    """The agent session is open: its id resumes it."""

    session_id: str
    model: str = ""


class Said(msgspec.Struct, frozen=True):
    text: str


class UsedTool(msgspec.Struct, frozen=True):
    id: str
    tool: str
    input: dict[str, Any] = {}
    detail: str = ""  # what the call is about, when the input's usual keys do not say it
    edits: bool = False  # it changes files
    runs_command: bool = False  # a shell command: it may or may not change files


class ToolReturned(msgspec.Struct, frozen=True):
    """What a tool call gave back: the same call with the same result, again and again, is a loop."""

    id: str
    output: str = ""
    is_error: bool = False


class TurnEnded(msgspec.Struct, frozen=True):
    """The turn is over: ok with the agent's final text, or failed with the reason the CLI gave."""

    ok: bool
    text: str = ""
    error: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    models: dict[str, tuple[int, int]] = {}  # model -> (input, output) tokens, where the CLI tells them apart
    api_error_status: int | None = None


class Unreadable(msgspec.Struct, frozen=True):
    error: str


Reading = Opened | Said | UsedTool | ToolReturned | TurnEnded | Unreadable


class StreamReader(abc.ABC):
    """Reads one turn's stdout, line by line; it may keep state across the lines of its turn."""

    @abc.abstractmethod
    def read(self, line: str) -> list[Reading]: ...

    def at_exit(self, returncode: int | None, stderr_tail: str) -> TurnEnded | None:
        """The end of a turn whose stream said none (None: the stream did say it)."""
        return None


class AgentBackend(abc.ABC):
    """A vendor's agent CLI, as the supervisor finds it and sets its environment."""

    name: str  # as --agent spells it
    title: str  # as people call it
    binary: str  # the executable on PATH
    command_variable: str  # the environment variable that names another command
    install_hint: str

    def resolve(self, given: str | None) -> tuple[str, ...]:
        """The argv prefix that starts the agent: the flag's value, else the variable's, else the binary on PATH."""
        return tuple(resolve_command(given or os.environ.get(self.command_variable) or self.binary, self))

    @abc.abstractmethod
    def environment(self, base: Mapping[str, str], *, brain_key: Mapping[str, str]) -> dict[str, str]:
        """The agent's environment from the user's, the supervisor's keys already out; brain_key: the
        supervisor's own Gemini key, when the user shares it with this agent (--share-gemini-key)."""


class ExecBackend(AgentBackend):
    """A CLI that runs one process per turn and goes on in its agent session by resuming it."""

    cumulative_usage: bool = False  # its turns report the agent session's token totals so far, not the turn's

    @abc.abstractmethod
    def turn_argv(
        self, command: Sequence[str], prompt: str, *, cwd: Path, resume: str | None, model: str | None
    ) -> list[str]:
        """The argv of one turn: a new agent session, or (resume) one turn more in that one."""

    @abc.abstractmethod
    def reader(self) -> StreamReader: ...

    def configured_model(self, env: Mapping[str, str]) -> str:
        """The model the user's own configuration of the CLI picks, where its stream does not say it."""
        return ""


def resolve_command(spec: str, backend: AgentBackend) -> list[str]:
    """spec (may hold arguments, shell-quoted) as argv with its executable found on PATH."""
    flag = f"--{backend.name}-bin / {backend.command_variable}"
    try:
        argv = shlex.split(spec)
    except ValueError as exc:  # an unclosed quote or a trailing backslash
        raise UsageError(f"the {backend.title} command ({flag}) cannot be parsed: {exc}") from exc
    if not argv:
        raise AgentNotFoundError(f"the {backend.title} command is empty: set {flag}")
    found = shutil.which(argv[0])
    if found is None:
        raise AgentNotFoundError(
            f"{backend.title} not found: {argv[0]!r} is not an executable on PATH;"
            f" install it ({backend.install_hint}) or pass {flag}"
        )
    return [found, *argv[1:]]
