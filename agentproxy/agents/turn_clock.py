"""The timing of an agent's turns: the watchdog's decision, the ticker that prompts it, limit pauses.

The ticker's thread only calls back (the ClaudeWorker tells itself a message): every decision on the
turn's state is taken on the worker's own thread, which owns ``TurnClock`` and ``Pauses``.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

from agentproxy.agents import claude_stream as wire
from agentproxy.messages import AgentPaused, PauseOver
from agentproxy.rate_limits import Limit, limit_of, pause_s

TICKER_JOIN_S = 1.0


@dataclass
class TurnClock:
    """The agent's own time in its turn (monotonic seconds) against its limits."""

    silence_timeout_s: float
    agent_timeout_s: float
    started_at: float = 0.0
    last_output_at: float = 0.0

    def start(self, now: float) -> None:
        self.started_at = self.last_output_at = now

    def heard(self, now: float) -> None:
        self.last_output_at = now

    def overrun(self, now: float, *, turn_open: bool, waiting: bool, paused: bool) -> str | None:
        """Why the turn must be failed now, or None.

        Idle between turns, waiting on the Clarifier or paused for a limit is not the agent's fault.
        """
        if not turn_open or waiting or paused:
            return None
        if now - self.last_output_at > self.silence_timeout_s:
            return f"agent silent for {self.silence_timeout_s:g}s; killed"
        if now - self.started_at > self.agent_timeout_s:
            return f"agent turn over its time limit of {self.agent_timeout_s:g}s; killed"
        return None


class Ticker:
    """A daemon thread that calls ``tick()`` every ``interval_s`` until stopped; it reads no one's state."""

    def __init__(self, interval_s: float, tick: Callable[[], None], name: str) -> None:
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval_s, tick), name=name, daemon=True)
        self._thread.start()

    def _run(self, interval_s: float, tick: Callable[[], None]) -> None:
        while not self._stopped.wait(interval_s):
            tick()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=TICKER_JOIN_S)


class PauseTooLong(Exception):
    """The limit lifts later than the longest pause allowed: the turn fails instead."""


class Pauses:
    """The rate and usage limit pauses of one agent session: how long the next lasts, the current one's timer."""

    def __init__(self, first_wait_s: float, max_wait_s: float, on_over: Callable[[PauseOver], None]) -> None:
        self.first_wait_s = first_wait_s
        self.max_wait_s = max_wait_s
        self.on_over = on_over  # called on the pause's timer thread when it is over
        self.in_a_row = 0
        self.reason = ""
        self.lifts_at: float | None = None  # from a rejected rate_limit_event
        self._timer: threading.Timer | None = None

    @property
    def active(self) -> bool:
        return self._timer is not None

    def rejected(self, info: wire.RateLimitInfo) -> None:
        """The API rejected a request: when it says the limit lifts is kept for the pause it causes."""
        self.lifts_at = float(info.resetsAt) if info.resetsAt else None

    def limit_of(self, result: wire.ResultLine, now: float) -> Limit | None:
        """The limit that ended a failed turn, or None when the failure is something else."""
        text = result.result or ""
        return limit_of(result.api_error_status, result.api_error_type, text, self.lifts_at, now)

    def begin(self, limit: Limit, subtask_id: str, now: float) -> AgentPaused:
        """Start the next pause in a row, and its timer; raises PauseTooLong instead when it would last too long."""
        self.in_a_row += 1
        self.lifts_at = None
        wait_s = pause_s(limit, self.in_a_row, self.first_wait_s, now, random.Random())
        if wait_s > self.max_wait_s:
            raise PauseTooLong(
                f"{limit.reason}; it lifts in {wait_s:.0f}s, past the longest pause allowed"
                f" ({self.max_wait_s:g}s, --max-rate-limit-wait)"
            )
        self.reason = limit.reason
        self._timer = threading.Timer(wait_s, self.on_over, args=(PauseOver(pause=self.in_a_row),))
        self._timer.daemon = True
        self._timer.start()
        return AgentPaused(subtask_id=subtask_id, reason=limit.reason, wait_s=round(wait_s, 1), until=now + wait_s)

    def is_current(self, pause: int) -> bool:
        """False for the timer of a pause already ended (cancelled, or superseded)."""
        return self._timer is not None and pause == self.in_a_row

    def end(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def went_through(self) -> None:
        """A turn ended without hitting a limit: the next pause is the first again."""
        self.in_a_row = 0
