"""A live pa-server for tests and benchmarks: a real process on a free loopback port, its own
AGENTPROXY_HOME, started in a directory that is its allowed root; agents are the scripted stand-in
unless the caller gives the real CLI."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scripted_agent(tmp_path: Path, turns: list[list[dict[str, Any]]], name: str = "script.json") -> str:
    """The --claude-bin of an agent that plays these turns (agentproxy.scripted_agent)."""
    script = tmp_path / name
    script.write_text(json.dumps({"turns": turns}))
    return shlex.join([sys.executable, "-m", "agentproxy.scripted_agent", "--script", str(script)])


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str
    root: Path
    home: Path
    token: str | None = None

    def client(self, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)

    def stderr(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read() if self.process.poll() is not None else ""


def start_server(
    root: Path, home: Path, claude_bin: str, *flags: str, env: dict[str, str] | None = None, host: str = "127.0.0.1"
) -> Server:
    port = free_port()
    argv = [sys.executable, "-m", "agentproxy.server", "--host", host, "--port", str(port), "--claude-bin", claude_bin]
    process = subprocess.Popen(
        [*argv, *flags],
        cwd=root,
        env={**os.environ, "AGENTPROXY_HOME": str(home), **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            httpx.get(f"{url}/health", timeout=1)
            return Server(process, url, root, home)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("pa-server did not start")


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(5)


def sse(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """SSE messages ({"id"?, "event"?, "data"}) from a stream's lines, as a browser reads them."""
    message: dict[str, str] = {}
    for line in lines:
        line = line.rstrip("\r")
        if not line:
            if message:
                yield message
            message = {}
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        message[field] = message[field] + "\n" + value if field == "data" and field in message else value
    if message:
        yield message
