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
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentproxy.bridge import keys
from agentproxy.testing.claude_env import find_claude_bin, isolated_claude_env, pa_argv
from agentproxy.testing.fake_anthropic import CapturedRequest, Delay, FakeAnthropic, Reply, Text, ToolUse, write_file
from agentproxy.testing.projects import git, new_project, of_kind

pytestmark = pytest.mark.claude_cli

SECRET = "sk-supervisor-only-4f9d2c7a1b8e6035"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return new_project(tmp_path / "project")


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
        """Each host its own: agentproxy's home and Claude Code's (where its sessions live)."""
        return {**isolated_claude_env(self.api.url, home / "claude-home"), "AGENTPROXY_HOME": str(home)}

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

    def pa(self, project: Path, task: str, *flags: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """pa --listen on the fleet's address; an empty task: flags name the session (-s ID)."""
        argv = pa_argv(project, task, "--listen", self.endpoint, *flags)
        return subprocess.Popen(
            argv if task else argv[:-1],
            env={**self.env(self.home), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
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


class Watched:
    """pa's events as they come (a reader thread), for tests that act in the middle of a run."""

    def __init__(self, run: subprocess.Popen[str]) -> None:
        self.run = run
        self.events: list[dict[str, Any]] = []
        self.err = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.run.stdout is not None
        for line in self.run.stdout:
            if line.startswith("{"):
                self.events.append(json.loads(line))

    def wait_for(self, kind: str, timeout_s: float = 60.0, **fields: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for event in list(self.events):
                if event["kind"] == kind and all(event.get(k) == v for k, v in fields.items()):
                    return event
            assert self.run.poll() is None or self._reader.is_alive(), f"pa ended before {kind}"
            time.sleep(0.02)
        raise AssertionError(f"no {kind} {fields} within {timeout_s}s")

    def wait_for_text(self, text: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """The first notice whose text holds text (case-insensitive)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for event in list(self.events):
                if event["kind"] == "notice" and text.lower() in event["text"].lower():
                    return event
            time.sleep(0.02)
        raise AssertionError(f"no notice with {text!r} within {timeout_s}s")

    def finish(self, timeout: float = 240) -> tuple[int, list[dict[str, Any]], str]:
        self.run.wait(timeout)
        self._reader.join(10)
        assert self.run.stderr is not None
        self.err = self.run.stderr.read()
        assert self.events and self.events[-1]["kind"] == "session_finished", self.err[-3000:]
        return self.run.returncode, self.events, self.err


def writes_again_in_each_session(
    name: str, content: str, first_delay_s: float, later_delay_s: float = 0.0
) -> list[Reply]:
    """An agent that writes a file and says so, in every agent session it is started in (a requeued
    subtask starts a new one on another worker); the first session's write comes after a delay."""
    started: list[str] = []

    def reply(request: CapturedRequest) -> Reply:
        if request.tool_results:
            return Text(f"Wrote {name}.")
        started.append(request.cwd)
        delay_s = first_delay_s if len(started) == 1 else later_delay_s
        return Delay(delay_s, write_file(name, content)) if delay_s else write_file(name, content)

    return [reply] * 12


def test_kill_9_of_a_worker_mid_subtask_requeues_it_to_another_that_completes_it_once(
    project: Path, fleet_of: Callable[[FakeAnthropic], Fleet]
) -> None:
    key = part(1, 2, "write alpha.txt")
    conversations = {
        key: writes_again_in_each_session("alpha.txt", "alpha\n", first_delay_s=30),
        part(2, 2, "write beta.txt"): writes("beta.txt", "beta\n"),
    }
    with FakeAnthropic(conversations=conversations) as api:
        fleet = fleet_of(api)
        for name in ("w1", "w2", "w3"):
            fleet.start_worker(name)
        task = "Write two files:\n- write alpha.txt\n- write beta.txt"
        run = Watched(fleet.pa(project, task, "--local-slots", "0"))
        assigned = run.wait_for("subtask_assigned", subtask_id="1")
        wait_until(lambda: len(api.turns(key)) >= 1)  # its agent is mid-turn: the fake holds its reply
        victim = fleet.workers[assigned["worker"]]
        killed_at = time.time()
        os.killpg(victim.pid, signal.SIGKILL)
        left = run.wait_for("worker_left", worker=assigned["worker"])
        code, events, err = run.finish()
    assert code == 0, err[-3000:]
    detection_s = left["at"] - killed_at
    assert detection_s <= 1.0 * 3 + 1.0, detection_s  # heartbeat x liveness + 1 s
    again = [e for e in of_kind(events, "subtask_assigned") if e["subtask_id"] == "1"]
    assert [e["epoch"] for e in again] == [1, 2] and again[1]["worker"] != assigned["worker"]
    assert [e["subtask_id"] for e in of_kind(events, "merged")].count("1") == 1
    assert (project / "alpha.txt").read_text() == "alpha\n" and (project / "beta.txt").read_text() == "beta\n"
    subjects = git(project, "log", "--format=%s").splitlines()
    assert sum(subject.startswith("agentproxy: merge 1:") for subject in subjects) == 1
    print(f"worker death detected {detection_s:.2f}s after kill -9")


def test_a_worker_paused_past_its_liveness_has_its_stale_result_dropped(
    project: Path, fleet_of: Callable[[FakeAnthropic], Fleet]
) -> None:
    # The first session's turn ends while its worker is stopped; the second's takes long enough for the
    # first worker to come back and send what it has for the subtask it no longer holds (a loaded
    # machine included: pa must still be running when that report comes).
    replies = writes_again_in_each_session("alpha.txt", "alpha\n", first_delay_s=2, later_delay_s=12)
    with FakeAnthropic(*replies) as api:
        fleet = fleet_of(api)
        first = fleet.start_worker("w1")
        run = Watched(fleet.pa(project, "write alpha.txt", "--local-slots", "0"))
        run.wait_for("subtask_assigned", subtask_id="1", worker="w1")
        wait_until(lambda: any(not request.side for request in api.requests))
        os.kill(first.pid, signal.SIGSTOP)  # the worker only: its agent goes on and ends its turn
        run.wait_for("worker_left", worker="w1")
        fleet.start_worker("w2")
        run.wait_for("subtask_assigned", subtask_id="1", worker="w2")
        os.kill(first.pid, signal.SIGCONT)  # back, with the outcome of a turn that is no longer its own
        dropped = run.wait_for_text("dropped a report", timeout_s=30)
        code, events, err = run.finish()
    assert code == 0, err[-3000:]
    assert "w1" in dropped["text"]
    assert [e["subtask_id"] for e in of_kind(events, "merged")] == ["1"]
    assert [e["epoch"] for e in of_kind(events, "subtask_assigned")] == [1, 2]
    assert (project / "alpha.txt").read_text() == "alpha\n"


def test_sigterm_hands_a_workers_subtask_back_and_it_exits_zero_leaving_no_agent_behind(
    project: Path, fleet_of: Callable[[FakeAnthropic], Fleet]
) -> None:
    replies = writes_again_in_each_session("alpha.txt", "alpha\n", first_delay_s=30)
    with FakeAnthropic(*replies) as api:
        fleet = fleet_of(api)
        leaving = fleet.start_worker("w1")
        run = Watched(fleet.pa(project, "write alpha.txt", "--local-slots", "0"))
        run.wait_for("subtask_assigned", subtask_id="1", worker="w1")
        wait_until(lambda: any(not request.side for request in api.requests))
        fleet.start_worker("w2")
        leaving.send_signal(signal.SIGTERM)  # what systemd and Kubernetes send first
        left = run.wait_for("worker_left", worker="w1")
        assert leaving.wait(30) == 0
        code, events, err = run.finish()
    assert code == 0, err[-3000:]
    assert "stopping" in left["reason"]
    assert [(e["worker"], e["epoch"]) for e in of_kind(events, "subtask_assigned")] == [("w1", 1), ("w2", 2)]
    assert (project / "alpha.txt").read_text() == "alpha\n"
    w1 = str(fleet.worker_dir("w1"))
    assert not [pid for pid, cwd in process_cwds() if cwd.startswith(w1)]  # its agent went with it
    assert list((fleet.worker_dir("w1") / "work" / "worktrees").glob("*/1.1"))  # kept for inspection


def process_cwds() -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found.append((int(entry.name), os.readlink(entry / "cwd")))
            except OSError:
                continue
    return found


def test_pa_killed_and_resumed_reassigns_to_the_workers_that_reconnect(
    project: Path, fleet_of: Callable[[FakeAnthropic], Fleet]
) -> None:
    conversations = {
        part(1, 2, "write alpha.txt"): writes("alpha.txt", "alpha\n"),
        part(2, 2, "write beta.txt"): writes_again_in_each_session("beta.txt", "beta\n", first_delay_s=30),
    }
    with FakeAnthropic(conversations=conversations) as api:
        fleet = fleet_of(api)
        for name in ("w1", "w2"):
            fleet.start_worker(name)
        task = "Write two files:\n- write alpha.txt\n- write beta.txt"
        first = Watched(fleet.pa(project, task, "--local-slots", "0"))
        first.wait_for("merged", subtask_id="1")
        session = first.events[-1]["session_id"]
        wait_until(lambda: len(api.turns(part(2, 2, "write beta.txt"))) >= 1)
        first.run.kill()  # kill -9 of pa: the workers are left holding an assignment of a dead supervisor
        first.run.wait(30)
        second = Watched(fleet.pa(project, "", "-s", session, "--local-slots", "0"))
        code, events, err = second.finish()
        alpha_turns = len(api.turns(part(1, 2, "write alpha.txt")))
    assert code == 0, err[-3000:]
    assert alpha_turns == 2  # merged before pa was killed: not run again
    assert [e["subtask_id"] for e in of_kind(events, "merged")] == ["2"]
    assert (project / "alpha.txt").read_text() == "alpha\n" and (project / "beta.txt").read_text() == "beta\n"
    subjects = git(project, "log", "--format=%s").splitlines()
    assert sum(s.startswith("agentproxy: merge 1:") for s in subjects) == 1


def test_a_worker_silent_for_less_than_its_liveness_goes_on_with_its_subtask(
    project: Path, fleet_of: Callable[[FakeAnthropic], Fleet]
) -> None:
    replies = writes_again_in_each_session("alpha.txt", "alpha\n", first_delay_s=3)
    with FakeAnthropic(*replies) as api:
        fleet = fleet_of(api)
        worker = fleet.start_worker("w1")
        run = Watched(fleet.pa(project, "write alpha.txt", "--local-slots", "0"))
        run.wait_for("subtask_assigned", subtask_id="1", worker="w1")
        wait_until(lambda: any(not request.side for request in api.requests))
        os.kill(worker.pid, signal.SIGSTOP)  # a short cut: no frame either way for 1.5 s, under 3 x 1 s
        time.sleep(1.5)
        os.kill(worker.pid, signal.SIGCONT)
        code, events, err = run.finish()
    assert code == 0, err[-3000:]
    assert not of_kind(events, "worker_left")
    assert [(e["worker"], e["epoch"]) for e in of_kind(events, "subtask_assigned")] == [("w1", 1)]
    assert (project / "alpha.txt").read_text() == "alpha\n"


def test_an_agents_question_on_a_remote_worker_is_answered_by_the_supervisors_clarifier(
    project: Path, fleet_of: Callable[[FakeAnthropic], Fleet]
) -> None:
    question = {
        "question": "Which web framework should I use?",
        "header": "Framework",
        "options": [
            {"label": "Django", "description": "batteries included"},
            {"label": "Flask (Recommended)", "description": "small"},
        ],
        "multiSelect": False,
    }

    def write_the_answer(request: CapturedRequest) -> ToolUse:
        return write_file("choice.txt", json.dumps(request.tool_results[0].get("content")))

    replies = [ToolUse("AskUserQuestion", {"questions": [question]}), write_the_answer, Text("Done.")]
    with FakeAnthropic(*replies) as api:
        fleet = fleet_of(api)
        fleet.start_worker("w1")
        code, events, err = events_of(
            fleet.pa(project, "Pick a framework and record it in choice.txt", "--local-slots", "0")
        )
        cwds = {request.cwd for request in api.requests if not request.side}
    assert code == 0, err[-3000:]
    answered = of_kind(events, "question_answered")
    assert answered and answered[0]["answers"] == {question["question"]: "Flask (Recommended)"}
    assert all(cwd.startswith(str(fleet.worker_dir("w1"))) for cwd in cwds), cwds
    assert "Flask (Recommended)" in (project / "choice.txt").read_text()


def test_a_worker_with_an_unknown_key_is_refused_and_exits_non_zero(
    project: Path, fleet_of: Callable[[FakeAnthropic], Fleet]
) -> None:
    with FakeAnthropic() as api:
        fleet = fleet_of(api)
        run = Watched(fleet.pa(project, "write alpha.txt", "--local-slots", "0"))
        run.wait_for("notice")  # listening
        stranger = fleet.start_worker("stranger", authorized=False)
        assert stranger.wait(30) != 0
        refused = run.wait_for("notice", level="warning")
        run.run.send_signal(signal.SIGINT)
        run.finish()
    assert "not authorized" in fleet.stderr("stranger")
    public = keys.public_key_text(fleet.worker_dir("stranger") / "keys" / "worker.key")
    assert public in refused["text"]


def test_listen_insecure_on_a_non_loopback_address_is_a_usage_error(project: Path, tmp_path: Path) -> None:
    argv = pa_argv(project, "write alpha.txt", "--listen-insecure", "tcp://0.0.0.0:5555")
    done = subprocess.run(
        argv, env={**os.environ, "AGENTPROXY_HOME": str(tmp_path / "home")}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.startswith("pa: error: --listen-insecure tcp://0.0.0.0:5555: only a loopback address")
    assert len(done.stderr.strip().splitlines()) == 1


def wait_until(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def events_of(run: subprocess.Popen[str], timeout: float = 240) -> tuple[int, list[dict[str, Any]], str]:
    out, err = run.communicate(timeout=timeout)
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert events and events[-1]["kind"] == "session_finished", err[-3000:]
    return run.returncode, events, err


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
        code, events, err = events_of(fleet.pa(project, task, "--local-slots", "0", env={"OPENAI_API_KEY": SECRET}))
        turns = {key: api.turns(key) for key in conversations}
        bodies = [json.dumps(request.body) for request in api.requests]
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
    assert not [body for body in bodies if SECRET in body]  # the supervisor's secrets stay with it
    assert all(SECRET not in fleet.stderr(name) for name in ("w1", "w2", "w3"))


CHAOS_ROUNDS = int(os.environ.get("AGENTPROXY_CHAOS_ROUNDS", "20"))  # make chaos: 100


@pytest.mark.timeout(120 + 30 * CHAOS_ROUNDS)
def test_random_kill_points_lose_no_subtask_and_merge_none_twice(
    tmp_path: Path, fleet_of: Callable[[FakeAnthropic], Fleet]
) -> None:
    chooser = random_source()
    conversations: dict[str, list[Reply]] = {}
    for round_ in range(CHAOS_ROUNDS):
        for number, letter in enumerate("ab", 1):
            key = part(number, 2, f"write {letter}{round_}.txt")
            conversations[key] = writes_again_in_each_session(f"{letter}.txt", f"{letter}{round_}\n", 0.5, 0.5)
    with FakeAnthropic(conversations=conversations) as api:
        fleet = fleet_of(api)
        for name in ("w0", "w1", "w2"):
            fleet.start_worker(name, slots=2)
        spare = 3
        for round_ in range(CHAOS_ROUNDS):
            project = tmp_path / f"project{round_}"
            project.mkdir()
            git(project, "init", "-q", "-b", "main")
            (project / "README.md").write_text("# chaos\n")
            git(project, "add", "-A")
            git(project, "commit", "-q", "-m", "start")
            task = f"Write two files:\n- write a{round_}.txt\n- write b{round_}.txt"
            run = Watched(fleet.pa(project, task, "--local-slots", "0", "--heartbeat", "0.3"))
            time.sleep(chooser.uniform(0.2, 3.0))  # the kill point: anywhere from assignment to merge
            live = [name for name, worker in fleet.workers.items() if worker.poll() is None]
            victim = chooser.choice(live)
            os.killpg(fleet.workers[victim].pid, signal.SIGKILL)
            fleet.start_worker(f"w{spare}", slots=2)
            spare += 1
            code, events, err = run.finish()
            merged = [e["subtask_id"] for e in of_kind(events, "merged")]
            story = "\n".join(json.dumps(e)[:300] for e in events if e["kind"] != "agent_said") + err[-2000:]
            assert code == 0, f"round {round_}, {victim} killed:\n{story}"
            assert sorted(merged) == ["1", "2"], (round_, victim, merged)  # each once
            assert (project / "a.txt").read_text() == f"a{round_}\n" and (
                project / "b.txt"
            ).read_text() == f"b{round_}\n"
            subjects = git(project, "log", "--format=%s").splitlines()
            assert sum(s.startswith("agentproxy: merge") for s in subjects) == 2, subjects


def random_source() -> Any:
    import random

    seed = int(os.environ.get("AGENTPROXY_CHAOS_SEED", str(time.time_ns() % 100_000)))
    print(f"chaos seed {seed} (AGENTPROXY_CHAOS_SEED={seed} repeats it)")
    return random.Random(seed)
