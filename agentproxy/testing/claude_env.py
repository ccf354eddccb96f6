"""Run the real Claude Code CLI against a local fake API, isolated from the user's own setup.

The child must never reach the real API or read the user's ~/.claude (settings, credentials,
sessions), and must never stop at an interactive prompt: hence a private HOME and TMPDIR per run,
a dummy key, and every optional network feature switched off.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from agentproxy.agents.claude import CLAUDE
from agentproxy.options import RunOptions
from agentproxy.testing.pinned_clis import find_cli

_DROPPED_PREFIXES = ("CLAUDE_CODE_", "ANTHROPIC_")
_FIXED = {
    "ANTHROPIC_API_KEY": "sk-ant-fake-key",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_ERROR_REPORTING": "1",
    # Honored by 2.1.330: with 0 a 500 ends the turn at once (no api_retry events, no backoff).
    "CLAUDE_CODE_MAX_RETRIES": "0",
}


def isolated_claude_env(base_url: str, home: Path) -> dict[str, str]:
    """os.environ without any Claude session / Anthropic credentials, aimed at ``base_url``."""
    env = {
        key: value for key, value in os.environ.items() if key != "CLAUDECODE" and not key.startswith(_DROPPED_PREFIXES)
    }
    tmp = home / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env.update(_FIXED, HOME=str(home), TMPDIR=str(tmp), ANTHROPIC_BASE_URL=base_url)
    return env


def find_claude_bin() -> str | None:
    return find_cli(CLAUDE)


def fake_api_options(base_url: str, working_dir: Path, home: Path, **overrides: Any) -> RunOptions:
    """RunOptions that drive the real CLI against a fake API at base_url, with test-sized limits."""
    options = RunOptions(
        working_dir=working_dir,
        agent_command=(find_claude_bin() or "claude",),
        agent_env=isolated_claude_env(base_url, home),
        check_timeout_s=60,
        silence_timeout_s=60,
        agent_timeout_s=120,
    )
    return replace(options, **overrides)


def pa_argv(project: Path, task: str, *flags: str, claude_bin: str | None = None, output: str = "json") -> list[str]:
    """`pa` as the tests run it: this interpreter, the project, the CLI under test, events as JSON lines."""
    claude = claude_bin or find_claude_bin() or "claude"
    return [
        sys.executable,
        "-m",
        "agentproxy",
        "-d",
        str(project),
        "--claude-bin",
        claude,
        "--output",
        output,
        *flags,
        task,
    ]
