"""Planner: turns a task into a Plan through the brain."""

from __future__ import annotations

from typing import Any

from agentproxy.actors.base import DISPATCHER, Directory, SupervisedActor

from agentproxy.brain import Brain
from agentproxy.knowledge import KnowledgeBoard
from agentproxy.messages import PlanMade, PlanReady, PlanRequest


class Planner(SupervisedActor):
    def __init__(self, name: str, directory: Directory, brain: Brain, board: KnowledgeBoard) -> None:
        super().__init__(name, directory)
        self.brain = brain
        self.board = board

    def on_receive(self, message: Any) -> Any:
        match message:
            case PlanRequest(task=task):
                plan = self.brain.plan(task, self.board.read())
                self.record(PlanMade(plan=plan, brain=self.brain.name))
                self.directory.tell(DISPATCHER, PlanReady(plan=plan))
        return None
