"""--best-of N: the Dispatcher's races, each subtask attempted N times at once and the best verified attempt landed.

When a subtask is ready, N attempts of it start, each an agent in its own worktree (with --agents,
spread across the vendors in turn). Each attempt's first decisive review is held: passed, or failed
with the follow-up it would get. Once every attempt is held or has ended, the race is decided. Among
those that passed, the brain picks one with its reason (the Verifier reads their diffs; offline: the
smallest diff, then the first to pass) and it merges as the subtask. When none passed, the best failing
attempt (fewest checks broken, then the first) gets its follow-up and goes on alone. Every other
attempt is discarded: its agent stopped, its worktree and branch removed, its cost already counted.
The subtask itself ends as its chosen attempt ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec
from agentproxy.actors.base import INTEGRATOR, VERIFIER

from agentproxy.messages import (
    AttemptVerdict,
    BestOfChosen,
    BestPicked,
    Candidate,
    Discard,
    PickBest,
    ReviewDone,
    SubtaskStarted,
)
from agentproxy.run_plan import SETTLED, SubtaskState

if TYPE_CHECKING:
    from agentproxy.actors.dispatcher import Dispatcher

ATTEMPT_SEPARATOR = "~"


@dataclass
class Race:
    subtask: SubtaskState
    attempts: list[str]
    held: dict[str, ReviewDone] = field(default_factory=dict)  # attempt -> its first decisive review, in order
    picking: bool = False  # the brain is picking among those that passed: nothing is judged meanwhile
    chosen: str = ""  # decided: the attempt that goes on


class Races:
    """The Dispatcher's part that runs best-of-N; on its thread, with its state."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.races: dict[str, Race] = {}  # by the raced subtask's id

    def start(self, state: SubtaskState) -> None:
        """N attempts of the subtask join the plan, pending; the subtask waits for them."""
        d = self.dispatcher
        assert d.run is not None
        agents = d.options.agents
        ids = []
        for number in range(1, d.options.best_of + 1):
            attempt_id = f"{state.id}{ATTEMPT_SEPARATOR}{number}"
            agent = agents[(number - 1) % len(agents)] if len(agents) > 1 else d.agent_for(state.subtask)
            subtask = msgspec.structs.replace(state.subtask, id=attempt_id, depends_on=[], agent=agent)
            attempt = d.plan.add(SubtaskState(subtask=subtask, kind="attempt", race=state.id))
            attempt.agent_session_id = d.run.agent_sessions.get(attempt_id)  # resumed: it goes on where it was
            attempt.agent = d.run.agents.get(attempt_id, agent)
            ids.append(attempt_id)
        state.status = "racing"
        self.races[state.id] = Race(subtask=state, attempts=ids)
        d.record(SubtaskStarted(subtask_id=state.id, title=state.subtask.title, attempt=state.attempt))

    def holds(self, attempt: SubtaskState, review: ReviewDone) -> bool:
        """Hold a decisive review of an attempt while its race is open; False: the race is decided, judge it."""
        race = self.races[attempt.race]
        if race.chosen:
            return False
        attempt.status = "held"
        race.held[attempt.id] = review
        self.decide_when_all_in(race)
        return True

    def on_attempt_ended(self, attempt: SubtaskState, status: str, reason: str) -> None:
        """An attempt failed before its race was decided (it is out), or the chosen one ended: so does the subtask."""
        race = self.races[attempt.race]
        if race.chosen == attempt.id:
            self.dispatcher.end_subtask(race.subtask, status, f"attempt {attempt.id}: {reason}" if reason else "")
        elif not race.chosen and not race.picking and status == "failed":
            self.decide_when_all_in(race)

    def decide_when_all_in(self, race: Race) -> None:
        d = self.dispatcher
        attempts = [d.plan[attempt_id] for attempt_id in race.attempts]
        if any(a.status not in SETTLED and a.status != "held" for a in attempts):
            return
        passed = [attempt_id for attempt_id, review in race.held.items() if review.verdict.passed]
        if passed:
            race.picking = True
            self.ask_pick(race, [d.plan[attempt_id] for attempt_id in passed])
        elif race.held:
            best = min(race.held, key=lambda attempt_id: failing(race.held[attempt_id]))  # min keeps the first
            reason = f"none passed; it broke the fewest checks ({failing(race.held[best])})"
            self.choose(race, best, passed=False, reason=reason)
        else:
            d.end_subtask(race.subtask, "failed", "every attempt failed: " + "; ".join(a.reason for a in attempts))

    def ask_pick(self, race: Race, passed: list[SubtaskState]) -> None:
        d = self.dispatcher
        assert d.run is not None
        candidates = [
            Candidate(
                attempt_id=a.id,
                agent=a.agent,
                cwd=a.cwd,
                base_commit=a.base_commit,
                summary=a.summary,
            )
            for a in passed
        ]
        pick = PickBest(
            subtask_id=race.subtask.id, task=d.run.task, subtask=race.subtask.subtask, candidates=candidates
        )
        d.send(VERIFIER, race.subtask.id, pick)

    def on_picked(self, picked: BestPicked) -> None:
        d = self.dispatcher
        d.done_with(VERIFIER, picked.subtask_id)
        race = self.races.get(picked.subtask_id)
        if race is None or not race.picking:
            return
        race.picking = False
        self.choose(race, picked.attempt_id, passed=True, reason=picked.reason, diff_lines=picked.diff_lines)

    def choose(
        self, race: Race, chosen: str, *, passed: bool, reason: str, diff_lines: dict[str, int] | None = None
    ) -> None:
        """Record every attempt's verdict and the choice; discard the others; the chosen one goes on."""
        d = self.dispatcher
        race.chosen = chosen
        verdicts = [
            self.verdict_of(race, d.plan[attempt_id], (diff_lines or {}).get(attempt_id))
            for attempt_id in race.attempts
        ]
        d.record(
            BestOfChosen(subtask_id=race.subtask.id, chosen=chosen, passed=passed, reason=reason, attempts=verdicts)
        )
        for attempt_id in race.attempts:
            attempt = d.plan[attempt_id]
            if attempt_id != chosen and attempt.status not in SETTLED:
                d.end_subtask(attempt, "discarded", f"{chosen} was chosen", then_schedule=False)
            if attempt_id != chosen and attempt.cwd:
                d.directory.tell(INTEGRATOR, Discard(subtask_id=attempt_id))
        winner, review = d.plan[chosen], race.held[chosen]
        winner.status = "reviewing"  # its held review is judged now, as if it had just arrived
        d.agents.judge(winner, review)

    def verdict_of(self, race: Race, attempt: SubtaskState, diff_lines: int | None) -> AttemptVerdict:
        review = race.held.get(attempt.id)
        return AttemptVerdict(
            attempt_id=attempt.id,
            agent=attempt.agent,
            passed=review is not None and review.verdict.passed,
            failing=failing(review) if review is not None else 0,
            diff_lines=diff_lines,
            cost_usd=attempt.agent_cost_usd,
        )


def failing(review: ReviewDone) -> int:
    """How many checks the change broke; a failed review without a broken check counts as one."""
    broken = sum(1 for verdict in review.check_verdicts if verdict.kind == "failed")
    return broken or (0 if review.verdict.passed else 1)
