"""The Codex CLI (npm @openai/codex) as an agent backend: ``codex exec --json``, resumed by its thread id.

It uses the user's own Codex configuration (CODEX_HOME, default ~/.codex: provider, model, endpoint), as
running ``codex`` by hand would. ``exec`` never asks for approval: what it may do is its sandbox
(``workspace-write``: writes confined to the worktree) and what the checks and the review find afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from agentproxy.agents.backend import (
    ExecBackend,
    Opened,
    Reading,
    Said,
    StreamReader,
    ToolReturned,
    TurnEnded,
    Unreadable,
    UsedTool,
)

SANDBOX = "workspace-write"


class _Item(msgspec.Struct, frozen=True):
    id: str = ""
    type: str = ""
    text: str = ""
    message: str = ""
    command: str = ""
    aggregated_output: str = ""
    exit_code: int | None = None
    status: str = ""
    changes: list[dict[str, Any]] = []
    server: str = ""
    tool: str = ""
    query: str = ""


class _Usage(msgspec.Struct, frozen=True):
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_output_tokens: int = 0


class _Error(msgspec.Struct, frozen=True):
    message: str = ""


class _Event(msgspec.Struct, frozen=True):
    type: str
    thread_id: str = ""
    item: _Item | None = None
    usage: _Usage | None = None
    error: _Error | None = None
    message: str = ""


_decoder = msgspec.json.Decoder(_Event)


class CodexStream(StreamReader):
    """One ``codex exec --json`` turn: its last agent message is the answer."""

    def __init__(self) -> None:
        self.answer = ""
        self.errors: list[str] = []
        self.started: set[str] = set()  # items whose start was read: their completion only returns

    def read(self, line: str) -> list[Reading]:
        try:
            event = _decoder.decode(line)
        except msgspec.DecodeError as exc:
            return [Unreadable(error=str(exc))]
        match event.type:
            case "thread.started":
                return [Opened(session_id=event.thread_id)]
            case "item.started" if event.item is not None:
                return self.item_started(event.item)
            case "item.completed" if event.item is not None:
                return self.item_completed(event.item)
            case "turn.completed":
                usage = event.usage or _Usage()
                return [
                    TurnEnded(
                        ok=True,
                        text=self.answer,
                        input_tokens=usage.input_tokens,
                        output_tokens=usage.output_tokens + usage.reasoning_output_tokens,
                        cached_tokens=usage.cached_input_tokens,
                    )
                ]
            case "turn.failed":
                message = event.error.message if event.error else ""
                return [TurnEnded(ok=False, error=message or "; ".join(self.errors) or "the turn failed")]
            case "error":
                self.errors.append(event.message)
        return []

    def item_started(self, item: _Item) -> list[Reading]:
        used = tool_call(item)
        if used is None:
            return []
        self.started.add(item.id)
        return [used]

    def item_completed(self, item: _Item) -> list[Reading]:
        if item.type == "agent_message":
            self.answer = item.text
            return [Said(text=item.text)]
        if item.type == "error":
            self.errors.append(item.message)
            return []
        used = tool_call(item)
        if used is None:
            return []
        returned = ToolReturned(
            id=item.id,
            output=item.aggregated_output or item.status,
            is_error=item.status == "failed" or (item.exit_code or 0) != 0,
        )
        return [returned] if item.id in self.started else [used, returned]

    def at_exit(self, returncode: int | None, stderr_tail: str) -> TurnEnded | None:
        reason = "; ".join(error for error in self.errors if error) or stderr_tail.strip()[-300:]
        return TurnEnded(ok=False, error=f"exit code {returncode}: {reason or 'no reason given'}")


def tool_call(item: _Item) -> UsedTool | None:
    """The tool call an item is, if it is one."""
    match item.type:
        case "command_execution":
            return UsedTool(id=item.id, tool="shell", input={"command": item.command}, runs_command=True)
        case "file_change":
            paths = [str(change.get("path", "")) for change in item.changes]
            return UsedTool(id=item.id, tool="apply_patch", input={"paths": paths}, detail=", ".join(paths), edits=True)
        case "mcp_tool_call":
            return UsedTool(id=item.id, tool=f"{item.server}.{item.tool}")
        case "web_search":
            return UsedTool(id=item.id, tool="web_search", input={"query": item.query})
    return None


class CodexBackend(ExecBackend):
    name = "codex"
    title = "Codex CLI"
    binary = "codex"
    command_variable = "CODEX_BIN"
    install_hint = "npm i -g @openai/codex"
    cumulative_usage = True  # turn.completed sums every request of the thread, earlier runs included

    def turn_argv(
        self, command: Sequence[str], prompt: str, *, cwd: Path, resume: str | None, model: str | None
    ) -> list[str]:
        # Every option before `resume`: --sandbox and --cd are refused after it.
        argv = [*command, "exec", "--json", "--skip-git-repo-check", "--sandbox", SANDBOX, "--cd", str(cwd)]
        if model:
            argv += ["--model", model]
        if resume:
            argv += ["resume", resume]
        return [*argv, "--", prompt]

    def environment(self, base: Mapping[str, str], *, brain_key: Mapping[str, str]) -> dict[str, str]:
        return dict(base)

    def reader(self) -> StreamReader:
        return CodexStream()

    def configured_model(self, env: Mapping[str, str]) -> str:
        """`model` of $CODEX_HOME/config.toml (default ~/.codex): what the turn's tokens are priced as."""
        home = env.get("CODEX_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".codex")
        try:
            config = msgspec.toml.decode((Path(home) / "config.toml").read_bytes(), type=dict[str, Any])
        except (OSError, msgspec.DecodeError):
            return ""  # no configuration, or one codex itself will complain about
        model = config.get("model")
        return model if isinstance(model, str) else ""


CODEX = CodexBackend()
