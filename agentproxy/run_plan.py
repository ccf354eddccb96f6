"""A run's subtasks as a graph, with each one's state: which are ready, which a failure blocks.

Besides the plan's own subtasks a run may add agent work of three kinds: ``attempt`` (one of the
--best-of attempts at a subtask, in a worktree of its own), ``resolve`` (an agent resolves a merge
conflict in the integration worktree) and ``fix`` (an agent fixes what the final verification of the
whole found). Plain data, owned by the Dispatcher.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from agentproxy.loops import VOLATILE
from agentproxy.messages import CheckResult, CheckVerdict, Subtask

Kind = Literal["plan", "attempt", "resolve", "fix", "final"]
OWN_TREE = frozenset({"plan", "attempt"})  # kinds that work in a worktree of their own (when isolated)
# An agent (or the final review) is busy with the subtask in these.
ACTIVE = frozenset({"tree", "preparing", "running", "reviewing", "asking"})
VERIFIER = "verifier"  # agentproxy.actors.base.VERIFIER: actors import this module, not the other way
SETTLED = frozenset({"done", "failed", "blocked", "discarded"})
FINAL_ID = "final"


@dataclass
class SubtaskState:
    subtask: Subtask
    kind: Kind = "plan"
    merges: str = ""  # resolve: the subtask whose merge it resolves ("result": the user's branch, at landing)
    status: str = "pending"  # pending | tree | preparing | running | reviewing | asking | merging | settled ones
    attempt: int = 1
    agent_session_id: str | None = None
    worker: str = ""
    worker_started: bool = False
    agent: str = ""  # the agent backend working on it, once it started
    race: str = ""  # an attempt (--best-of): the subtask it is one of the attempts at
    summary: str = ""  # the agent's last final message
    remote: bool = False  # it runs on a worker host: its agent and its checks are there
    cwd: str = ""  # where its agent works: the user's tree, its worktree, or the integration worktree
    base_commit: str = ""  # where its tree started: the review reads the diff from here
    base_tree: str = ""  # git's id of the base's files: the base's check results are kept under it
    env: dict[str, str] = field(default_factory=dict)  # the project's environment, for the agent
    agent_cost_usd: float = 0.0  # its agent session's running total: a resumed agent goes on from it
    verified: bool = False  # its work passed review (merging may still be ahead)
    told_nothing_changed: bool = False
    check_failures: list[str] = field(default_factory=list)  # what failed, per review, newest last
    questions_answered: int = 0
    reason: str = ""  # why it failed or is blocked

    @property
    def id(self) -> str:
        return self.subtask.id

    @property
    def checker(self) -> str:
        """Who prepares and reviews its tree: the Verifier here, or (remote) the actors where it runs."""
        return self.worker if self.remote else VERIFIER


class RunPlan:
    def __init__(self, subtasks: Sequence[Subtask] = ()) -> None:
        self.states: dict[str, SubtaskState] = {s.id: SubtaskState(subtask=s) for s in subtasks}

    def __iter__(self) -> Iterator[SubtaskState]:
        return iter(list(self.states.values()))

    def __getitem__(self, subtask_id: str) -> SubtaskState:
        return self.states[subtask_id]

    def get(self, subtask_id: str) -> SubtaskState | None:
        return self.states.get(subtask_id)

    def add(self, state: SubtaskState) -> SubtaskState:
        self.states[state.id] = state
        return state

    def planned(self) -> list[SubtaskState]:
        return [s for s in self if s.kind == "plan"]

    def ready(self) -> list[SubtaskState]:
        """Pending subtasks whose dependencies are done (merged, when isolated), in plan order."""
        done = {s.id for s in self if s.status == "done"}
        return [s for s in self if s.status == "pending" and all(d in done for d in s.subtask.depends_on)]

    def active(self) -> list[SubtaskState]:
        return [s for s in self if s.status in ACTIVE]

    def busy(self) -> bool:
        """Something is under way: an agent, a review, a merge."""
        return any(s.status not in SETTLED and s.status != "pending" for s in self)

    def blocked_by(self, failed: str) -> list[SubtaskState]:
        """The pending subtasks that depend on failed, directly or not; marked blocked."""
        blocked: list[SubtaskState] = []
        frontier = {failed}
        while frontier:
            hit = [s for s in self if s.status == "pending" and frontier & set(s.subtask.depends_on)]
            for state in hit:
                state.status, state.reason = "blocked", f"it depends on {failed}, which failed"
            blocked += hit
            frontier = {s.id for s in hit}
        return blocked

    def unfinished(self) -> list[SubtaskState]:
        return [s for s in self.planned() if s.status != "done"]


def failure_signature(checks: list[CheckResult], verdicts: list[CheckVerdict]) -> str:
    """What the change broke, comparable across attempts: those commands and their output, volatile parts masked."""
    blamed = {verdict.command for verdict in verdicts if verdict.kind == "failed"}
    return "\n".join(f"{c.command}\n{VOLATILE.sub('#', c.output_tail)}" for c in checks if c.command in blamed)
