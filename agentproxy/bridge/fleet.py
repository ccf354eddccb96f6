"""The fleet: one broker, and the worker hosts behind it, shared by every run of this process.

`pa --listen` has one run; `pa-server --listen` many at once, all served by the same workers. The
fleet hands each run's Bridge what concerns it (a frame about an assignment goes to the run that made
it; a worker's announcements and losses go to every run) and counts each worker's busy slots across
the runs, so that no worker is given more assignments than it has slots.
"""

from __future__ import annotations

import collections
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from agentproxy.bridge import protocol
from agentproxy.bridge.broker import Said, listen
from agentproxy.options import ListenOptions

log = logging.getLogger("agentproxy.bridge")

ABOUT_AN_ASSIGNMENT = (protocol.Report, protocol.ResultReady, protocol.Judge)


@dataclass(frozen=True)
class Attached:
    """What a run's Bridge is told, from the broker's thread."""

    said: Callable[[list[Said]], object]
    lost: Callable[[bytes, str], object]
    notice: Callable[[str], None]  # a warning for the run's record


class Fleet:
    def __init__(self, options: ListenOptions) -> None:
        self.runs: dict[str, Attached] = {}
        self.owners: dict[str, str] = {}  # assignment id -> the run that made it
        self.busy: collections.Counter[bytes] = collections.Counter()  # worker -> assignments it holds
        self.lock = threading.Lock()
        self.broker, self.about = listen(options, self._route, self._lost, self._refused)

    # -- runs ------------------------------------------------------------------------------

    def attach(self, run: Attached) -> str:
        """A run joins: its Bridge hears from the workers from now on."""
        key = uuid.uuid4().hex
        with self.lock:
            self.runs[key] = run
        return key

    def detach(self, key: str) -> None:
        with self.lock:
            self.runs.pop(key, None)

    def claim(self, assignment: str, key: str) -> None:
        """Frames about this assignment go to that run."""
        with self.lock:
            self.owners[assignment] = key

    def another_runs(self, assignment: str, key: str) -> bool:
        """Whether the assignment belongs to another run still attached (not this run's to revoke)."""
        with self.lock:
            owner = self.owners.get(assignment)
            return owner is not None and owner != key and owner in self.runs

    def reserve(self, peer: bytes, slots: int) -> bool:
        """One of the worker's slots for an assignment, if it has one free across all runs."""
        with self.lock:
            if self.busy[peer] >= slots:
                return False
            self.busy[peer] += 1
            return True

    def release(self, peer: bytes) -> None:
        with self.lock:
            if self.busy[peer] > 0:
                self.busy[peer] -= 1

    def free(self, peer: bytes, slots: int) -> int:
        with self.lock:
            return slots - self.busy[peer]

    def send(self, peer: bytes, message: protocol.BridgeMsg) -> None:
        self.broker.send(peer, message)

    def stop(self) -> None:
        self.broker.stop()

    # -- the broker's thread ---------------------------------------------------------------

    def _route(self, said: list[Said]) -> None:
        with self.lock:
            runs, owners = dict(self.runs), self.owners
            batches: dict[str, list[Said]] = {key: [] for key in runs}
            for peer, message in said:
                if isinstance(message, protocol.Leaving):
                    self.busy.pop(peer, None)  # its work is handed back, in every run
                owner = owners.get(_assignment_of(message))
                for key in [owner] if owner in runs else runs:  # an unknown assignment: every run drops it
                    batches[key].append((peer, message))
        for key, batch in batches.items():
            if batch:
                runs[key].said(batch)

    def _lost(self, peer: bytes, reason: str) -> None:
        with self.lock:
            self.busy.pop(peer, None)
            runs = list(self.runs.values())
        for run in runs:
            run.lost(peer, reason)

    def _refused(self, key: str) -> None:
        """On the authenticator's thread: logged, and every run's record says so."""
        log.warning("a worker with an unknown key was refused: %s", key)
        with self.lock:
            runs = list(self.runs.values())
        for run in runs:
            run.notice(f"refused a worker whose key is not authorized: {key}")


def _assignment_of(message: protocol.AnyBridgeMsg) -> str:
    if isinstance(message, ABOUT_AN_ASSIGNMENT):
        return message.assignment
    if isinstance(message, protocol.Chunk):
        return message.transfer  # a result's transfer is named by its assignment
    return ""
