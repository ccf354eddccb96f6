"""agentproxy: a supervisor that runs coding agents unattended, in parallel, safely and observably."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# The Python API (agentproxy.api), loaded on first use: `import agentproxy` and `pa --help` stay light.
_API = ("run_task", "arun_task", "start_task", "list_sessions", "get_session", "stop_session")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        from agentproxy import api

        return getattr(api, name)
    raise AttributeError(f"module 'agentproxy' has no attribute {name!r}")
