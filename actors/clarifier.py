"""Clarifier: answers the agents' questions and judges tool uses no policy rule decides."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from actors.base import Directory, SupervisedActor
from agentproxy.brain import Brain, Situation
from agentproxy.messages import Answer, Ask, JudgeTool, QuestionAnswered, ToolVerdict


class Clarifier(SupervisedActor):
    def __init__(self, name: str, directory: Directory, brain: Brain, context: Callable[[], str]) -> None:
        super().__init__(name, directory)
        self.brain = brain
        self.context = context  # read at each question: the project context loads after start

    def on_receive(self, message: Any) -> Any:
        match message:
            case Ask():
                self.on_ask(message)
            case JudgeTool():
                situation = Situation(task=message.task, context=self.context())
                judgement = self.brain.judge_tool(message.tool_name, message.tool_input, situation)
                self.directory.tell(
                    message.worker,
                    ToolVerdict(request_id=message.request_id, allow=judgement.allow, reason=judgement.reason),
                )
        return None

    def on_ask(self, ask: Ask) -> None:
        situation = Situation(task=ask.task, context=self.context(), transcript_tail=ask.transcript_tail)
        answers = {question.question: self.brain.answer(question, situation) for question in ask.questions}
        self.record(QuestionAnswered(subtask_id=ask.subtask_id, answers=answers, by=self.brain.name))
        self.directory.tell(ask.worker, Answer(request_id=ask.request_id, answers=answers))
