"""The one exception tree of agentproxy.

    AgentProxyError
    ├── UsageError            bad input from the user: the CLI exits 2, the server answers 4xx
    │   ├── WorkdirError      a working directory that cannot be used (home, filesystem root, not creatable)
    │   ├── UnknownSessionError
    │   └── AgentNotFoundError  the agent binary is missing (names --claude-bin / CLAUDE_BIN)
    ├── AgentError            a coding-agent process could not be started or driven
    ├── WorkspaceError        a git operation on the working directory failed
    ├── StoreError            the session store could not be read or written
    └── BrainError            the supervisor's LLM failed; callers fall back to the offline brain

Errors of libraries underneath are translated at the edge with ``raise ... from exc``.
Messages are one line and never contain secrets.
"""

from __future__ import annotations


class AgentProxyError(Exception):
    """Base of every error agentproxy raises on purpose."""


class UsageError(AgentProxyError):
    """The user asked for something that cannot be done as asked."""


class WorkdirError(UsageError):
    """The working directory cannot be used."""


class UnknownSessionError(UsageError):
    """No session has the given id."""


class AgentError(AgentProxyError):
    """A coding agent could not be started or driven."""


class AgentNotFoundError(UsageError):
    """The agent binary is not installed or not executable."""


class WorkspaceError(AgentProxyError):
    """A git operation on the working directory failed."""


class StoreError(AgentProxyError):
    """The session store could not be read or written."""


class BrainError(AgentProxyError):
    """The supervisor's LLM did not give a usable answer."""
