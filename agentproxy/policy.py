"""Which tool uses an agent may make without asking: edits inside its worktree, commands not on the blocklist.

The blocklist is deterministic and always wins; only what no rule covers goes to the brain ("ask").
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agentproxy.errors import UsageError

# Regexes searched in a Bash command, or in the path a tool touches.
DEFAULT_DENY: tuple[str, ...] = (
    r"\brm\s+(-[a-zA-Z]*[rRf][a-zA-Z]*\s+)+(--\s+)?(/|~|\$HOME)/?(\s|\*|$)",  # rm -rf / or ~
    r"\bgit\s+push\b.*\s(--force(-with-lease)?|-f)\b",
    r"(^|/|~)\.ssh(/|$)",  # private keys and known hosts
    r"\bsudo\b",
    r"\bmkfs(\.\w+)?\b",
    r"\bdd\b.*\bof=/dev/",
    r"\bchmod\s+(-[a-zA-Z]*R[a-zA-Z]*\s+)777\s+/(\s|$)",
    r":\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:",  # the classic fork bomb
    r"\b(curl|wget)\b[^|]*\|\s*(ba|z)?sh\b",  # piping a download into a shell
)

EDIT_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})
READ_TOOLS = frozenset({"Read", "Glob", "Grep", "LS", "TodoWrite", "WebFetch", "WebSearch", "Task", "BashOutput"})
QUESTION_TOOLS = frozenset({"AskUserQuestion"})
_PATH_KEYS = ("file_path", "notebook_path", "path")

Verdict = Literal["allow", "deny", "ask"]


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str


def is_question_tool(tool_name: str) -> bool:
    return tool_name in QUESTION_TOOLS


def parse_deny_patterns(extra: Iterable[str]) -> tuple[str, ...]:
    """The default blocklist plus the user's patterns; a pattern that does not compile is a usage error."""
    patterns = list(DEFAULT_DENY)
    for pattern in extra:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise UsageError(f"--deny {pattern!r} is not a valid regular expression: {exc}") from exc
        patterns.append(pattern)
    return tuple(patterns)


class ApprovalPolicy:
    def __init__(self, worktree: Path, deny_patterns: Iterable[str] = DEFAULT_DENY) -> None:
        self.worktree = Path(worktree).resolve()
        self.deny = [re.compile(pattern) for pattern in deny_patterns]

    def decide(self, tool_name: str, tool_input: Mapping[str, Any]) -> Decision:
        path = next((str(tool_input[key]) for key in _PATH_KEYS if tool_input.get(key)), None)
        if path is not None and (pattern := self._denied(path)):
            return Decision("deny", f"{tool_name} on {path} matches the blocklist ({pattern})")
        if tool_name == "Bash":
            command = str(tool_input.get("command", ""))
            if pattern := self._denied(command):
                return Decision("deny", f"command matches the blocklist ({pattern})")
            return Decision("allow", "command inside the worktree")
        if tool_name in EDIT_TOOLS:
            if path is None:
                return Decision("deny", f"{tool_name} without a file path")
            if not self._inside_worktree(path):
                return Decision("deny", f"{tool_name} outside the worktree {self.worktree}: {path}")
            return Decision("allow", "edit inside the worktree")
        if tool_name in READ_TOOLS:
            return Decision("allow", "read-only tool")
        # Before the brain may judge an unknown tool, the blocklist reads all of its input.
        if pattern := self._denied(json.dumps(dict(tool_input), ensure_ascii=False)):
            return Decision("deny", f"{tool_name} input matches the blocklist ({pattern})")
        return Decision("ask", f"no rule for {tool_name}")

    def _denied(self, text: str) -> str | None:
        expanded = os.path.expanduser(text) if text.startswith("~") else text
        for pattern in self.deny:
            if pattern.search(text) or pattern.search(expanded):
                return pattern.pattern
        return None

    def _inside_worktree(self, path: str) -> bool:
        target = Path(os.path.expanduser(path))
        if not target.is_absolute():
            target = self.worktree / target
        # resolve() follows symlinks, so a link pointing out of the worktree does not get through.
        return target.resolve().is_relative_to(self.worktree)
