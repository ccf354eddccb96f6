"""The ResilientBrain's failure counting holds when the Planner, Clarifier and Verifier call it at once."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator

import pytest

from agentproxy.brain.base import EventSink
from agentproxy.brain.offline import OfflineBrain
from agentproxy.brain.resilient import ResilientBrain
from agentproxy.errors import BrainError
from agentproxy.knowledge import Knowledge
from agentproxy.messages import BrainFellBack, Event, Plan

THREADS = 8
CALLS_PER_THREAD = 40
TASK = "1. write a\n2. write b"


class FailingBrain:
    """A primary brain that is down: every call fails, once every caller is inside (when given a barrier)."""

    name = "failing"

    def __init__(self, barrier: threading.Barrier | None = None) -> None:
        self.events = EventSink()
        self.barrier = barrier
        self.calls = 0
        self._lock = threading.Lock()

    def plan(self, task: str, knowledge: Knowledge) -> Plan:
        with self._lock:
            self.calls += 1
        if self.barrier is not None:
            self.barrier.wait(timeout=10)
        raise BrainError("the API is down")


@pytest.fixture(autouse=True)
def frequent_thread_switches() -> Iterator[None]:
    """Switch threads every microsecond, so that a read-modify-write without a lock does interleave."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


def hammer(threads: int, calls: int, call: Callable[[], Plan]) -> list[Plan]:
    plans: list[Plan] = []

    def run() -> None:
        for _ in range(calls):
            plans.append(call())

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    return plans


def fallbacks(events: list[Event]) -> list[BrainFellBack]:
    return [event for event in events if isinstance(event, BrainFellBack)]


def test_every_concurrent_failure_is_counted_and_the_primary_is_given_up_once() -> None:
    total = THREADS * CALLS_PER_THREAD
    primary = FailingBrain()
    events: list[Event] = []
    primary.events.connect(events.append)
    brain = ResilientBrain(primary, max_failures=total)

    plans = hammer(THREADS, CALLS_PER_THREAD, lambda: brain.plan(TASK, Knowledge()))

    assert plans == [OfflineBrain().plan(TASK, Knowledge())] * total
    assert (primary.calls, brain.failures_in_a_row) == (total, total)
    fell_back = fallbacks(events)
    assert len(fell_back) == total
    giving_up = [event for event in fell_back if event.for_rest_of_session]
    assert len(giving_up) == 1 and f"{total} failures in a row" in giving_up[0].reason
    assert brain.name == "offline (failing unavailable)"


def test_failures_in_flight_past_the_limit_neither_give_up_twice_nor_call_the_primary_again() -> None:
    primary = FailingBrain(barrier=threading.Barrier(THREADS))  # all calls are inside the primary at once
    events: list[Event] = []
    primary.events.connect(events.append)
    brain = ResilientBrain(primary, max_failures=2)

    hammer(THREADS, 1, lambda: brain.plan(TASK, Knowledge()))
    hammer(THREADS, CALLS_PER_THREAD, lambda: brain.plan(TASK, Knowledge()))

    assert (primary.calls, brain.failures_in_a_row) == (THREADS, THREADS)
    assert [event.for_rest_of_session for event in fallbacks(events)].count(True) == 1
    assert len(fallbacks(events)) == THREADS
    assert brain.given_up
