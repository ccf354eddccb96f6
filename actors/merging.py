"""The Dispatcher's merging of verified work: each subtask's branch into the integration branch (a
conflict becomes a resolve subtask for an agent in the integration worktree), then the final review
of the merged whole (a failure becomes a fix subtask there), then landing on the user's branch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentproxy.actors.base import INTEGRATOR, SUPERVISOR

from agentproxy.messages import Integrate, Integrated, Land, LandDone, ReviewDone, StopWorker
from agentproxy.run_plan import FINAL_ID, SubtaskState
from agentproxy.subtask_prompts import MARKERS_LEFT, final_subtask, fix_subtask, resolve_subtask
from agentproxy.worktrees import RESULT

if TYPE_CHECKING:
    from agentproxy.actors.dispatcher import Dispatcher

RUN = "run"  # the key of a request about the whole run, not one subtask


class Merging:
    """The Dispatcher's part that merges verified work and lands it; runs on its thread, with its state."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def on_verified(self, state: SubtaskState) -> None:
        d = self.dispatcher
        state.verified = True
        if state.kind != "resolve":  # a resolver keeps its agent until its merge is concluded
            d.directory.tell(SUPERVISOR, StopWorker(name=state.worker))
        self.integrate(state)

    def integrate(self, state: SubtaskState) -> None:
        d = self.dispatcher
        state.status = "merging"
        if state.kind == "resolve":
            merged = d.plan.get(state.merges)
            title = merged.subtask.title if merged is not None else "your branch"
            d.send(INTEGRATOR, state.id, Integrate(subtask_id=state.merges, title=title, conclude=True))
        else:
            integrate = Integrate(subtask_id=state.id, title=state.subtask.title, integration=state.kind == "fix")
            d.send(INTEGRATOR, state.id, integrate)

    def on_integrated(self, integrated: Integrated) -> None:
        d = self.dispatcher
        resolver = d.plan.get(resolver_id(integrated.subtask_id))
        if resolver is not None and resolver.status == "merging":
            self.on_resolved(resolver, integrated)
            return
        state = d.plan[integrated.subtask_id]
        if not d.done_with(INTEGRATOR, state.id):
            return  # answered already
        if integrated.conflicted:
            self.start_resolver(state.id, integrated.conflicted)
        elif integrated.error:
            d.end_subtask(state, "failed", f"its work could not be merged: {integrated.error}")
        else:
            d.end_subtask(state, "done")

    def start_resolver(self, merging_id: str, files: list[str]) -> None:
        d = self.dispatcher
        assert d.run is not None
        merging = d.plan.get(merging_id)
        merged = [s.subtask for s in d.plan.planned() if s.status == "done"]
        subtask = resolve_subtask(
            d.run.task, resolver_id(merging_id), merging.subtask if merging else None, merged, files
        )
        d.start_subtask(d.plan.add(SubtaskState(subtask=subtask, kind="resolve", merges=merging_id)))

    def on_resolved(self, resolver: SubtaskState, integrated: Integrated) -> None:
        """The Integrator concluded (or refused to conclude) the merge a resolver worked on."""
        d = self.dispatcher
        if not d.done_with(INTEGRATOR, resolver.id):
            return  # answered already
        if integrated.conflicted and resolver.attempt <= d.options.max_attempts:
            d.agents.follow_up(resolver, MARKERS_LEFT.format(files=", ".join(integrated.conflicted)), counts=True)
        elif integrated.conflicted or integrated.error:
            d.end_subtask(resolver, "failed", integrated.error or "conflict markers are left")
        elif resolver.merges == RESULT:
            d.end_subtask(resolver, "done", then_schedule=False)
            self.land()  # the user's branch is merged into the result: land it now
        else:
            d.end_subtask(resolver, "done", then_schedule=False)
            d.end_subtask(d.plan[resolver.merges], "done")

    def conclude(self) -> None:
        """Nothing left to run: end on a failure, else verify the whole (isolated) and land it."""
        d = self.dispatcher
        assert d.run is not None
        if unfinished := d.plan.unfinished():
            failed = [s for s in unfinished if s.status == "failed"] or unfinished
            first = failed[0]
            more = f" (and {len(unfinished) - 1} more unfinished)" if len(unfinished) > 1 else ""
            d.finish("failed", f"subtask {first.id} ({first.subtask.title}) {first.status}: {first.reason}{more}")
        elif d.isolated and d.plan.get(FINAL_ID) is None:
            planned = [s.subtask for s in d.plan.planned()]
            d.make_tree(d.plan.add(SubtaskState(subtask=final_subtask(d.run.task, planned), kind="final")))
        else:
            self.land()

    def on_final_review(self, final: SubtaskState, review: ReviewDone) -> None:
        d = self.dispatcher
        assert d.run is not None
        if review.verdict.passed:
            final.status = "done"
            self.land()
            return
        d.fixes += 1
        if d.fixes > d.options.max_attempts:
            findings = "; ".join(review.verdict.findings) or "the final review failed"
            d.finish("failed", f"the merged result still fails after {d.options.max_attempts} fixes: {findings}")
            return
        final.status = "waiting"  # for the fix; then the whole is reviewed again
        fix = fix_subtask(d.run.task, d.fixes, review.verdict.follow_up, review.verdict.findings)
        d.start_subtask(d.plan.add(SubtaskState(subtask=fix, kind="fix")))

    def after_fix(self) -> None:
        """A fix subtask's work is committed in the integration worktree: review the whole again."""
        d = self.dispatcher
        d.make_tree(d.plan[FINAL_ID])

    def land(self) -> None:
        d = self.dispatcher
        assert d.run is not None
        d.send(INTEGRATOR, RUN, Land(task=d.run.task))

    def on_land_done(self, done: LandDone) -> None:
        d = self.dispatcher
        d.done_with(INTEGRATOR, RUN)
        if done.conflicted:
            self.start_resolver("result", done.conflicted)
        elif done.error:
            what = "the verified result could not land" if d.isolated else "the work is done but could not be committed"
            d.finish("failed", f"{what}: {done.error}")
        else:
            d.landed_commit = done.landed.commit if done.landed is not None else None
            d.finish("done")


def resolver_id(merging_id: str) -> str:
    return f"merge-{merging_id}"
