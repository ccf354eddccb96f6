"""The supervisor's judgement: a Brain protocol and its implementations."""

from agentproxy.brain.base import Attempt, Brain, EventSink, Pick, PickInput, ReviewInput, Situation, ToolJudgement
from agentproxy.brain.offline import OfflineBrain

__all__ = [
    "Attempt",
    "Brain",
    "EventSink",
    "OfflineBrain",
    "Pick",
    "PickInput",
    "ReviewInput",
    "Situation",
    "ToolJudgement",
]
