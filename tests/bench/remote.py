"""Remote worker hosts (`make bench`): a real `pa --listen` and real `pa-worker`s with the real Claude
Code CLI against the fake API, on loopback.

1. Assignment latency: from a subtask's assignment to its agent on the worker having started (the
   CLI's init line), against the same agent started by a local `pa` (no bridge) in the same run.
2. Worker death detection: kill -9 of a worker holding a subtask, to the supervisor's `worker_left`.
                                                                 target <= heartbeat x liveness + 1 s
    python tests/bench/remote.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agentproxy.bridge import keys
from agentproxy.testing.claude_env import find_claude_bin, isolated_claude_env
from agentproxy.testing.fake_anthropic import Delay, FakeAnthropic, Text, write_file

HEARTBEAT_S, LIVENESS = 1.0, 3
TARGET_DETECTION_S = HEARTBEAT_S * LIVENESS + 1.0


def git(directory: Path, *args: str) -> None:
    identity = ["-c", "user.name=b", "-c", "user.email=b@example.com"]
    subprocess.run(["git", *identity, *args], cwd=directory, check=True, capture_output=True)


def new_project(root: Path) -> Path:
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / "README.md").write_text("# bench\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "start")
    return root


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def env_for(api: FakeAnthropic, home: Path) -> dict[str, str]:
    return {**isolated_claude_env(api.url, home / "claude-home"), "AGENTPROXY_HOME": str(home)}


def pa(api: FakeAnthropic, home: Path, project: Path, *flags: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "agentproxy", "-d", str(project), "--claude-bin", find_claude_bin() or "claude"]
    argv += ["--output", "json", *flags, "write alpha.txt"]
    return subprocess.Popen(argv, env=env_for(api, home), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def worker(api: FakeAnthropic, root: Path, name: str, endpoint: str, server_key: Path, authorized: Path) -> Any:
    public, secret = keys.keygen(root / name / "keys")
    (authorized / f"{name}.key").write_bytes(public.read_bytes())
    argv = [sys.executable, "-m", "agentproxy.worker", "--connect", endpoint, "--name", name, "--dir",
            str(root / name / "work"), "--claude-bin", find_claude_bin() or "claude", "--server-key",
            str(server_key), "--key", str(secret)]  # fmt: skip
    return subprocess.Popen(argv, env=env_for(api, root / name), stderr=subprocess.DEVNULL, start_new_session=True)


def events_until(run: subprocess.Popen[str], kind: str) -> list[dict[str, Any]]:
    """pa's events up to and including the first of kind (pa goes on)."""
    assert run.stdout is not None
    events = []
    for line in run.stdout:
        if line.startswith("{"):
            events.append(json.loads(line))
            if events[-1]["kind"] == kind:
                return events
    raise RuntimeError(f"pa ended before {kind}")


def first(events: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(event for event in events if event["kind"] == kind)


def one_round(root: Path) -> tuple[float, float, float]:
    """(local start, assignment latency, death detection) in seconds."""
    replies = [Delay(20, write_file("alpha.txt", "alpha\n")), Text("Wrote alpha.txt.")]
    with FakeAnthropic(*replies) as api:
        local = pa(api, root / "local", new_project(root / "local-project"))
        events = events_until(local, "agent_started")
        local_s = first(events, "agent_started")["at"] - first(events, "subtask_started")["at"]
        local.kill()
        local.wait()
    with FakeAnthropic(*replies) as api:
        home = root / "supervisor"
        server_key, _, _ = keys.supervisor_keys(home / "config")
        endpoint = f"tcp://127.0.0.1:{free_port()}"
        hosts = [worker(api, root, name, endpoint, server_key, keys.authorized_keys_dir(home / "config"))
                 for name in ("w1", "w2")]  # fmt: skip
        time.sleep(2.0)  # both joined before the task: the measure is the assignment's, not a start-up's
        run = pa(api, home, new_project(root / "project"), "--listen", endpoint, "--local-slots", "0")
        events = events_until(run, "agent_started")
        assigned = first(events, "subtask_assigned")
        latency_s = first(events, "agent_started")["at"] - assigned["at"]
        victim = hosts[int(assigned["worker"][1:]) - 1]
        killed_at = time.time()
        os.killpg(victim.pid, signal.SIGKILL)
        detection_s = first(events_until(run, "worker_left"), "worker_left")["at"] - killed_at
        run.kill()
        for host in hosts:
            if host.poll() is None:
                os.killpg(host.pid, signal.SIGKILL)
            host.wait()
        run.wait()
    return local_s, latency_s, detection_s


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    figures = []
    with tempfile.TemporaryDirectory(prefix="bench-remote-") as tmp:
        for number in range(rounds):
            figures.append(one_round(Path(tmp) / str(number)))
    local, latency, detection = (statistics.median(column) for column in zip(*figures, strict=True))
    worst = max(row[2] for row in figures)
    print(f"remote workers, medians of {rounds} rounds (real Claude Code CLI, loopback, CURVE):")
    print(f"  assignment -> agent started on the worker  {latency:6.2f} s   (a local agent: {local:.2f} s,"
          f" {latency / local:.2f}x)")  # fmt: skip
    print(f"  kill -9 -> worker_left                     {detection:6.2f} s   (worst {worst:.2f} s)"
          f"   target <= {TARGET_DETECTION_S:g} s")  # fmt: skip
    missed = worst > TARGET_DETECTION_S
    if missed:
        print("  MISSED: worker death detection")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
