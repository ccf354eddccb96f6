"""Claude Code's own tool names, grouped by what the tools do."""

from __future__ import annotations

EDIT_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})
READ_TOOLS = frozenset({"Read", "Glob", "Grep", "LS", "TodoWrite", "WebFetch", "WebSearch", "Task", "BashOutput"})
QUESTION_TOOLS = frozenset({"AskUserQuestion"})


def is_question_tool(tool_name: str) -> bool:
    return tool_name in QUESTION_TOOLS
