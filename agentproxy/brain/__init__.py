"""The supervisor's judgement: a Brain protocol and its implementations."""

from agentproxy.brain.base import Brain, EventSink, ReviewInput, Situation, ToolJudgement
from agentproxy.brain.offline import OfflineBrain

__all__ = ["Brain", "EventSink", "OfflineBrain", "ReviewInput", "Situation", "ToolJudgement"]
