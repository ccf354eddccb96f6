"""Finding a test's leftover processes: whatever still runs with a variable only that test set."""

from __future__ import annotations

from pathlib import Path


def processes_with(variable: str) -> list[int]:
    """Pids of the processes whose environment holds variable (NAME=value)."""
    wanted = variable.encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if wanted in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return found
