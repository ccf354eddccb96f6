"""Clarifier: answers the agents' questions and judges tool uses no policy rule decides."""

from __future__ import annotations

from typing import Any

from agentproxy.actors.base import Directory, SupervisedActor

from agentproxy.brain import Brain, Situation
from agentproxy.human import ask_on_terminal
from agentproxy.knowledge import KnowledgeBoard
from agentproxy.messages import Answer, Ask, JudgeTool, QuestionAnswered, ToolVerdict
from agentproxy.options import RunOptions


class Clarifier(SupervisedActor):
    def __init__(
        self, name: str, directory: Directory, brain: Brain, board: KnowledgeBoard, options: RunOptions
    ) -> None:
        super().__init__(name, directory)
        self.brain = brain
        self.board = board
        self.options = options

    def on_receive(self, message: Any) -> Any:
        match message:
            case Ask():
                self.on_ask(message)
            case JudgeTool():
                situation = self.situation(message.task, message.subtask_id)
                judgement = self.brain.judge_tool(message.tool_name, message.tool_input, situation)
                self.directory.tell(
                    message.worker,
                    ToolVerdict(request_id=message.request_id, allow=judgement.allow, reason=judgement.reason),
                )
        return None

    def situation(self, task: str, subtask_id: str, transcript_tail: str = "") -> Situation:
        """What the brain knows: the board, and the subtask the asking agent works on (from the plan)."""
        knowledge = self.board.read()
        plan = knowledge.plan.subtasks if knowledge.plan else []
        subtask = next((s for s in plan if s.id == subtask_id), None)
        return Situation(
            task=task,
            knowledge=knowledge,
            subtask=subtask,
            transcript_tail=transcript_tail,
            working_dir=str(self.options.working_dir),
        )

    def on_ask(self, ask: Ask) -> None:
        situation = self.situation(ask.task, ask.subtask_id, ask.transcript_tail)
        answers = self.brain.answer(ask.questions, situation)
        by = self.brain.name
        if self.options.ask_human:
            # The brain's answers are the defaults the human accepts with Enter or by waiting.
            human = ask_on_terminal(ask.questions, answers, self.options.ask_human_timeout_s)
            by = "human" if human != answers else by
            answers = human
        by_question = {question.question: answer for question, answer in zip(ask.questions, answers, strict=True)}
        self.record(QuestionAnswered(subtask_id=ask.subtask_id, answers=by_question, by=by))
        self.directory.tell(ask.worker, Answer(request_id=ask.request_id, answers=by_question))
