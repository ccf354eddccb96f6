"""Remote worker hosts: `pa --listen` with real `pa-worker` processes on loopback, each driving the REAL
Claude Code CLI against the fake API. No shared filesystem: the workers work in clones of their own,
made from the bundles the supervisor sends, and send their verified branches back the same way."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentproxy.bridge import keys
from agentproxy.testing.claude_env import find_claude_bin, isolated_claude_env, pa_argv
from agentproxy.testing.fake_anthropic import Delay, FakeAnthropic, Text, write_file

pytestmark = pytest.mark.claude_cli


def git(directory: Path, *args: str) -> str:
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    return subprocess.run(
        ["git", *identity, *args], cwd=directory, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    directory = tmp_path / "project"
    directory.mkdir()
    git(directory, "init", "-q", "-b", "main")
    (directory / "README.md").write_text("# project\n")
    git(directory, "add", "-A")
    git(directory, "commit", "-q", "-m", "start")
    return directory


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Fleet:
    """A supervisor's keys, its address, and the pa-worker processes started against it."""

    def __init__(self, tmp_path: Path, api: FakeAnthropic) -> None:
        self.tmp_path = tmp_path
        self.api = api
        self.home = tmp_path / "agentproxy-home"
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.server_key, _, _ = keys.supervisor_keys(self.home / "config")
        self.authorized = keys.authorized_keys_dir(self.home / "config")
        self.workers: dict[str, subprocess.Popen[str]] = {}

    def env(self, home: Path) -> dict[str, str]:
        return {**isolated_claude_env(self.api.url, self.tmp_path / "claude-home"), "AGENTPROXY_HOME": str(home)}

    def worker_dir(self, name: str) -> Path:
        return self.tmp_path / "hosts" / name

    def start_worker(self, name: str, authorized: bool = True, slots: int = 1) -> subprocess.Popen[str]:
        host = self.worker_dir(name)
        public, secret = keys.keygen(host / "keys")
        if authorized:
            (self.authorized / f"{name}.key").write_bytes(public.read_bytes())
        argv = [
            sys.executable, "-m", "agentproxy.worker", "--connect", self.endpoint, "--name", name,
            "--slots", str(slots), "--dir", str(host / "work"), "--claude-bin", find_claude_bin() or "claude",
            "--server-key", str(self.server_key), "--key", str(secret),
        ]  # fmt: skip
        worker = subprocess.Popen(
            argv,
            env=self.env(host / "home"),
            stdout=subprocess.PIPE,
            stderr=open(host / "stderr.log", "w"),  # noqa: SIM115 - read after the process ends
            text=True,
            start_new_session=True,
        )
        self.workers[name] = worker
        return worker

    def stderr(self, name: str) -> str:
        return (self.worker_dir(name) / "stderr.log").read_text()

    def pa(self, project: Path, task: str, *flags: str, timeout: float = 240) -> subprocess.Popen[str]:
        argv = pa_argv(project, task, "--listen", self.endpoint, *flags)
        return subprocess.Popen(
            argv, env=self.env(self.home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def stop(self) -> None:
        for worker in self.workers.values():
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
            if worker.stdout:
                worker.stdout.close()


@pytest.fixture
def fleet_of(tmp_path: Path) -> Iterator[Callable[[FakeAnthropic], Fleet]]:
    made: list[Fleet] = []

    def make(api: FakeAnthropic) -> Fleet:
        made.append(Fleet(tmp_path, api))
        return made[-1]

    yield make
    for fleet in made:
        fleet.stop()


def events_of(run: subprocess.Popen[str], timeout: float = 240) -> tuple[int, list[dict[str, Any]], str]:
    out, err = run.communicate(timeout=timeout)
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert events and events[-1]["kind"] == "session_finished", err[-3000:]
    return run.returncode, events, err


def of_kind(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [event for event in events if event["kind"] == kind]


def part(number: int, total: int, title: str) -> str:
    return f"Your part ({number} of {total}): {title}"


def writes(name: str, content: str, delay_s: float = 0.0) -> list[Any]:
    first = write_file(name, content)
    return [Delay(delay_s, first) if delay_s else first, Text(f"Wrote {name}.")]


def test_three_workers_run_every_subtask_and_the_results_land_in_the_users_repository(
    project: Path, tmp_path: Path, fleet_of: Callable[[FakeAnthropic], Fleet]
) -> None:
    names = ("alpha", "beta", "gamma")
    conversations = {part(i, 3, f"write {n}.txt"): writes(f"{n}.txt", f"{n}\n") for i, n in enumerate(names, 1)}
    with FakeAnthropic(conversations=conversations) as api:
        fleet = fleet_of(api)
        for name in ("w1", "w2", "w3"):
            fleet.start_worker(name)
        task = "Write three files:\n" + "\n".join(f"- write {n}.txt" for n in names)
        code, events, err = events_of(fleet.pa(project, task, "--local-slots", "0"))
        turns = {key: api.turns(key) for key in conversations}
    assert code == 0, err[-3000:]
    for key, requests in turns.items():
        assert requests, key
        for request in requests:
            assert request.cwd.startswith(str(tmp_path / "hosts")), (key, request.cwd)  # the worker's clone, not yours
    assigned = of_kind(events, "subtask_assigned")
    assert sorted(event["subtask_id"] for event in assigned) == ["1", "2", "3"]
    assert len({event["worker"] for event in assigned}) == 3  # one slot each: each worker got one
    for name in names:
        assert (project / f"{name}.txt").read_text() == f"{name}\n"
    assert sorted(event["subtask_id"] for event in of_kind(events, "merged")) == ["1", "2", "3"]
    assert git(project, "status", "--porcelain") == ""
