"""The terminal view of a run with several agents: the event lines scroll above a live panel of the subtasks.

Until a second subtask starts it prints exactly what TextView prints; from then on a rich Live panel at the
bottom of the terminal keeps one row per subtask: its state, the agent's last action, elapsed time and cost.
Imported only for a terminal (see view.text_view_for): rich stays out of `pa --help`.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from agentproxy.messages import (
    AgentFinished,
    AgentSaid,
    AgentStarted,
    AgentUsedTool,
    BaselineRan,
    ChecksRan,
    Event,
    FollowUpSent,
    Reviewed,
    SessionFinished,
    SubtaskFinished,
    SubtaskStarted,
)
from agentproxy.view import clip, describe, terminal_safe

REFRESHES_PER_S = 2  # often enough for the elapsed times to tick
TITLE_CHARS = 32
ACTION_CHARS = 60


@dataclass
class SubtaskRow:
    subtask_id: str
    title: str
    started_at: float
    state: str = "preparing"
    last_action: str = ""
    ended_at: float | None = None
    cost_usd: float = 0.0

    def elapsed_s(self, now: float) -> float:
        return (self.ended_at if self.ended_at is not None else now) - self.started_at


class LivePanel:
    """A ContextKeeper subscriber, like TextView: lines are buffered per event and written per batch (flush)."""

    def __init__(self, console: Console, clock: Callable[[], float] = time.time, auto_refresh: bool = True) -> None:
        self.console = console
        self.clock = clock
        self.auto_refresh = auto_refresh
        self.rows: dict[str, SubtaskRow] = {}
        self.lines: list[str] = []
        self.live: Live | None = None
        self.ended = False  # the session finished: whatever comes after prints plainly
        self._lock = threading.Lock()  # the rows are changed on the ContextKeeper's thread, drawn on Live's

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.track(event)
        if isinstance(event, SessionFinished):
            self.ended = True
            self.stop()  # the panel's last state stays on screen, the session's summary goes below it
        line = describe(event)
        if line is not None:
            self.lines.append(terminal_safe(line))
        if self.live is None and not self.ended and len(self.rows) > 1:
            self.start()

    def track(self, event: Event) -> None:
        """Update the subtask's row from its event."""
        if isinstance(event, SubtaskStarted):
            started = self.rows.setdefault(event.subtask_id, SubtaskRow(event.subtask_id, event.title, self.now(event)))
            started.title, started.state, started.ended_at = event.title, "preparing", None
            return
        row = self.rows.get(getattr(event, "subtask_id", ""))
        if row is None:
            return
        match event:
            case BaselineRan() | AgentStarted() | FollowUpSent():
                row.state = "running"
            case AgentSaid(text=text):
                row.state, row.last_action = "running", text.strip().split("\n", 1)[0]
            case AgentUsedTool(tool=tool, detail=detail):
                row.state, row.last_action = "running", f"{tool} {detail}".rstrip()
            case ChecksRan() | Reviewed():
                row.state = "reviewing"
            case AgentFinished(usage=usage):
                row.cost_usd += usage.cost_usd
            case SubtaskFinished(status=status):
                row.state, row.ended_at = status, self.now(event)

    def now(self, event: Event) -> float:
        return event.at or self.clock()

    def table(self) -> Table:
        table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold")
        for name in ("", "subtask", "state", "last action"):
            table.add_column(name, no_wrap=True, overflow="ellipsis")
        table.add_column("elapsed", justify="right", no_wrap=True)
        table.add_column("cost", justify="right", no_wrap=True)
        now = self.clock()
        with self._lock:
            for row in self.rows.values():
                table.add_row(
                    Text(terminal_safe(row.subtask_id)),
                    Text(terminal_safe(clip(row.title, TITLE_CHARS))),
                    Text(row.state, style=_STATE_STYLES.get(row.state, "")),
                    Text(terminal_safe(clip(row.last_action, ACTION_CHARS))),
                    _elapsed(row.elapsed_s(now)),
                    f"${row.cost_usd:.4f}",
                )
        return table

    def flush(self) -> None:
        """Write the batch's lines: above the panel once it shows, else as TextView does."""
        lines, self.lines = self.lines, []
        if self.live is not None:
            if lines:
                self.live.console.print(Text("\n".join(lines)))
            self.live.refresh()  # the panel below the lines, up to date
            return
        if lines:
            self.console.file.write("".join(f"{line}\n" for line in lines))
        self.console.file.flush()

    def start(self) -> None:
        self.flush()  # what came before the second subtask stays plain
        self.live = Live(
            console=self.console,
            get_renderable=self.table,
            auto_refresh=self.auto_refresh,
            refresh_per_second=REFRESHES_PER_S,
            redirect_stdout=False,  # other threads' output is not ours to move
            redirect_stderr=False,
        )
        self.live.start(refresh=True)
        atexit.register(self.stop)  # a run that dies without its SessionFinished still gives the cursor back

    def stop(self) -> None:
        """End the live panel (once); later lines print plainly below it."""
        if self.live is None:
            return
        self.flush()
        live, self.live = self.live, None
        live.stop()
        atexit.unregister(self.stop)


_STATE_STYLES = {"running": "cyan", "reviewing": "yellow", "done": "green", "failed": "red", "blocked": "magenta"}


def _elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
