"""pa-server --listen: one broker for the server, and the remote workers serve every task it runs
(REAL Claude Code CLI on the worker, against the Anthropic fake)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from agentproxy.bridge import keys
from agentproxy.testing.claude_env import find_claude_bin, isolated_claude_env
from agentproxy.testing.fake_anthropic import FakeAnthropic, Text, write_file
from agentproxy.testing.live_server import Server, free_port, sse

pytestmark = pytest.mark.claude_cli


def test_the_servers_workers_serve_two_tasks_at_once(tmp_path: Path, server_with: Callable[..., Server]) -> None:
    home = tmp_path / "home"
    server_key, _, _ = keys.supervisor_keys(home / "config")
    public, secret = keys.keygen(tmp_path / "worker-keys")
    (keys.authorized_keys_dir(home / "config") / "w1.key").write_bytes(public.read_bytes())
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    replies = {"one.txt": [write_file("one.txt", "1\n"), Text("Wrote one.txt.")]}
    replies["two.txt"] = [write_file("two.txt", "2\n"), Text("Wrote two.txt.")]
    with FakeAnthropic(conversations=replies) as api:
        claude_env = isolated_claude_env(api.url, tmp_path / "worker-home" / "claude-home")
        worker = subprocess.Popen(
            [sys.executable, "-m", "agentproxy.worker", "--connect", endpoint, "--name", "w1", "--slots", "2",
             "--dir", str(tmp_path / "worker"), "--claude-bin", find_claude_bin() or "claude",
             "--server-key", str(server_key), "--key", str(secret)],
            env={**claude_env, "AGENTPROXY_HOME": str(tmp_path / "worker-home")},
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        try:
            server = server_with(find_claude_bin() or "claude", "--listen", endpoint, "--local-slots", "0")
            with server.client() as client:
                streams = [
                    client.stream("POST", "/task", json={"task": f"write {name}", "working_dir": name.split(".")[0]})
                    for name in ("one.txt", "two.txt")
                ]
                responses = [s.__enter__() for s in streams]  # both requests open: the tasks run at once
                results = [list(sse(response.iter_lines())) for response in responses]
                for s in streams:
                    s.__exit__(None, None, None)
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
        cwds = {request.cwd for request in api.requests if not request.side}
    for messages, name in zip(results, ("one.txt", "two.txt"), strict=True):
        assert messages[-1].get("event") == "done" and json.loads(messages[-1]["data"])["status"] == "done", messages[
            -3:
        ]
        assigned = [json.loads(m["data"]) for m in messages if m.get("event") == "subtask_assigned"]
        assert [event["worker"] for event in assigned] == ["w1"]
        assert (server.root / name.split(".")[0] / name).exists()
    assert all(cwd.startswith(str(tmp_path / "worker")) for cwd in cwds), cwds
