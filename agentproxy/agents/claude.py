"""How Claude Code's CLI is found, started headless over stream-json with the control protocol, and
what environment it gets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from agentproxy.agents.backend import AgentBackend
from agentproxy.child_env import child_environment

# Session variables a parent Claude Code session leaks into its children; configuration
# variables (CLAUDE_CODE_MAX_RETRIES, CLAUDE_CODE_USE_BEDROCK, ...) are the user's intent and pass.
_SESSION_VARS = ("CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT", "CLAUDE_CODE_SSE_PORT", "CLAUDE_CODE_SESSION_ID")
_SESSION_PREFIXES = ("CLAUDE_CODE_SESSION_", "CLAUDE_CODE_IPC_", "CLAUDE_CODE_REMOTE_")


class ClaudeBackend(AgentBackend):
    name = "claude"
    title = "Claude Code CLI"
    binary = "claude"
    command_variable = "CLAUDE_BIN"
    install_hint = "npm i -g @anthropic-ai/claude-code"

    def environment(self, base: Mapping[str, str], *, brain_key: Mapping[str, str]) -> dict[str, str]:
        return agent_environment(base)


CLAUDE = ClaudeBackend()


def resolve_agent_command(claude_bin: str | None) -> list[str]:
    """The argv prefix that starts Claude Code: --claude-bin / CLAUDE_BIN (may hold arguments), else `claude`."""
    return list(CLAUDE.resolve(claude_bin))


def agent_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The user's environment minus a parent Claude Code session's own variables and the supervisor's keys.

    The agent's own credentials (ANTHROPIC_*) pass.
    """
    env = child_environment(base)
    for key in list(env):
        if key in _SESSION_VARS or key.startswith(_SESSION_PREFIXES):
            del env[key]
    return env


def headless_argv(command: Sequence[str], *, resume: str | None = None, model: str | None = None) -> list[str]:
    argv = [
        *command,
        "-p",
        "--input-format",
        "stream-json",
        "--output-format",
        "stream-json",
        "--verbose",
        "--permission-prompt-tool",
        "stdio",
    ]
    if resume:
        argv.append(f"--resume={resume}")
    if model:
        argv += ["--model", model]
    return argv
