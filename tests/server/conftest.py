"""The server's tests share one fixture: pa-servers started on demand, stopped at the end."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentproxy.testing.live_server import Server, start_server, stop_server


@pytest.fixture
def server_with(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(claude_bin: str, *flags: str, **kwargs: Any) -> Server:
        root = tmp_path / "root"
        root.mkdir(exist_ok=True)
        started.append(start_server(root, tmp_path / "home", claude_bin, *flags, **kwargs))
        return started[-1]

    yield start
    for server in started:
        stop_server(server)
