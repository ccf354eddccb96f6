"""The watchdog's decision on a tick, the ticker that prompts it, and the limit pauses' bookkeeping."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from agentproxy.agents.turn_clock import Pauses, PauseTooLong, Ticker, TurnClock
from agentproxy.messages import PauseOver
from agentproxy.rate_limits import Limit

SILENCE_S, TURN_S = 10.0, 100.0


def clock(started_at: float, last_output_at: float) -> TurnClock:
    return TurnClock(SILENCE_S, TURN_S, started_at=started_at, last_output_at=last_output_at)


@pytest.mark.parametrize(
    ("last_output_at", "now", "reason"),
    [
        (50.0, 55.0, None),  # spoke 5 s ago, 55 s into its turn
        (50.0, 60.5, "agent silent for 10s; killed"),
        (95.0, 100.5, "agent turn over its time limit of 100s; killed"),
    ],
    ids=["talking", "silent", "over-time"],
)
def test_an_open_turn_fails_when_the_agent_is_silent_or_over_its_time(
    last_output_at: float, now: float, reason: str | None
) -> None:
    assert clock(0.0, last_output_at).overrun(now, turn_open=True, waiting=False, paused=False) == reason


@pytest.mark.parametrize(
    ("turn_open", "waiting", "paused"),
    [(False, False, False), (True, True, False), (True, False, True)],
    ids=["idle-between-turns", "waiting-on-the-clarifier", "paused-for-a-limit"],
)
def test_no_fault_of_the_agent_never_fires(turn_open: bool, waiting: bool, paused: bool) -> None:
    long_silent = clock(0.0, 0.0)
    assert long_silent.overrun(10 * TURN_S, turn_open=turn_open, waiting=waiting, paused=paused) is None


def test_a_new_turn_restarts_both_measures() -> None:
    turn = clock(0.0, 0.0)
    turn.start(1000.0)
    assert turn.overrun(1005.0, turn_open=True, waiting=False, paused=False) is None
    turn.heard(1008.0)
    assert turn.overrun(1017.0, turn_open=True, waiting=False, paused=False) is None


def test_the_ticker_ticks_until_stopped_and_its_thread_ends() -> None:
    ticks: queue.Queue[float] = queue.Queue()
    ticker = Ticker(0.01, lambda: ticks.put(time.monotonic()), name="test-ticker")
    for _ in range(3):
        ticks.get(timeout=2)
    ticker.stop()
    assert not [t for t in threading.enumerate() if t.name == "test-ticker"]
    while not ticks.empty():
        ticks.get()
    time.sleep(0.05)
    assert ticks.empty()


def test_a_pause_tells_its_number_when_over_and_only_the_current_pause_counts() -> None:
    over: queue.Queue[PauseOver] = queue.Queue()
    pauses = Pauses(first_wait_s=0.05, max_wait_s=60, on_over=over.put)
    paused = pauses.begin(Limit(reason="API 429: rate limit"), "1", now=time.time())
    assert paused.subtask_id == "1" and paused.reason == "API 429: rate limit" and paused.wait_s < 1
    assert pauses.active and pauses.is_current(1)
    assert over.get(timeout=2) == PauseOver(pause=1)
    pauses.end()
    assert not pauses.active and not pauses.is_current(1)  # a late timer of an ended pause is ignored


def test_a_pause_past_the_longest_wait_is_refused_with_the_reason() -> None:
    pauses = Pauses(first_wait_s=1, max_wait_s=60, on_over=lambda _: None)
    now = time.time()
    with pytest.raises(PauseTooLong, match=r"usage limit; it lifts in 3600s.*--max-rate-limit-wait"):
        pauses.begin(Limit(reason="usage limit", resets_at=now + 3600), "1", now=now)
    assert not pauses.active
