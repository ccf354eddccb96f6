"""The Dispatcher's dealings with agents: starting one on a subtask, judging its reviews, follow-ups
and answers to what its final message asked.

It gives no credit for no work: a subtask reported done with nothing changed is sent back once,
then failed. The same failing checks after two follow-ups in a row end the subtask as stuck. A
final message the review finds to be a question is answered by the Clarifier, not judged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentproxy.actors.base import CLARIFIER, SUPERVISOR

from agentproxy.messages import (
    AgentCanStart,
    Answer,
    Ask,
    FollowUp,
    FollowUpSent,
    Prepared,
    QuestionAsked,
    ReviewDone,
    RunSubtask,
    SpawnAgent,
    StartWorker,
    Stuck,
)
from agentproxy.run_plan import SubtaskState, failure_signature
from agentproxy.subtask_prompts import NOTHING_CHANGED, subtask_prompt

if TYPE_CHECKING:
    from agentproxy.actors.dispatcher import Dispatcher

SAME_FAILURES_TO_STOP = 3  # the same failing checks at three reviews in a row: two follow-ups changed nothing
REVIEW_QUESTION_PREFIX = "review-question:"


class AgentTurns:
    """Mixed into the Dispatcher: every method runs on its thread, with its state."""

    def on_agent_can_start(self: Dispatcher, ready: AgentCanStart) -> None:
        """The agent's process starts while the base runs; its first turn waits for Prepared."""
        assert self.run is not None
        state = self.plan[ready.subtask_id]
        if state.status != "preparing" or state.worker_started:
            return
        self.start_worker(state)
        spawn = SpawnAgent(
            subtask_id=state.id,
            cwd=state.cwd,
            task=self.run.task,
            resume_agent_session=self.resumed_session(state),
            env=ready.env,
        )
        self.directory.tell(state.worker, spawn)

    def start_first_turn(self: Dispatcher, state: SubtaskState, prepared: Prepared) -> None:
        assert self.run is not None
        state.status = "running"
        state.env = prepared.env
        if not state.worker_started:
            self.start_worker(state)
        planned = [s.id for s in self.plan.planned()]
        place = (planned.index(state.id) + 1, len(planned)) if state.kind == "plan" else (1, 1)
        prompt = subtask_prompt(self.run, state.subtask, place, prepared.preexisting)
        request = RunSubtask(
            subtask=state.subtask,
            prompt=prompt,
            cwd=state.cwd,
            task=self.run.task,
            resume_agent_session=self.resumed_session(state),
            env=state.env,
            cost_so_far_usd=state.agent_cost_usd,
        )
        self.send(state.worker, state.id, request)

    def start_worker(self: Dispatcher, state: SubtaskState) -> None:
        state.worker_started = True
        self.directory.ask(SUPERVISOR, StartWorker(name=state.worker))

    def resumed_session(self: Dispatcher, state: SubtaskState) -> str | None:
        """The agent session a resumed subtask continues (or that a continued one-subtask session resumes)."""
        assert self.run is not None
        if state.agent_session_id:
            return state.agent_session_id
        return self.run.resume_agent_session if len(self.plan.planned()) == 1 else None

    def judge(self: Dispatcher, state: SubtaskState, review: ReviewDone) -> None:
        """Verified, asked back, followed up, or failed."""
        verdict = review.verdict
        if review.nothing_changed:
            if state.told_nothing_changed:
                self.end_subtask(state, "failed", "the agent reported success but changed nothing, twice")
            else:
                state.told_nothing_changed = True
                self.follow_up(state, NOTHING_CHANGED, counts=False)
            return
        if verdict.question and state.questions_answered < self.options.max_question_follow_ups:
            self.ask_for_agent(state, verdict.question)
            return
        state.check_failures.append(failure_signature(review.checks, review.check_verdicts))
        repeats = state.check_failures[-(SAME_FAILURES_TO_STOP):]
        if verdict.passed:
            self.on_verified(state)
        elif len(repeats) == SAME_FAILURES_TO_STOP and repeats[0] and len(set(repeats)) == 1:
            pattern = f"the same checks failed the same way after {SAME_FAILURES_TO_STOP - 1} follow-ups in a row"
            self.record(Stuck(subtask_id=state.id, pattern=pattern, action="failed"))
            self.end_subtask(state, "failed", f"stuck: {pattern}")
        elif state.attempt > self.options.max_attempts:
            findings = "; ".join(verdict.findings) or "verification failed"
            self.end_subtask(state, "failed", f"still failing after {self.options.max_attempts} follow-ups: {findings}")
        else:
            self.follow_up(state, verdict.follow_up, counts=True)

    def follow_up(self: Dispatcher, state: SubtaskState, instruction: str, counts: bool) -> None:
        """Another turn in the subtask's agent session; counts says whether it is a verification attempt."""
        if counts:
            state.attempt += 1
        state.status = "running"
        self.record(FollowUpSent(subtask_id=state.id, attempt=state.attempt, instruction=instruction))
        self.directory.tell(state.worker, FollowUp(subtask_id=state.id, instruction=instruction, attempt=state.attempt))
        # Should the worker crash now, its fresh instance resumes the agent session with this turn.
        self.outstanding.setdefault(state.worker, {})[state.id] = self.resume_request(state, instruction)

    def ask_for_agent(self: Dispatcher, state: SubtaskState, question: str) -> None:
        """The review found the agent's final message to be a question: the Clarifier answers it."""
        from agentproxy.questions import question_from_text  # lazy: see agentproxy.agents.clarifications.warm_up

        assert self.run is not None
        state.questions_answered += 1
        state.status = "asking"
        asked = question_from_text(question)
        self.record(QuestionAsked(subtask_id=state.id, questions=[asked], via="final_text"))
        request_id = f"{REVIEW_QUESTION_PREFIX}{state.id}:{state.questions_answered}"
        ask = Ask(worker=self.name, subtask_id=state.id, request_id=request_id, questions=[asked], task=self.run.task)
        self.send(CLARIFIER, state.id, ask)

    def on_answer(self: Dispatcher, answer: Answer) -> None:
        subtask_id = answer.request_id.removeprefix(REVIEW_QUESTION_PREFIX).rsplit(":", 1)[0]
        self.done_with(CLARIFIER, subtask_id)
        state = self.plan.get(subtask_id)
        if state is None or state.status != "asking":
            return
        replies = "\n".join(f"{question}\n-> {reply}" for question, reply in answer.answers.items())
        self.follow_up(state, f"Answers to your question:\n{replies}\n\nGo ahead and finish the task.", counts=False)

    def resume_request(self: Dispatcher, state: SubtaskState, prompt: str) -> RunSubtask:
        assert self.run is not None
        return RunSubtask(
            subtask=state.subtask,
            prompt=prompt,
            cwd=state.cwd,
            task=self.run.task,
            resume_agent_session=state.agent_session_id,
            env=state.env,
            cost_so_far_usd=state.agent_cost_usd,
        )
