"""The agent backends by the names --agent and --agents take."""

from __future__ import annotations

from agentproxy.agents.backend import AgentBackend, ExecBackend
from agentproxy.agents.claude import CLAUDE
from agentproxy.agents.codex import CODEX
from agentproxy.agents.gemini_cli import GEMINI_CLI
from agentproxy.errors import UsageError

BACKENDS: dict[str, AgentBackend] = {backend.name: backend for backend in (CLAUDE, CODEX, GEMINI_CLI)}


def backend_named(name: str) -> AgentBackend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise UsageError(f"unknown agent {name!r}: choose from {', '.join(BACKENDS)}") from None


def exec_backend(name: str) -> ExecBackend:
    """The backend of a CLI that runs a process per turn (all but Claude Code)."""
    backend = backend_named(name)
    if not isinstance(backend, ExecBackend):
        raise UsageError(f"the agent {name!r} is driven by its own worker, not a process per turn")
    return backend


def parse_agents(spec: str) -> tuple[str, ...]:
    """--agents claude,codex: known names, each once, in the order given."""
    names = [name.strip() for name in spec.split(",") if name.strip()]
    if not names:
        raise UsageError("--agents needs at least one agent name (e.g. claude,codex)")
    for name in names:
        backend_named(name)
    if len(set(names)) != len(names):
        raise UsageError(f"--agents {spec}: an agent is named twice")
    return tuple(names)
