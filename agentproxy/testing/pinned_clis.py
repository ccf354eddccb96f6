"""Which agent CLI the tests drive: the one its variable names, else the repository's pinned npm install
(``make agents``), else the one on PATH."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from agentproxy.agents.backend import AgentBackend

PINNED_BIN = Path(__file__).resolve().parents[2] / ".tools" / "node_modules" / ".bin"


def find_cli(backend: AgentBackend) -> str | None:
    if configured := os.environ.get(backend.command_variable):
        return configured
    pinned = PINNED_BIN / backend.binary
    return str(pinned) if pinned.exists() else shutil.which(backend.binary)
