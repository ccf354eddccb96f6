"""Which tool uses an agent may make without asking: edits inside its worktree, commands that keep to it.

Bash is parsed (agentproxy.shell) and each simple command judged (agentproxy.command_rules); a line
the parser cannot read meets the regex blocklist only. Edits must stay inside the worktree and out of
its .git. A tool no rule covers has every string of its input checked, then goes to the brain
("ask") unless ``--allow-tool`` names it. Deterministic denials always win. ``decide`` never raises.
"""

from __future__ import annotations

import fnmatch
import itertools
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agentproxy.agents.claude_tools import EDIT_TOOLS, READ_TOOLS
from agentproxy.blocklist import DEFAULT_DENY
from agentproxy.command_rules import CommandRules
from agentproxy.shell import parse_bash
from agentproxy.tool_input import COMMAND_KEYS, MAX_INPUT_STRINGS, input_strings, looks_like_path
from agentproxy.worktree_paths import WorktreePaths

MAX_REASON_CHARS = 400
_EDIT_PATH_KEYS = ("file_path", "notebook_path", "path")

Verdict = Literal["allow", "deny", "ask"]


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str


class ApprovalPolicy:
    def __init__(
        self,
        worktree: Path,
        deny_patterns: Iterable[str] = DEFAULT_DENY,
        allow_tools: Iterable[str] = (),
        home: Path | None = None,
    ) -> None:
        self.paths = WorktreePaths(Path(worktree), home if home is not None else _home())
        self.worktree = self.paths.root
        patterns = tuple(deny_patterns)
        self.deny = [re.compile(pattern) for pattern in patterns]
        # The defaults are rewritten as structural rules for parsed commands; the user's stay regexes.
        self.user_deny = [re.compile(pattern) for pattern in patterns if pattern not in DEFAULT_DENY]
        self.allow_tools = tuple(allow_tools)
        self.rules = CommandRules(self.paths)

    def decide(self, tool_name: str, tool_input: Mapping[str, Any]) -> Decision:
        """Allow, deny or ask the brain; any failure inside is a denial that says so."""
        try:
            name = str(tool_name)
            decision = self._decide(name, tool_input if isinstance(tool_input, Mapping) else {})
        except Exception as exc:
            decision = Decision("deny", f"the approval policy could not judge this request ({type(exc).__name__})")
        return Decision(decision.verdict, _printable(decision.reason) or f"{decision.verdict} (no reason given)")

    def _decide(self, tool: str, tool_input: Mapping[str, Any]) -> Decision:
        if tool == "Bash":
            command = tool_input.get("command", "")
            return self.judge_bash(command if isinstance(command, str) else str(command))
        path = next((str(tool_input[key]) for key in _EDIT_PATH_KEYS if tool_input.get(key)), None)
        if tool in EDIT_TOOLS:
            if path is None:
                return Decision("deny", f"{tool} without a file path")
            return self._judge_edit(tool, path)
        if tool in READ_TOOLS:
            reason = self._read_denied(tool, path) if path is not None else None
            return Decision("deny", reason) if reason else Decision("allow", "read-only tool")
        return self._judge_unknown(tool, tool_input)

    # --- Bash --------------------------------------------------------------------------------

    def judge_bash(self, command: str) -> Decision:
        parsed = parse_bash(command)
        if parsed is None:
            label = "(unparsed: regex blocklist only)"
            if pattern := _search(self.deny, command):
                return Decision("deny", f"command matches the blocklist ({pattern}) {label}")
            return Decision("allow", f"Bash: nothing on the blocklist {label}")
        if pattern := _search(self.user_deny, command):
            return Decision("deny", f"command matches the --deny pattern {pattern}")
        if parsed.too_deep:
            return Decision("deny", "bash -c / eval nested too deeply to read")
        if parsed.self_calling_functions:
            return Decision("deny", f"function {parsed.self_calling_functions[0]} calls itself (a fork bomb)")
        label = "" if parsed.parser == "bashlex" else " (read roughly with shlex: bashlex could not parse it)"
        for simple in parsed.commands:
            if pattern := _search(self.user_deny, " ".join(simple.words)):
                return Decision("deny", f"{simple.program} matches the --deny pattern {pattern}")
            if reason := self.rules.judge(simple):
                return Decision("deny", reason + label)
        if label and (pattern := _search(self.deny, command)):
            return Decision("deny", f"command matches the blocklist ({pattern}){label}")
        programs = list(dict.fromkeys(c.program for c in parsed.commands if c.program))
        if not parsed.commands:
            return Decision("allow", "Bash: empty command")
        count = len(parsed.commands)
        shown = ", ".join(programs[:6]) + (", ..." if len(programs) > 6 else "")
        noun = "command" if count == 1 else "commands"
        return Decision("allow", f"Bash: {count} {noun} ({shown}), every write inside the worktree{label}")

    # --- files -------------------------------------------------------------------------------

    def _judge_edit(self, tool: str, path: str) -> Decision:
        if pattern := self._path_blocklisted(path):
            return Decision("deny", f"{tool} on {path} matches the blocklist ({pattern})")
        resolved = self.paths.resolve(path)
        if resolved is None:
            return Decision("deny", f"{tool}: cannot tell where {path} points")
        if self.paths.secret(resolved):
            return Decision("deny", f"{tool} on {path}: a secrets directory")
        if not resolved.is_relative_to(self.worktree):
            return Decision("deny", f"{tool} outside the worktree {self.worktree}: {path}")
        if ".git" in resolved.relative_to(self.worktree).parts:
            return Decision("deny", f"{tool} on {path}: inside .git, whose hooks and config run code")
        return Decision("allow", "edit inside the worktree")

    def _read_denied(self, tool: str, path: str) -> str | None:
        if pattern := self._path_blocklisted(path):
            return f"{tool} on {path} matches the blocklist ({pattern})"
        resolved = self.paths.resolve(path)
        if resolved is not None and self.paths.secret(resolved):
            return f"{tool} on {path}: a secrets directory"
        return None

    def _path_blocklisted(self, path: str) -> str | None:
        expanded = os.path.expanduser(path) if path.startswith("~") and "\0" not in path else path
        return _search(self.deny, path) or _search(self.deny, expanded)

    # --- tools without a rule ----------------------------------------------------------------

    def _judge_unknown(self, tool: str, tool_input: Mapping[str, Any]) -> Decision:
        try:
            strings = list(itertools.islice(input_strings(tool_input), MAX_INPUT_STRINGS + 1))
        except ValueError:
            return Decision("deny", f"{tool}: input nested too deeply to check")
        if len(strings) > MAX_INPUT_STRINGS:
            return Decision("deny", f"{tool}: more input than can be checked")
        for key, value in strings:
            if key in COMMAND_KEYS:
                if (judged := self.judge_bash(value)).verdict == "deny":
                    return Decision("deny", f"{tool}: {key}: {judged.reason}")
            elif pattern := _search(self.deny, value):
                return Decision("deny", f"{tool}: {key or 'a value'} matches the blocklist ({pattern})")
            if looks_like_path(key, value) and (reason := self._outside(value)):
                return Decision("deny", f"{tool}: {key or 'a value'} {reason}")
        for pattern in self.allow_tools:
            if fnmatch.fnmatchcase(tool, pattern):
                return Decision("allow", f"{tool} allowed by --allow-tool {pattern}")
        return Decision("ask", f"no rule for {tool}")

    def _outside(self, value: str) -> str | None:
        resolved = self.paths.resolve(value)
        if resolved is None:
            return f"{value}: cannot tell where it points"
        if self.paths.secret(resolved):
            return f"{value} is in a secrets directory"
        if not resolved.is_relative_to(self.worktree):
            return f"{value} is outside the worktree {self.worktree}"
        return None


def _search(patterns: Iterable[re.Pattern[str]], text: str) -> str | None:
    return next((pattern.pattern for pattern in patterns if pattern.search(text)), None)


def _home() -> Path:
    try:
        return Path.home()
    except (RuntimeError, KeyError, OSError):  # no HOME and no passwd entry
        return Path("/root")


def _printable(text: str) -> str:
    """One line of valid UTF-8: events are JSON, and a NUL or a lone surrogate would break them."""
    clean = text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\0", "\\x00")
    clean = clean.replace("\r", "\\r").replace("\n", "\\n")
    return clean if len(clean) <= MAX_REASON_CHARS else clean[: MAX_REASON_CHARS - 1] + "…"
