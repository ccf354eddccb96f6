"""Every test here drives the real Claude Code CLI: marked claude_cli, skipped where it is absent.

`make test` sets CLAUDE_BIN to the pinned install, so there a missing CLI fails instead of skipping.
"""

from __future__ import annotations

import pytest

from agentproxy.testing.claude_env import find_claude_bin


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = find_claude_bin() is None
    for item in items:
        if "tests/e2e/" in item.nodeid:
            item.add_marker(pytest.mark.claude_cli)
            if missing:
                item.add_marker(pytest.mark.skip(reason="the Claude Code CLI is not installed (make claude)"))
