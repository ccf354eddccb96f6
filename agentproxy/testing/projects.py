"""The end-to-end tests' throwaway project: a git repository on `main` with one commit, git run with a
fixed identity, and the events of a run picked by kind."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

IDENTITY = ("-c", "user.name=t", "-c", "user.email=t@example.com")


def git(directory: Path, *args: str) -> str:
    """git's stdout, stripped; CalledProcessError when it fails."""
    return subprocess.run(
        ["git", *IDENTITY, *args], cwd=directory, check=True, capture_output=True, text=True, timeout=60
    ).stdout.strip()


def new_project(directory: Path) -> Path:
    """A repository at directory (made) with a README committed on `main`."""
    directory.mkdir(parents=True)
    git(directory, "init", "-q", "-b", "main")
    (directory / "README.md").write_text("# project\n")
    git(directory, "add", "-A")
    git(directory, "commit", "-q", "-m", "start")
    return directory


def of_kind(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [event for event in events if event["kind"] == kind]
