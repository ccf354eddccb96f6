"""Every test here drives a real agent CLI: Claude Code's unless it is marked codex_cli or gemini_cli.

A test whose CLI is absent is skipped, here and nowhere else. `make test` installs the pinned CLIs
(`make agents`) and sets CLAUDE_BIN, CODEX_BIN and GEMINI_CLI_BIN to them, so in CI none is skipped:
a CLI missing there fails its tests instead.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agentproxy.testing.claude_env import find_claude_bin
from agentproxy.testing.codex_env import find_codex_bin
from agentproxy.testing.gemini_cli_env import find_gemini_bin

# marker -> how the CLI is found, and what it is called
CLIS: dict[str, tuple[Callable[[], str | None], str]] = {
    "claude_cli": (find_claude_bin, "the Claude Code CLI"),
    "codex_cli": (find_codex_bin, "the Codex CLI"),
    "gemini_cli": (find_gemini_bin, "the Gemini CLI"),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = {marker: title for marker, (find, title) in CLIS.items() if find() is None}
    for item in items:
        if "tests/e2e/" not in item.nodeid:
            continue
        if not any(item.get_closest_marker(marker) for marker in CLIS):
            item.add_marker(pytest.mark.claude_cli)
        for marker, title in missing.items():
            if item.get_closest_marker(marker):
                reason = f"{title} is not installed: `make agents` installs it (`make test` does, and never skips)"
                item.add_marker(pytest.mark.skip(reason=reason))
