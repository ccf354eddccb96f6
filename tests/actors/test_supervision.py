"""The actor tree on real processes (the scripted agent speaks Claude Code's protocol): the happy
path, crashed actors restarted with their work re-sent, crash loops escalated, nothing left behind."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pykka
import pytest
from agentproxy.actors import supervisor
from agentproxy.actors.base import DISPATCHER, Directory
from agentproxy.actors.clarifier import Clarifier
from agentproxy.actors.claude_worker import ClaudeWorker
from agentproxy.actors.verifier import Verifier

from agentproxy import config
from agentproxy.messages import (
    ActorFailed,
    ActorRestarted,
    AgentLines,
    AgentPaused,
    Ask,
    Event,
    Restarted,
    Review,
    SessionFinished,
    StartWorker,
    StopWorker,
    SubtaskFinished,
)
from agentproxy.runtime import ActorClasses, run_task
from agentproxy.store import SessionStore

WRITE_AND_FINISH = [
    [
        {"say": "Writing hello.py"},
        {"write": {"path": "hello.py", "content": "print('hello')\n"}},
        {"result": "Created hello.py."},
    ]
]


def crashing(base: type, method: str, times: int) -> type:
    """A subclass of the actor base whose `method` raises the first `times` calls (per test)."""
    left = {"n": times}

    def crash_then_delegate(self: Any, *args: Any) -> Any:
        if left["n"] != 0:
            left["n"] -= 1
            raise RuntimeError(f"injected {base.__name__} crash")
        return getattr(base, method)(self, *args)

    return type(f"Crashing{base.__name__}", (base,), {method: crash_then_delegate})


def child_pids() -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The ppid is the 2nd field after the parenthesised command name.
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                children.append(int(entry.name))
    return children


def processes_running(command_line: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if (
                entry.name.isdigit()
                and (entry / "cmdline").read_bytes().replace(b"\0", b" ").strip() == command_line.encode()
            ):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def recorded(session_id: str) -> list[Event]:
    store = SessionStore(config.store_path())
    try:
        return store.events(session_id)
    finally:
        store.close()


def run(task: str, options, **kwargs: Any):
    events: list[Event] = []
    outcome = run_task(task, options, subscribers=[events.append], timeout_s=90, **kwargs)
    return outcome, events


def test_happy_path_commits_the_agents_work(scripted_options) -> None:
    options = scripted_options(WRITE_AND_FINISH, checks=("test -f hello.py",))
    outcome, events = run("Create hello.py", options)
    assert outcome.status == "done", outcome.reason
    assert outcome.commit
    assert (options.working_dir / "hello.py").read_text() == "print('hello')\n"
    assert isinstance(events[-1], SessionFinished) and events[-1].status == "done"
    assert [type(e).__name__ for e in recorded(outcome.session_id)] == [type(e).__name__ for e in events]


def test_crashed_verifier_is_restarted_and_the_review_resent(scripted_options) -> None:
    options = scripted_options(WRITE_AND_FINISH, checks=("test -f hello.py",))
    classes = ActorClasses(verifier=crashing(Verifier, "on_review", times=1))
    outcome, events = run("Create hello.py", options, classes=classes)
    assert outcome.status == "done", outcome.reason
    restarts = [e for e in events if isinstance(e, ActorRestarted)]
    assert [(r.actor, r.restarts) for r in restarts] == [("verifier", 1)]
    assert "injected Verifier crash" in restarts[0].reason


def test_crashed_worker_is_restarted_and_the_subtask_completes(scripted_options) -> None:
    options = scripted_options(WRITE_AND_FINISH, checks=("test -f hello.py",))
    classes = ActorClasses(worker=crashing(ClaudeWorker, "on_agent_line", times=1))
    outcome, events = run("Create hello.py", options, classes=classes)
    assert outcome.status == "done", outcome.reason
    assert any(isinstance(e, ActorRestarted) and e.actor == "worker:1" for e in events)
    assert (options.working_dir / "hello.py").exists()


def test_crash_loop_escalates_after_the_intensity(scripted_options) -> None:
    options = scripted_options(WRITE_AND_FINISH, checks=("true",), restart_intensity=2)
    classes = ActorClasses(verifier=crashing(Verifier, "on_review", times=-1))
    outcome, events = run("Create hello.py", options, classes=classes)
    assert outcome.status == "failed"
    assert "verifier actor kept crashing" in outcome.reason
    assert "3 crashes" in outcome.reason
    assert [e.restarts for e in events if isinstance(e, ActorRestarted)] == [1, 2]
    finished = [e for e in recorded(outcome.session_id) if isinstance(e, SessionFinished)]
    assert finished and finished[-1].status == "failed"


def test_no_thread_or_process_is_left_behind(scripted_options) -> None:
    threads_before = set(threading.enumerate())
    # The agent's command forks a grandchild: the whole process group must go, not just the agent.
    slow = [[{"say": "working"}, {"bash": "sleep 31.7 & sleep 31.7"}, {"result": "done"}]]
    options = scripted_options(slow, agent_timeout_s=2, max_attempts=0)
    outcome, _ = run("Sleep a lot", options)
    assert outcome.status == "failed"
    assert "2s" in outcome.reason
    leftover = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert leftover == []
    assert child_pids() == []
    assert processes_running("sleep 31.7") == []


def test_silent_agent_is_killed_by_the_watchdog(scripted_options) -> None:
    hung = [[{"say": "thinking very hard"}, {"sleep": 60}, {"result": "never"}]]
    options = scripted_options(hung, silence_timeout_s=1.5, max_attempts=0)
    outcome, events = run("Hang", options)
    assert outcome.status == "failed"
    finished = [e for e in events if isinstance(e, SubtaskFinished)]
    assert finished and "silent" in finished[0].reason
    assert child_pids() == []


@pytest.mark.parametrize("crash_message", [Review, AgentLines])
def test_fault_injection_targets_the_intended_message(crash_message: type) -> None:
    # Guards the helper above: a crashing subclass really overrides the handler it names.
    base, method = (Verifier, "on_review") if crash_message is Review else (ClaudeWorker, "on_agent_line")
    cls = crashing(base, method, times=1)
    assert cls.__dict__[method] is not getattr(base, method)


def test_resuming_a_plan_runs_only_the_unfinished_subtasks(scripted_options) -> None:
    from agentproxy.messages import Plan, Subtask, SubtaskStarted
    from agentproxy.sessions import Resumption, resumption

    options = scripted_options(WRITE_AND_FINISH, checks=("test -f hello.py",))
    first, _ = run("1. Create hello.py\n2. Explain hello.py", options)
    assert first.status == "done", first.reason
    plan = Plan(
        subtasks=[
            Subtask(id="1", title="one", instructions="a"),
            Subtask(id="2", title="two", instructions="b", depends_on=["1"], expects_changes=False),
        ]
    )  # rewrites the same file
    resume = Resumption(
        session_id=first.session_id,
        working_dir=str(options.working_dir),
        task="two steps",
        plan=plan,
        done_subtasks=("1",),
    )
    outcome, events = run("two steps", options, resume=resume)
    assert outcome.status == "done" and outcome.session_id == first.session_id
    assert [e.subtask_id for e in events if isinstance(e, SubtaskStarted)] == ["2"]
    assert resumption(first.session_id).done_subtasks == ("1", "2")  # a later resume would run nothing again


def test_uncommitted_work_found_before_the_run_is_committed_apart(scripted_options) -> None:
    import subprocess

    options = scripted_options(WRITE_AND_FINISH, checks=("test -f hello.py",))
    project = options.working_dir
    (project / "notes.txt").write_text("mine\n")
    run("Create hello.py", options)  # the first run makes the repository
    (project / "notes.txt").write_text("mine, edited\n")  # work in progress the user did not commit
    (project / "hello.py").unlink()
    outcome, events = run("Create hello.py", options)
    assert outcome.status == "done"
    log = subprocess.run(
        ["git", "log", "--format=%x00%s", "--name-only"], cwd=project, capture_output=True, text=True, check=True
    )
    entries = [[line for line in commit.split("\n") if line] for commit in log.stdout.split("\0")[1:]]
    assert entries[0] == ["agentproxy: Create hello.py", "hello.py"]
    assert entries[1][0] == "agentproxy: uncommitted changes found before: Create hello.py"
    assert "notes.txt" in entries[1] and "hello.py" in entries[1]  # the deletion was the user's too
    assert any("committed first" in getattr(e, "text", "") for e in events)


def test_an_agent_that_dies_mid_turn_fails_the_subtask_with_its_exit_code(scripted_options) -> None:
    dying = [[{"say": "about to crash"}, {"exit": 3}]]
    outcome, events = run("Crash", scripted_options(dying, max_attempts=0))
    assert outcome.status == "failed"
    finished = [e for e in events if isinstance(e, SubtaskFinished)]
    assert finished and "exited with code 3" in finished[0].reason
    assert child_pids() == []


# -- the watchdog counts only the agent's own time ----------------------------------------------

SILENCE_S = 1.5
ASK_THEN_WRITE = [
    [
        {"ask": {"question": "Which greeting?", "options": [{"label": "hello"}, {"label": "hi"}]}},
        {"write": {"path": "hello.py", "content": "print('{answer}')\n"}},
        {"result": "Created hello.py."},
    ]
]


class SlowClarifier(Clarifier):
    """Answers after the agent's silence limit has passed."""

    def on_ask(self, ask: Ask) -> None:
        time.sleep(2 * SILENCE_S)
        super().on_ask(ask)


def test_an_agent_waiting_on_a_slow_clarifier_is_not_silent(scripted_options) -> None:
    options = scripted_options(ASK_THEN_WRITE, checks=("test -f hello.py",), silence_timeout_s=SILENCE_S)
    outcome, _ = run("Create hello.py", options, classes=ActorClasses(clarifier=SlowClarifier))
    assert outcome.status == "done", outcome.reason


def test_an_agent_paused_for_a_limit_longer_than_its_silence_is_not_silent(scripted_options) -> None:
    limited_then_write = [[{"error": {"status": 429, "text": "rate limit reached"}}], *WRITE_AND_FINISH]
    options = scripted_options(
        limited_then_write,
        checks=("test -f hello.py",),
        silence_timeout_s=SILENCE_S,
        rate_limit_first_wait_s=2 * SILENCE_S,
    )
    outcome, events = run("Create hello.py", options)
    assert outcome.status == "done", outcome.reason
    assert [e.wait_s > SILENCE_S for e in events if isinstance(e, AgentPaused)] == [True]


# -- restarts wait out their backoff without blocking the Supervisor ----------------------------

BACKOFF_S = 1.0


class Probe(pykka.ThreadingActor):
    """Stands in for an actor: keeps what it is told."""

    use_daemon_thread = True

    def __init__(self, inbox: queue.Queue[Any]) -> None:
        super().__init__()
        self.inbox = inbox

    def on_receive(self, message: Any) -> None:
        self.inbox.put(message)


@dataclass
class Tree:
    directory: Directory
    supervisor: pykka.ActorRef
    started: list[str]  # the worker instances the Supervisor started, by name
    dispatcher: queue.Queue[Any]  # what the Dispatcher was told

    def crash(self, name: str) -> None:
        """What a crashed worker does: it stops, and its on_failure reports the crash."""
        ref = self.directory.get(name)
        assert ref is not None
        ref.stop()
        self.supervisor.tell(ActorFailed(name=name, error="injected crash"))


@pytest.fixture
def tree(monkeypatch: pytest.MonkeyPatch) -> Iterator[Tree]:
    monkeypatch.setattr(supervisor, "BACKOFF_BASE_S", BACKOFF_S)
    directory = Directory()
    started: list[str] = []
    dispatcher: queue.Queue[Any] = queue.Queue()

    def start_worker(name: str, agent: str) -> pykka.ActorRef:
        started.append(name)
        return Probe.start(queue.Queue())

    directory.bind(DISPATCHER, Probe.start(dispatcher))
    ref = supervisor.Supervisor.start(directory, {}, start_worker)
    yield Tree(directory, ref, started, dispatcher)
    ref.stop(timeout=10)


def test_a_crashed_worker_is_restarted_after_its_backoff_while_other_workers_are_served_at_once(tree: Tree) -> None:
    tree.supervisor.ask(StartWorker(name="worker:1"))
    crashed = tree.directory.get("worker:1")
    tree.crash("worker:1")
    began = time.monotonic()
    tree.supervisor.ask(StartWorker(name="worker:2"), timeout=BACKOFF_S / 2)
    tree.supervisor.ask(StopWorker(name="worker:2"), timeout=BACKOFF_S / 2)
    assert time.monotonic() - began < BACKOFF_S / 2
    assert tree.dispatcher.get(timeout=5 * BACKOFF_S) == Restarted(name="worker:1")
    assert time.monotonic() - began >= BACKOFF_S
    restarted = tree.directory.get("worker:1")
    assert restarted is not None and restarted != crashed and restarted.is_alive()
    assert tree.started == ["worker:1", "worker:2", "worker:1"]


@pytest.mark.parametrize("stop_first", [False, True], ids=["crash-then-stop", "stop-then-crash"])
def test_a_worker_stopped_before_its_restart_is_not_restarted(tree: Tree, stop_first: bool) -> None:
    tree.supervisor.ask(StartWorker(name="worker:1"))
    if stop_first:  # the Dispatcher ended the subtask just as the worker crashed
        tree.supervisor.ask(StopWorker(name="worker:1"))
        tree.supervisor.tell(ActorFailed(name="worker:1", error="injected crash"))
    else:
        tree.crash("worker:1")
        tree.supervisor.ask(StopWorker(name="worker:1"))
    with pytest.raises(queue.Empty):
        tree.dispatcher.get(timeout=2 * BACKOFF_S)
    assert tree.started == ["worker:1"] and tree.directory.get("worker:1") is None


def test_a_supervisor_stopped_during_a_backoff_restarts_nothing(tree: Tree) -> None:
    tree.supervisor.ask(StartWorker(name="worker:1"))
    tree.crash("worker:1")
    tree.supervisor.ask(StartWorker(name="worker:2"))  # the crash was handled: its restart is due
    tree.supervisor.stop(timeout=10)
    time.sleep(2 * BACKOFF_S)
    assert tree.started == ["worker:1", "worker:2"]
