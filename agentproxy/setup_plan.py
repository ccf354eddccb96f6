"""What setting a project's environment up will do: the steps, the variables the checks then need, and why.

Stdlib only: each kind of project (setup_python, setup_node, setup_env for Go and Rust) plans a
SetupPlan of its own, and setup_env.plan_setup merges them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class SetupStep:
    command: list[str]
    cwd: Path
    why: str


@dataclass
class SetupPlan:
    steps: list[SetupStep] = field(default_factory=list)
    # What the checks must run with, besides PATH's directories (bin_dirs): e.g. VIRTUAL_ENV.
    env: dict[str, str] = field(default_factory=dict)
    # Environment failures found while planning: the checks cannot run until the user fixes them.
    problems: list[str] = field(default_factory=list)
    # One line per kind of project: what was chosen and why ("... up to date" when nothing is to do).
    reasons: list[str] = field(default_factory=list)
    # Written once every step has passed, so that the next plan finds the environment up to date.
    stamps: dict[Path, str] = field(default_factory=dict)
    # Put first on PATH, in this order.
    bin_dirs: list[Path] = field(default_factory=list)

    def merge(self, other: SetupPlan) -> None:
        self.steps.extend(other.steps)
        self.env.update(other.env)
        self.problems.extend(other.problems)
        self.reasons.extend(other.reasons)
        self.stamps.update(other.stamps)
        self.bin_dirs.extend(other.bin_dirs)


def fingerprint(files: list[Path], *extra: str) -> str:
    """A hash of the files' names and contents (absent ones count as absent) and of extra strings."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(str(path).encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"\0absent")
        digest.update(b"\0")
    digest.update(json.dumps(extra).encode())
    return digest.hexdigest()
