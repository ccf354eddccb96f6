"""A project's files as check detection reads them: absent, unreadable or malformed reads as empty, never raises."""

from __future__ import annotations

import configparser
import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Where files are never the project's own: tools' environments, dependencies, build output.
SKIPPED_DIRS = frozenset({"node_modules", "build", "dist", "site-packages", "__pycache__", "venv", "env", "target"})


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(read_text(path)) if path.is_file() else None
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def toml_value(path: Path, *keys: str) -> Any:
    """The value at keys in a TOML file; None when the file, or a table on the way, is absent or malformed."""
    # tomllib is 3.11+; tomli is the same parser for 3.10.
    parser = importlib.import_module("tomllib" if sys.version_info >= (3, 11) else "tomli")
    try:
        data: Any = parser.loads(read_text(path)) if path.is_file() else None
    except ValueError:  # TOMLDecodeError is a ValueError
        return None
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def ini(text: str) -> configparser.ConfigParser | None:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    return parser


def walk_files(project: Path, wanted: Callable[[str], bool], max_depth: int) -> Iterator[Path]:
    """Files whose name is wanted, at most max_depth directories down, outside hidden and tool directories."""
    root_depth = len(project.parts)
    for directory, subdirectories, files in os.walk(project):
        here = Path(directory)
        if len(here.parts) - root_depth >= max_depth:
            subdirectories.clear()
        subdirectories[:] = sorted(
            name
            for name in subdirectories
            if not name.startswith(".") and name not in SKIPPED_DIRS and not name.endswith(".egg-info")
        )
        yield from (here / name for name in sorted(files) if wanted(name))
