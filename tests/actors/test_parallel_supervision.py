"""Supervision while several agents run at once (scripted agents speaking Claude Code's protocol):
a crashed worker is restarted on its own, the others are not disturbed."""

from __future__ import annotations

import subprocess
from typing import Any

from agentproxy.actors.claude_worker import ClaudeWorker

from agentproxy.messages import ActorRestarted, AgentStarted, Event, MakeTree, SubtaskFinished
from agentproxy.runtime import ActorClasses, run_task

WRITE_AND_FINISH = [
    [
        {"say": "Writing hello.py"},
        {"write": {"path": "hello.py", "content": "print('hello')\n"}},
        {"result": "Created hello.py."},
    ]
]
THREE_AT_ONCE = "Add hello.py:\n- in the first way\n- in the second way\n- in the third way"


def crashing_worker_of(subtask_id: str) -> type:
    """A worker that crashes once, on its first agent line, when it works on subtask_id; the others never do."""
    left = {"n": 1}

    def on_agent_line(self: Any, raw: str) -> None:
        if self.subtask_id == subtask_id and left["n"]:
            left["n"] -= 1
            raise RuntimeError(f"injected crash of the worker of {subtask_id}")
        ClaudeWorker.on_agent_line(self, raw)

    return type("CrashingOneWorker", (ClaudeWorker,), {"on_agent_line": on_agent_line})


def test_a_crashed_worker_is_restarted_without_disturbing_the_others(scripted_options) -> None:
    options = scripted_options(WRITE_AND_FINISH, parallel=3)
    events: list[Event] = []
    outcome = run_task(
        THREE_AT_ONCE,
        options,
        subscribers=[events.append],
        classes=ActorClasses(worker=crashing_worker_of("2")),
        timeout_s=120,
    )
    assert outcome.status == "done", outcome.reason
    restarts = [e for e in events if isinstance(e, ActorRestarted)]
    assert [(r.actor, r.restarts) for r in restarts] == [("worker:2", 1)]
    assert {e.subtask_id: e.status for e in events if isinstance(e, SubtaskFinished)} == {
        "1": "done",
        "2": "done",
        "3": "done",
    }
    # Only the crashed one started a second agent process (resuming its session); the others ran once.
    starts = [e.subtask_id for e in events if isinstance(e, AgentStarted)]
    assert starts.count("1") == 1 and starts.count("3") == 1
    assert (options.working_dir / "hello.py").read_text() == "print('hello')\n"
    log = subprocess.run(["git", "log", "--oneline"], cwd=options.working_dir, capture_output=True, text=True)
    assert log.stdout.count("agentproxy: merge") == 3


def run_with_an_integrator_crashing_once(integrator: type, options: Any) -> list[Event]:
    """THREE_AT_ONCE with that Integrator: the run ends done, the Integrator restarted once, the three
    subtasks merged, and no worktree left behind (the fresh instance found the crashed one's)."""
    events: list[Event] = []
    outcome = run_task(
        THREE_AT_ONCE, options, subscribers=[events.append], classes=ActorClasses(integrator=integrator), timeout_s=120
    )
    assert outcome.status == "done", outcome.reason
    assert [r.actor for r in events if isinstance(r, ActorRestarted)] == ["integrator"]
    log = subprocess.run(["git", "log", "--oneline"], cwd=options.working_dir, capture_output=True, text=True)
    assert log.stdout.count("agentproxy: merge") == 3
    listing = subprocess.run(["git", "worktree", "list"], cwd=options.working_dir, capture_output=True, text=True)
    assert len(listing.stdout.splitlines()) == 1
    return events


def test_a_crashed_integrator_is_restarted_on_the_same_run_and_merges_everything(scripted_options) -> None:
    from agentproxy.actors.integrator import Integrator

    left = {"n": 1}

    def on_integrate(self: Any, integrate: Any) -> None:
        if left["n"]:
            left["n"] -= 1
            raise RuntimeError("injected crash of the Integrator")
        Integrator.on_integrate(self, integrate)

    crashing = type("CrashingIntegrator", (Integrator,), {"on_integrate": on_integrate})
    run_with_an_integrator_crashing_once(crashing, scripted_options(WRITE_AND_FINISH, parallel=3))


def test_an_integrator_crashing_while_trees_are_made_is_restarted_and_each_agent_starts_once(scripted_options) -> None:
    from agentproxy.actors.integrator import Integrator

    left = {"n": 1}

    def tree_work(self: Any, handler: Any, request: Any) -> None:
        Integrator.tree_work(self, handler, request)
        if left["n"] and isinstance(request, MakeTree):
            left["n"] -= 1
            raise RuntimeError("injected crash of the Integrator, a tree being made on its thread")

    crashing = type("CrashingIntegrator", (Integrator,), {"tree_work": tree_work})
    events = run_with_an_integrator_crashing_once(crashing, scripted_options(WRITE_AND_FINISH, parallel=3))
    starts = [e.subtask_id for e in events if isinstance(e, AgentStarted)]
    assert sorted(starts) == ["1", "2", "3"]  # the tree made across the crash is answered once
