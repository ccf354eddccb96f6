"""The Python API (agentproxy.api) in this process, driven offline by the scripted agent.

`claude_bin="<python> -m agentproxy.scripted_agent --script FILE"` puts the scripted agent in place
of the npm CLI, as `pa --claude-bin` does in tests/cli/test_cli.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from agentproxy.actors.dispatcher import RunOutcome

import agentproxy
from agentproxy import api
from agentproxy.api import event_kind, running, start_task
from agentproxy.errors import AgentNotFoundError, UnknownSessionError, UsageError, WorkdirError
from agentproxy.messages import AgentSaid, AnyEvent, SessionFinished, SessionStarted
from agentproxy.options import ListenOptions

pytestmark = pytest.mark.usefixtures("git_env")

RUN_TIMEOUT_S = 60
WRITE_HELLO = [
    [{"say": "Writing hello.txt."}, {"write": {"path": "hello.txt", "content": "hello\n"}}, {"result": "Done."}],
    [{"say": "Writing more.txt."}, {"write": {"path": "more.txt", "content": "more\n"}}, {"result": "Done."}],
]
SLEEPY = [[{"say": "Thinking for a long while."}, {"sleep": 30}, {"result": "Woke up."}]]


@pytest.fixture(autouse=True)
def no_run_outlives_its_test() -> Iterator[None]:
    yield
    for run in running():
        run.stop("the test ended")
        with contextlib.suppress(Exception):
            run.wait(RUN_TIMEOUT_S)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path / "project"


def scripted_agent(script: Path, turns: list[list[dict[str, Any]]]) -> str:
    script.write_text(json.dumps({"turns": turns}))
    return shlex.join([sys.executable, "-m", "agentproxy.scripted_agent", "--script", str(script)])


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains text."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def has_spoken(run: api.Run) -> bool:
    return any(isinstance(event, AgentSaid) for event in run.events_so_far())


def split_outcome(items: list[AnyEvent | RunOutcome]) -> tuple[list[AnyEvent], RunOutcome]:
    *events, outcome = items
    assert isinstance(outcome, RunOutcome), outcome
    assert not any(isinstance(event, RunOutcome) for event in events)
    return events, outcome  # type: ignore[return-value]


def test_run_task_yields_every_event_then_the_outcome(tmp_path: Path, workdir: Path) -> None:
    agent = scripted_agent(tmp_path / "script.json", WRITE_HELLO)
    items = list(agentproxy.run_task("write hello", workdir, claude_bin=agent, checks=["test -f hello.txt"]))
    events, outcome = split_outcome(items)
    assert outcome.status == "done", outcome
    kinds = [event_kind(event) for event in events]
    assert kinds[0] == "session_started" and kinds[-1] == "session_finished"
    assert {"agent_said", "checks_ran", "committed"} <= set(kinds)
    assert {event.session_id for event in events} == {outcome.session_id}
    assert (workdir / "hello.txt").read_text() == "hello\n"
    stored = agentproxy.get_session(outcome.session_id[:5])
    assert stored.row.id == outcome.session_id and stored.row.status == "done"
    assert stored.events == events  # what was streamed is what was recorded
    assert [row.id for row in agentproxy.list_sessions()] == [outcome.session_id]


def test_a_run_feeds_every_consumer(tmp_path: Path, workdir: Path) -> None:
    run = start_task("write hello", workdir, claude_bin=scripted_agent(tmp_path / "script.json", WRITE_HELLO))
    subscribed: list[AnyEvent] = []
    unsubscribe = run.subscribe(subscribed.append)
    assert run.session_id is not None
    # Two iterators at once, each from the first event, on threads of their own.
    with ThreadPoolExecutor(2) as pool:
        streams = [pool.submit(lambda: list(run.events())) for _ in range(2)]
        outcome = run.wait(RUN_TIMEOUT_S)
        every = [stream.result(RUN_TIMEOUT_S) for stream in streams]
    assert outcome is not None and outcome.status == "done" and run.outcome == outcome
    assert run.done and run.error is None and run not in running()
    everything = run.events_so_far()
    assert every == [everything, everything] and list(run.events()) == everything
    assert isinstance(everything[0], SessionStarted) and isinstance(everything[-1], SessionFinished)
    assert run.session_id == outcome.session_id
    # A subscriber gets what comes after it subscribed, in order, up to the end.
    assert subscribed and subscribed == everything[len(everything) - len(subscribed) :]
    unsubscribe()


def test_two_runs_at_once_in_two_directories(tmp_path: Path) -> None:
    def turns(name: str, sleep_s: float) -> list[list[dict[str, Any]]]:
        write = {"write": {"path": f"{name}.txt", "content": f"{name}\n"}}
        return [[{"say": f"Working on {name}."}, {"sleep": sleep_s}, write, {"result": "Done."}]]

    runs = {
        name: start_task(
            f"write {name}", tmp_path / name, claude_bin=scripted_agent(tmp_path / f"{name}.json", turns(name, sleep))
        )
        for name, sleep in (("one", 2), ("two", 4))
    }
    wait_for(lambda: all(has_spoken(run) for run in runs.values()), 30, "both agents to speak")
    assert all(not run.done for run in runs.values()), "both runs were running at once"
    assert set(running()) == set(runs.values())
    outcomes = {name: run.wait(RUN_TIMEOUT_S) for name, run in runs.items()}
    for name, outcome in outcomes.items():
        assert outcome is not None and outcome.status == "done", outcome
        assert (tmp_path / name / f"{name}.txt").read_text() == f"{name}\n"
        assert {event.session_id for event in runs[name].events_so_far()} == {outcome.session_id}
    assert not (tmp_path / "one" / "two.txt").exists() and not (tmp_path / "two" / "one.txt").exists()
    assert outcomes["one"].session_id != outcomes["two"].session_id  # type: ignore[union-attr]


def test_stop_interrupts_the_run_and_kills_its_agent(tmp_path: Path, workdir: Path) -> None:
    script = tmp_path / "sleepy.json"
    run = start_task("sleep on it", workdir, claude_bin=scripted_agent(script, SLEEPY))
    wait_for(lambda: has_spoken(run), 30, "the agent to speak")
    assert processes_mentioning(str(script)), "the scripted agent is not running"
    asked = time.monotonic()
    run.stop("stopped by the test")
    assert time.monotonic() - asked < 1  # stop() only asks
    outcome = run.wait(RUN_TIMEOUT_S)
    assert outcome is not None and outcome.status == "interrupted" and outcome.reason == "stopped by the test"
    assert time.monotonic() - asked < 20  # not the agent's 30 s sleep
    wait_for(lambda: not processes_mentioning(str(script)), 5, "the agent to be gone")
    finished = run.events_so_far()[-1]
    assert isinstance(finished, SessionFinished) and finished.status == "interrupted"
    assert agentproxy.get_session(outcome.session_id).row.status == "interrupted"


def test_stop_session_stops_the_run_of_that_session(tmp_path: Path, workdir: Path) -> None:
    script = tmp_path / "sleepy.json"
    run = start_task("sleep on it", workdir, claude_bin=scripted_agent(script, SLEEPY))
    wait_for(lambda: has_spoken(run), 30, "the agent to speak")
    assert run.session_id is not None
    assert not agentproxy.stop_session("no-such-session")
    assert agentproxy.stop_session(run.session_id)
    outcome = run.wait(RUN_TIMEOUT_S)
    assert outcome is not None and outcome.status == "interrupted"
    wait_for(lambda: not processes_mentioning(str(script)), 5, "the agent to be gone")
    assert not agentproxy.stop_session(run.session_id)  # nothing of it runs any more


def test_closing_run_task_early_stops_the_run(tmp_path: Path, workdir: Path) -> None:
    script = tmp_path / "sleepy.json"
    items = agentproxy.run_task("sleep on it", workdir, claude_bin=scripted_agent(script, SLEEPY))
    spoken = next(item for item in items if isinstance(item, AgentSaid))
    closed = time.monotonic()
    items.close()  # type: ignore[attr-defined]
    assert time.monotonic() - closed < 20
    assert running() == []
    wait_for(lambda: not processes_mentioning(str(script)), 5, "the agent to be gone")
    assert agentproxy.get_session(spoken.session_id).row.status == "interrupted"


def test_an_error_that_ends_a_run_is_raised_by_wait(tmp_path: Path, workdir: Path) -> None:
    agent = scripted_agent(tmp_path / "sleepy.json", SLEEPY)
    first = start_task("sleep on it", workdir, claude_bin=agent)
    wait_for(lambda: has_spoken(first), 30, "the first agent to speak")
    second = start_task("other work", workdir, claude_bin=agent)  # the directory is busy: found on the run's thread
    with pytest.raises(WorkdirError, match="another pa is working in"):
        second.wait(RUN_TIMEOUT_S)
    assert second.done and isinstance(second.error, WorkdirError) and second.outcome is None
    assert second.session_id is None and second.events_so_far() == []
    with pytest.raises(WorkdirError):
        list(agentproxy.run_task("other work", workdir, claude_bin=agent))
    assert not first.done  # the run that holds the directory goes on


@pytest.mark.parametrize(
    ("task", "arguments", "message"),
    [
        ("work", {"paralel": 2, "colour": "red"}, "unknown options: colour, paralel"),
        ("work", {"output": "json"}, "unknown option: output"),  # the CLI's, not a run's
        ("work", {"parallel": 0}, "parallel: 0 is not in the range"),
        ("work", {"agent_timeout": float("inf")}, "agent_timeout: 'inf' is not a finite number of seconds"),
        ("work", {"checks": "pytest"}, "checks is a list"),
        ("work", {"checks": [" "]}, "checks: must not be empty"),
        ("work", {"no_qa": "yes"}, "no_qa is True or False"),
        ("work", {"max_budget_usd": {"usd": 1}}, "max_budget_usd takes a text, a number or a path, not dict"),
        ("work", {"deny": ["("]}, "--deny"),
        ("work", {"listen": ListenOptions("tcp://192.0.2.1:5555", secure=False)}, "only a loopback address"),
        ("work", {"listen": "tcp://127.0.0.1:5555"}, "listen is a ListenOptions"),
        ("work", {"session_id": "deadbeef"}, "unknown session 'deadbeef'"),
        ("work", {"screenshots": ["no-such.png"]}, "screenshot not readable: no-such.png"),
        ("work", {"agent": "cursor"}, "unknown agent 'cursor'"),
        ("work", {"agents": "claude,claude"}, "an agent is named twice"),
        ("work", {"best_of": 9}, "best_of: 9 is not in the range 1<=x<=8"),
        ("", {}, "no task given"),
        ("  \n", {}, "the task is empty"),
        ("nul\0task", {}, "the task contains a NUL byte"),
    ],
)
def test_bad_arguments_raise_usage_error_before_anything_starts(
    task: str, arguments: dict[str, Any], message: str, tmp_path: Path, workdir: Path
) -> None:
    agent = scripted_agent(tmp_path / "script.json", WRITE_HELLO)
    with pytest.raises(UsageError) as raised:
        start_task(task, workdir, claude_bin=agent, **arguments)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    with pytest.raises(UsageError) as again:  # the generator checks as much, when iterated
        next(agentproxy.run_task(task, workdir, claude_bin=agent, **arguments))
    assert str(again.value) == str(raised.value)
    assert not workdir.exists() and running() == [] and agentproxy.list_sessions() == []


def test_a_missing_agent_is_a_usage_error(tmp_path: Path, workdir: Path) -> None:
    with pytest.raises(AgentNotFoundError, match="no-such-claude"):
        start_task("work", workdir, claude_bin=str(tmp_path / "no-such-claude"))
    assert not workdir.exists()


def test_best_of_from_python_lands_one_attempt_and_the_session_lists_every_attempts_agent(
    tmp_path: Path, workdir: Path
) -> None:
    agent = scripted_agent(tmp_path / "script.json", WRITE_HELLO)
    outcome = start_task("write hello", workdir, claude_bin=agent, best_of=2).wait(timeout=120)
    assert outcome.status == "done", outcome.reason
    subtasks = {row.subtask_id: (row.status, row.agent) for row in agentproxy.get_session(outcome.session_id).subtasks}
    assert subtasks.pop("1") == ("done", "")
    assert sorted(subtasks.values()) == [("discarded", "claude"), ("done", "claude")]


def test_get_session_of_an_unknown_id() -> None:
    with pytest.raises(UnknownSessionError, match="unknown session"):
        agentproxy.get_session("deadbeef")


def test_arun_task_is_the_async_twin(tmp_path: Path, workdir: Path) -> None:
    agent = scripted_agent(tmp_path / "script.json", WRITE_HELLO)

    async def collect() -> list[AnyEvent | RunOutcome]:
        return [item async for item in agentproxy.arun_task("write hello", workdir, claude_bin=agent)]

    events, outcome = split_outcome(asyncio.run(collect()))
    assert outcome.status == "done", outcome
    assert isinstance(events[0], SessionStarted) and isinstance(events[-1], SessionFinished)
    assert events == agentproxy.get_session(outcome.session_id).events
    assert (workdir / "hello.txt").read_text() == "hello\n"


def test_closing_arun_task_early_stops_the_run(tmp_path: Path, workdir: Path) -> None:
    script = tmp_path / "sleepy.json"
    agent = scripted_agent(script, SLEEPY)

    async def read_until_the_agent_speaks() -> str:
        items = agentproxy.arun_task("sleep on it", workdir, claude_bin=agent)
        async for item in items:
            if isinstance(item, AgentSaid):
                await items.aclose()  # type: ignore[attr-defined]
                return item.session_id
        raise AssertionError("the agent never spoke")

    session_id = asyncio.run(read_until_the_agent_speaks())
    assert running() == []
    wait_for(lambda: not processes_mentioning(str(script)), 5, "the agent to be gone")
    assert agentproxy.get_session(session_id).row.status == "interrupted"


def test_async_runs_at_once_share_one_loop(tmp_path: Path) -> None:
    def agent(name: str, sleep_s: float) -> str:
        write = {"write": {"path": f"{name}.txt", "content": f"{name}\n"}}
        return scripted_agent(tmp_path / f"{name}.json", [[{"sleep": sleep_s}, write, {"result": "Done."}]])

    async def outcome_of(name: str, sleep_s: float) -> RunOutcome:
        items = [
            item
            async for item in agentproxy.arun_task(f"write {name}", tmp_path / name, claude_bin=agent(name, sleep_s))
        ]
        return split_outcome(items)[1]

    async def both() -> list[RunOutcome]:
        return list(await asyncio.gather(outcome_of("one", 1), outcome_of("two", 3)))

    started = time.monotonic()
    outcomes = asyncio.run(both())
    assert [outcome.status for outcome in outcomes] == ["done", "done"]
    assert time.monotonic() - started < 1 + 3 + 10  # the loop waited on neither run
    assert (tmp_path / "one" / "one.txt").exists() and (tmp_path / "two" / "two.txt").exists()


def test_session_id_continues_a_session_with_more_work(tmp_path: Path, workdir: Path) -> None:
    agent = scripted_agent(tmp_path / "script.json", WRITE_HELLO)
    _, first = split_outcome(list(agentproxy.run_task("write hello", workdir, claude_bin=agent)))
    events, more = split_outcome(
        list(agentproxy.run_task("more work", workdir, session_id=first.session_id, claude_bin=agent))
    )
    assert more.status == "done" and more.session_id == first.session_id
    started = events[0]
    assert isinstance(started, SessionStarted) and started.continued and started.task == "more work"
    assert (workdir / "more.txt").read_text() == "more\n"  # the script's second turn: the agent session went on
    assert agentproxy.get_session(first.session_id).row.task == "more work"
    with pytest.raises(UsageError, match="works in"):
        start_task("more", tmp_path / "elsewhere", session_id=first.session_id, claude_bin=agent)


def test_an_empty_task_resumes_a_stopped_session(tmp_path: Path, workdir: Path) -> None:
    rested = [{"write": {"path": "rested.txt", "content": "ok\n"}}, {"result": "Done."}]
    agent = scripted_agent(tmp_path / "script.json", [SLEEPY[0], rested])
    run = start_task("sleep on it", workdir, claude_bin=agent)
    wait_for(lambda: has_spoken(run), 30, "the agent to speak")
    run.stop()
    stopped = run.wait(RUN_TIMEOUT_S)
    assert stopped is not None and stopped.status == "interrupted"
    events, resumed = split_outcome(
        list(agentproxy.run_task("", workdir, session_id=stopped.session_id[:5], claude_bin=agent))
    )
    assert resumed.status == "done" and resumed.session_id == stopped.session_id
    started = events[0]
    assert isinstance(started, SessionStarted) and started.continued and started.task == "sleep on it"
    assert (workdir / "rested.txt").read_text() == "ok\n"
