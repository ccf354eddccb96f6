"""Every test here drives a real agent CLI: Claude Code's unless marked codex_cli or gemini_cli (those
skip on their own CLI's absence); marked claude_cli, skipped where it is absent.

`make test` sets CLAUDE_BIN, CODEX_BIN and GEMINI_CLI_BIN to the pinned installs, so there a missing
CLI fails instead of skipping.
"""

from __future__ import annotations

import pytest

from agentproxy.testing.claude_env import find_claude_bin


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = find_claude_bin() is None
    for item in items:
        other_vendor = item.get_closest_marker("codex_cli") or item.get_closest_marker("gemini_cli")
        if "tests/e2e/" in item.nodeid and not other_vendor:
            item.add_marker(pytest.mark.claude_cli)
            if missing:
                item.add_marker(pytest.mark.skip(reason="the Claude Code CLI is not installed (make agents)"))
