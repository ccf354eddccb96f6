"""The Gemini CLI (npm @google/gemini-cli) as an agent backend: ``gemini -p PROMPT --output-format stream-json``.

It uses the user's own ``~/.gemini`` settings and credentials (``~/.gemini/.env``). The supervisor's brain
key (GEMINI_API_KEY, and GOOGLE_GEMINI_BASE_URL with it) reaches this agent only with ``--share-gemini-key``.
A headless turn cannot ask the host anything (``--approval-mode default`` only withholds the tools that
need approval), so it runs with ``--approval-mode yolo``: what it may do is bounded by the CLI's own
settings (its sandbox, excluded tools) and judged afterwards by the checks and the review. An API error
ends the turn with a ``result`` of status error whose message says ``[API Error: ...]``.
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

EDIT_TOOLS = frozenset({"write_file", "replace", "edit"})
SHELL_TOOLS = frozenset({"run_shell_command"})
# What the CLI's exit codes mean when it ends without a result line.
EXIT_REASONS = {
    41: "the Gemini CLI is not signed in (set an auth type in ~/.gemini/settings.json, or an API key)",
    42: "the Gemini CLI rejected its input",
    44: "the Gemini CLI's sandbox could not start",
    52: "the Gemini CLI's configuration is invalid",
    53: "the Gemini CLI reached its turn limit",
    55: "the Gemini CLI does not trust the working directory (GEMINI_CLI_TRUST_WORKSPACE=true trusts it)",
}


class _Event(msgspec.Struct, frozen=True):
    type: str
    session_id: str = ""
    model: str = ""
    role: str = ""
    content: str = ""
    delta: bool = False
    tool_name: str = ""
    tool_id: str = ""
    parameters: dict[str, Any] = {}
    status: str = ""
    output: Any = None
    message: str = ""
    severity: str = ""
    error: Any = None
    stats: dict[str, Any] = {}


_decoder = msgspec.json.Decoder(_Event)


class GeminiStream(StreamReader):
    """One turn's stream-json: assistant text arrives in deltas; the text after the last tool call is the answer."""

    def __init__(self) -> None:
        self.text: list[str] = []  # the assistant's words since the last tool call
        self.answer = ""  # its words after the last tool call, once the turn has ended
        self.errors: list[str] = []

    def read(self, line: str) -> list[Reading]:
        try:
            event = _decoder.decode(line)
        except msgspec.DecodeError as exc:
            return [Unreadable(error=str(exc))]
        match event.type:
            case "init":
                return [Opened(session_id=event.session_id, model=event.model)]
            case "message" if event.role == "assistant":
                self.text.append(event.content)
                return []
            case "tool_use":
                return [*self.said(), used(event)]
            case "tool_result":
                output = event.output
                text = (
                    output
                    if isinstance(output, str)
                    else ""
                    if output is None
                    else msgspec.json.encode(output).decode()
                )
                return [ToolReturned(id=event.tool_id, output=text, is_error=event.status != "success")]
            case "error":
                self.errors.append(event.message or str(event.error or ""))
                return []
            case "result":
                return [*self.said(), self.ended(event)]
        return []

    def said(self) -> list[Reading]:
        text = "".join(self.text)
        self.answer = text
        self.text = []
        return [Said(text=text)] if text.strip() else []

    def ended(self, result: _Event) -> TurnEnded:
        stats = result.stats or {}
        models = {
            name: (int(use.get("input_tokens", 0)), int(use.get("output_tokens", 0)))
            for name, use in (stats.get("models") or {}).items()
            if isinstance(use, dict)
        }
        ok = result.status == "success"
        return TurnEnded(
            ok=ok,
            text=self.answer if ok else "",
            error="" if ok else error_text(result.error) or "; ".join(self.errors) or f"status {result.status}",
            input_tokens=int(stats.get("input_tokens", 0)),
            output_tokens=int(stats.get("output_tokens", 0)),
            cached_tokens=int(stats.get("cached", 0)),
            models=models,
            api_error_status=api_status(result.error),
        )

    def at_exit(self, returncode: int | None, stderr_tail: str) -> TurnEnded | None:
        reason = EXIT_REASONS.get(returncode or 0) or "; ".join(self.errors) or stderr_tail.strip()[-300:]
        return TurnEnded(ok=False, error=f"exit code {returncode}: {reason}")


def used(event: _Event) -> UsedTool:
    return UsedTool(
        id=event.tool_id,
        tool=event.tool_name,
        input=event.parameters,
        edits=event.tool_name in EDIT_TOOLS,
        runs_command=event.tool_name in SHELL_TOOLS,
    )


def error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error.get("type") or "")
    return str(error or "")


def api_status(error: Any) -> int | None:
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, int) and 400 <= code < 600 else None


class GeminiCliBackend(ExecBackend):
    name = "gemini"
    title = "Gemini CLI"
    binary = "gemini"
    command_variable = "GEMINI_CLI_BIN"
    install_hint = "npm i -g @google/gemini-cli"

    def turn_argv(
        self, command: Sequence[str], prompt: str, *, cwd: Path, resume: str | None, model: str | None
    ) -> list[str]:
        argv = [*command, "--output-format", "stream-json", "--approval-mode", "yolo"]
        if resume:
            argv += ["--resume", resume]
        if model:
            argv += ["--model", model]
        return [*argv, "-p", prompt]

    def environment(self, base: Mapping[str, str], *, brain_key: Mapping[str, str]) -> dict[str, str]:
        # The worktree is pa's to trust (else exit 55); one process, not a relaunched child, per turn.
        return {**base, **brain_key, "GEMINI_CLI_TRUST_WORKSPACE": "true", "GEMINI_CLI_NO_RELAUNCH": "true"}

    def reader(self) -> StreamReader:
        return GeminiStream()


GEMINI_CLI = GeminiCliBackend()
