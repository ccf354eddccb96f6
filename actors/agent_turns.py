"""The Dispatcher's dealings with agents: a subtask's way to its first turn (its tree, its
environment and base), judging its reviews, follow-ups, answers to what its final message asked,
and what its agent spends against the budget.

It gives no credit for no work: a subtask reported done with nothing changed is sent back once,
then failed. The same failing checks after two follow-ups in a row end the subtask as stuck. A
final message the review finds to be a question is answered by the Clarifier, not judged. Over
the budget, the running agents are interrupted and the run ends once their turns have ended.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from agentproxy.actors.base import CLARIFIER, INTEGRATOR, SUPERVISOR

from agentproxy.messages import (
    AgentCanStart,
    Answer,
    Ask,
    Cancel,
    FollowUp,
    FollowUpSent,
    Interrupt,
    Notice,
    Prepare,
    Prepared,
    QuestionAsked,
    ReviewDone,
    RunSubtask,
    SpawnAgent,
    Spent,
    StartWorker,
    Stuck,
    TreeReady,
)
from agentproxy.run_plan import OWN_TREE, SubtaskState, failure_signature
from agentproxy.subtask_prompts import NOTHING_CHANGED, subtask_prompt
from agentproxy.telemetry.ids import agent_environment

if TYPE_CHECKING:
    from agentproxy.actors.dispatcher import Dispatcher

SAME_FAILURES_TO_STOP = 3  # the same failing checks at three reviews in a row: two follow-ups changed nothing
REVIEW_QUESTION_PREFIX = "review-question:"
INTERRUPT_GRACE_S = 10.0  # how long interrupted agents get to end their turns


class AgentTurns:
    """The Dispatcher's part that deals with agents; runs on its thread, with its state."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    def on_agent_can_start(self, ready: AgentCanStart) -> None:
        """The agent's process starts while the base runs; its first turn waits for Prepared."""
        d = self.dispatcher
        assert d.run is not None
        state = d.plan[ready.subtask_id]
        if state.status != "preparing" or state.worker_started:
            return
        self.start_worker(state)
        spawn = SpawnAgent(
            subtask_id=state.id,
            cwd=state.cwd,
            task=d.run.task,
            resume_agent_session=self.resumed_session(state),
            env={**ready.env, **self.telemetry_env(state)},
        )
        d.directory.tell(state.worker, spawn)

    def start_first_turn(self, state: SubtaskState, prepared: Prepared) -> None:
        d = self.dispatcher
        assert d.run is not None
        state.status = "running"
        state.env = {**prepared.env, **self.telemetry_env(state)}
        if not state.worker_started:
            self.start_worker(state)
        planned = [s.id for s in d.plan.planned()]
        subject = state.race if state.kind == "attempt" else state.id
        place = (planned.index(subject) + 1, len(planned)) if subject in planned else (1, 1)
        prompt = subtask_prompt(d.run, state.subtask, place, prepared.preexisting)
        request = RunSubtask(
            subtask=state.subtask,
            prompt=prompt,
            cwd=state.cwd,
            task=d.run.task,
            resume_agent_session=self.resumed_session(state),
            env=state.env,
            cost_so_far_usd=state.agent_cost_usd,
        )
        d.send(state.worker, state.id, request)

    def telemetry_env(self, state: SubtaskState) -> dict[str, str]:
        """With telemetry on, the agent's process names its subtask's span (TRACEPARENT): its own joins the tree."""
        d = self.dispatcher
        return agent_environment(d.run.trace or d.run.session_id, state.id) if d.run is not None else {}

    def start_worker(self, state: SubtaskState) -> None:
        d = self.dispatcher
        state.worker_started = True
        d.directory.ask(SUPERVISOR, StartWorker(name=state.worker, remote=state.remote, agent=state.agent))

    def resumed_session(self, state: SubtaskState) -> str | None:
        """The agent session a resumed subtask continues (or that a continued one-subtask session resumes)."""
        d = self.dispatcher
        assert d.run is not None
        if state.agent_session_id:
            return state.agent_session_id
        return d.run.resume_agent_session if len(d.plan.planned()) == 1 else None

    def judge(self, state: SubtaskState, review: ReviewDone) -> None:
        """Verified, asked back, followed up, or failed."""
        d = self.dispatcher
        verdict = review.verdict
        if review.nothing_changed:
            if state.told_nothing_changed:
                d.end_subtask(state, "failed", "the agent reported success but changed nothing, twice")
            else:
                state.told_nothing_changed = True
                self.follow_up(state, NOTHING_CHANGED, counts=False)
            return
        if verdict.question and state.questions_answered < d.options.max_question_follow_ups:
            self.ask_for_agent(state, verdict.question)
            return
        if state.kind == "attempt" and d.races.holds(state, review):
            return  # its race decides first: this review is judged if it is chosen
        state.check_failures.append(failure_signature(review.checks, review.check_verdicts))
        repeats = state.check_failures[-(SAME_FAILURES_TO_STOP):]
        if verdict.passed:
            d.merges.on_verified(state)
        elif len(repeats) == SAME_FAILURES_TO_STOP and repeats[0] and len(set(repeats)) == 1:
            pattern = f"the same checks failed the same way after {SAME_FAILURES_TO_STOP - 1} follow-ups in a row"
            d.record(Stuck(subtask_id=state.id, pattern=pattern, action="failed"))
            d.end_subtask(state, "failed", f"stuck: {pattern}")
        elif state.attempt > d.options.max_attempts:
            findings = "; ".join(verdict.findings) or "verification failed"
            d.end_subtask(state, "failed", f"still failing after {d.options.max_attempts} follow-ups: {findings}")
        else:
            self.follow_up(state, verdict.follow_up, counts=True)

    def follow_up(self, state: SubtaskState, instruction: str, counts: bool) -> None:
        """Another turn in the subtask's agent session; counts says whether it is a verification attempt."""
        d = self.dispatcher
        if counts:
            state.attempt += 1
        state.status = "running"
        d.record(FollowUpSent(subtask_id=state.id, attempt=state.attempt, instruction=instruction))
        d.directory.tell(state.worker, FollowUp(subtask_id=state.id, instruction=instruction, attempt=state.attempt))
        # Should the worker crash now, its fresh instance resumes the agent session with this turn.
        d.outstanding.setdefault(state.worker, {})[state.id] = self.resume_request(state, instruction)

    def ask_for_agent(self, state: SubtaskState, question: str) -> None:
        """The review found the agent's final message to be a question: the Clarifier answers it."""
        d = self.dispatcher
        from agentproxy.questions import question_from_text  # lazy: see agentproxy.agents.clarifications.warm_up

        assert d.run is not None
        state.questions_answered += 1
        state.status = "asking"
        asked = question_from_text(question)
        d.record(QuestionAsked(subtask_id=state.id, questions=[asked], via="final_text"))
        request_id = f"{REVIEW_QUESTION_PREFIX}{state.id}:{state.questions_answered}"
        ask = Ask(worker=d.name, subtask_id=state.id, request_id=request_id, questions=[asked], task=d.run.task)
        d.send(CLARIFIER, state.id, ask)

    def on_answer(self, answer: Answer) -> None:
        d = self.dispatcher
        subtask_id = answer.request_id.removeprefix(REVIEW_QUESTION_PREFIX).rsplit(":", 1)[0]
        d.done_with(CLARIFIER, subtask_id)
        state = d.plan.get(subtask_id)
        if state is None or state.status != "asking":
            return
        replies = "\n".join(f"{question}\n-> {reply}" for question, reply in answer.answers.items())
        self.follow_up(state, f"Answers to your question:\n{replies}\n\nGo ahead and finish the task.", counts=False)

    def resume_request(self, state: SubtaskState, prompt: str) -> RunSubtask:
        d = self.dispatcher
        assert d.run is not None
        return RunSubtask(
            subtask=state.subtask,
            prompt=prompt,
            cwd=state.cwd,
            task=d.run.task,
            resume_agent_session=state.agent_session_id,
            env=state.env,
            cost_so_far_usd=state.agent_cost_usd,
        )

    def on_tree_ready(self, ready: TreeReady) -> None:
        d = self.dispatcher
        if not d.done_with(INTEGRATOR, ready.subtask_id):
            return  # answered already
        state = d.plan[ready.subtask_id]
        if ready.error:
            d.end_subtask(state, "failed", f"no tree to work in: {ready.error}")
            return
        if ready.merged:
            d.end_subtask(state, "done", f"merged before pa stopped ({ready.merged[:10]})")
            return
        state.cwd, state.base_commit, state.status = ready.cwd, ready.base_commit, "preparing"
        if state.kind == "final":
            state.base_commit, state.base_tree = d.base_commit, d.base_tree
            d.review(state, "the subtasks' verified work, merged")
            return
        if state.remote:
            d.places.assign(state, ready)  # Prepare goes to the worker host through its RemoteAgent
        judge_against = d.base_tree if state.kind not in OWN_TREE else ""
        d.send(
            state.checker,
            state.id,
            Prepare(subtask=state.subtask, cwd=state.cwd, base_commit=state.base_commit, judge_against=judge_against),
        )

    def on_prepared(self, prepared: Prepared) -> None:
        d = self.dispatcher
        state = d.plan[prepared.subtask_id]
        d.done_with(state.checker, prepared.subtask_id)
        if state.status != "preparing":
            return
        state.base_tree = prepared.base_tree or d.base_tree
        self.start_first_turn(state, prepared)

    def on_spent(self, spent: Spent) -> None:
        d = self.dispatcher
        if spent.by == "agent":
            d.cost_usd += spent.usd
            if (state := d.plan.get(spent.subtask_id)) is not None:
                state.agent_cost_usd = max(state.agent_cost_usd, spent.session_total_usd)
        match d.budget.spend(spent.usd):
            case "warn":
                d.record(Notice(level="warning", text=f"spent {d.budget.describe()}; the run stops at 100%"))
            case "over":
                self.stop_for_budget(f"the budget is spent: {d.budget.describe()}")

    def stop_for_budget(self, reason: str) -> None:
        """Interrupt the running agents (their sessions are kept) and end once their turns have ended."""
        d = self.dispatcher
        running = [state for state in d.plan if state.status == "running"]
        if not running:
            d.finish("budget", reason)
            return
        d.stopping_for = reason
        for state in running:
            d.directory.tell(state.worker, Interrupt(reason=reason))
        # Should an agent not end its turn, it is not waited for: Cancel ends the run (and kills it).
        timer = threading.Timer(INTERRUPT_GRACE_S, d.directory.tell, args=(d.name, Cancel(reason=reason)))
        timer.daemon = True
        timer.start()
