"""Reading the input of a tool no rule knows (an MCP tool, say): every string in it, and which are
commands or paths. Bounded, so that a hostile input cannot make the reading itself the problem."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

# Keys of an unknown tool's input whose values are read as Bash commands, or as paths.
COMMAND_KEYS = frozenset({"command", "cmd", "script", "shell", "bash", "sh", "commandline", "command_line"})
PATH_KEYS = frozenset(
    {
        "path",
        "file",
        "file_path",
        "filepath",
        "filename",
        "notebook_path",
        "directory",
        "dir",
        "cwd",
        "target",
        "destination",
        "dest",
        "output",
        "output_path",
        "workdir",
        "working_directory",
        "root",
        "source",
        "src",
    }
)
MAX_INPUT_STRINGS = 2000
MAX_INPUT_DEPTH = 32


def input_strings(value: Any, key: str = "", depth: int = 0) -> Iterator[tuple[str, str]]:
    """(key, string) for every string in a tool's input, however nested; raises ValueError past the bounds."""
    if depth > MAX_INPUT_DEPTH:
        raise ValueError("nested too deeply")
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, Mapping):
        for name, item in value.items():
            yield from input_strings(item, str(name).lower(), depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from input_strings(item, key, depth + 1)


def looks_like_path(key: str, value: str) -> bool:
    if key in PATH_KEYS:
        return bool(value)
    return (value.startswith(("/", "~/")) or value == "~") and "\n" not in value
