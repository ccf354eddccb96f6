"""The Dispatcher's merging of verified work: each subtask's branch into the integration branch (a
conflict becomes a resolve subtask for an agent in the integration worktree), then the final review
of the merged whole (a failure becomes a fix subtask there), then landing on the user's branch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentproxy.actors.base import INTEGRATOR, SUPERVISOR

from agentproxy.messages import Integrate, Integrated, Land, LandDone, ReviewDone, StopWorker
from agentproxy.run_plan import FINAL_ID, SubtaskState
from agentproxy.subtask_prompts import MARKERS_LEFT, final_subtask, fix_subtask, resolve_subtask

if TYPE_CHECKING:
    from agentproxy.actors.dispatcher import Dispatcher

RUN = "run"  # the key of a request about the whole run, not one subtask
RESULT = "result"  # the integration branch: merging the user's branch into it before landing


class Merging:
    """Mixed into the Dispatcher: every method runs on its thread, with its state."""

    def on_verified(self: Dispatcher, state: SubtaskState) -> None:
        state.verified = True
        if state.kind != "resolve":  # a resolver keeps its agent until its merge is concluded
            self.directory.tell(SUPERVISOR, StopWorker(name=state.worker))
        self.integrate(state)

    def integrate(self: Dispatcher, state: SubtaskState) -> None:
        state.status = "merging"
        if state.kind == "resolve":
            merged = self.plan.get(state.merges)
            title = merged.subtask.title if merged is not None else "your branch"
            self.send(INTEGRATOR, state.id, Integrate(subtask_id=state.merges, title=title, conclude=True))
        else:
            self.send(INTEGRATOR, state.id, Integrate(subtask_id=state.id, title=state.subtask.title))

    def on_integrated(self: Dispatcher, integrated: Integrated) -> None:
        resolver = self.plan.get(resolver_id(integrated.subtask_id))
        if resolver is not None and resolver.status == "merging":
            self.on_resolved(resolver, integrated)
            return
        state = self.plan[integrated.subtask_id]
        self.done_with(INTEGRATOR, state.id)
        if integrated.conflicted:
            self.start_resolver(state.id, integrated.conflicted)
        elif integrated.error:
            self.end_subtask(state, "failed", f"its work could not be merged: {integrated.error}")
        else:
            self.end_subtask(state, "done")

    def start_resolver(self: Dispatcher, merging_id: str, files: list[str]) -> None:
        assert self.run is not None
        merging = self.plan.get(merging_id)
        merged = [s.subtask for s in self.plan.planned() if s.status == "done"]
        subtask = resolve_subtask(
            self.run.task, resolver_id(merging_id), merging.subtask if merging else None, merged, files
        )
        self.start_subtask(self.plan.add(SubtaskState(subtask=subtask, kind="resolve", merges=merging_id)))

    def on_resolved(self: Dispatcher, resolver: SubtaskState, integrated: Integrated) -> None:
        """The Integrator concluded (or refused to conclude) the merge a resolver worked on."""
        self.done_with(INTEGRATOR, resolver.id)
        if integrated.conflicted and resolver.attempt <= self.options.max_attempts:
            self.follow_up(resolver, MARKERS_LEFT.format(files=", ".join(integrated.conflicted)), counts=True)
        elif integrated.conflicted or integrated.error:
            self.end_subtask(resolver, "failed", integrated.error or "conflict markers are left")
        elif resolver.merges == RESULT:
            self.end_subtask(resolver, "done", then_schedule=False)
            self.land()  # the user's branch is merged into the result: land it now
        else:
            self.end_subtask(resolver, "done", then_schedule=False)
            self.end_subtask(self.plan[resolver.merges], "done")

    def conclude(self: Dispatcher) -> None:
        """Nothing left to run: end on a failure, else verify the whole (isolated) and land it."""
        assert self.run is not None
        if unfinished := self.plan.unfinished():
            failed = [s for s in unfinished if s.status == "failed"] or unfinished
            first = failed[0]
            more = f" (and {len(unfinished) - 1} more unfinished)" if len(unfinished) > 1 else ""
            self.finish("failed", f"subtask {first.id} ({first.subtask.title}) {first.status}: {first.reason}{more}")
        elif self.isolated and self.plan.get(FINAL_ID) is None:
            planned = [s.subtask for s in self.plan.planned()]
            self.make_tree(self.plan.add(SubtaskState(subtask=final_subtask(self.run.task, planned), kind="final")))
        else:
            self.land()

    def on_final_review(self: Dispatcher, final: SubtaskState, review: ReviewDone) -> None:
        assert self.run is not None
        if review.verdict.passed:
            final.status = "done"
            self.land()
            return
        self.fixes += 1
        if self.fixes > self.options.max_attempts:
            findings = "; ".join(review.verdict.findings) or "the final review failed"
            self.finish("failed", f"the merged result still fails after {self.options.max_attempts} fixes: {findings}")
            return
        final.status = "waiting"  # for the fix; then the whole is reviewed again
        fix = fix_subtask(self.run.task, self.fixes, review.verdict.follow_up, review.verdict.findings)
        self.start_subtask(self.plan.add(SubtaskState(subtask=fix, kind="fix")))

    def after_fix(self: Dispatcher) -> None:
        """A fix subtask's work is committed in the integration worktree: review the whole again."""
        self.make_tree(self.plan[FINAL_ID])

    def land(self: Dispatcher) -> None:
        assert self.run is not None
        self.send(INTEGRATOR, RUN, Land(task=self.run.task))

    def on_land_done(self: Dispatcher, done: LandDone) -> None:
        self.done_with(INTEGRATOR, RUN)
        if done.conflicted:
            self.start_resolver("result", done.conflicted)
        elif done.error:
            self.finish("failed", f"the verified result could not land: {done.error}")
        else:
            self.landed_commit = done.landed.commit if done.landed is not None else None
            self.finish("done")


def resolver_id(merging_id: str) -> str:
    return f"merge-{merging_id}"
