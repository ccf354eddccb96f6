"""Every span and metric name agentproxy emits, in one place: the seed's documented names first.

Stdlib only: the dashboards' test and the docs read these without opentelemetry installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Spans: one tree per task.
RUN_TASK = "pa.run_task"  # the root
PLAN = "pa.plan"
SUBTASK = "pa.subtask"
REASONING_LOOP = "pa.reasoning_loop"  # one verify-and-follow-up round of a subtask
AGENT_TURN = "claude.subprocess"  # one agent turn
BRAIN_CALL = "gemini.api.call"
FUNCTION_PREFIX = "pa.function."  # the supervisor's own steps: pa.function.checks, .review, .answer, .merge


@dataclass(frozen=True)
class Metric:
    name: str
    kind: Literal["counter", "histogram", "updown"]
    unit: str
    description: str
    labels: tuple[str, ...] = ()


METRICS = (
    # The seed's, as its README documents them.
    Metric("agentproxy.tasks.started", "counter", "{task}", "Tasks started"),
    Metric("agentproxy.tasks.completed", "counter", "{task}", "Tasks completed", ("status",)),
    Metric("agentproxy.task.duration", "histogram", "s", "Task duration", ("status",)),
    Metric("agentproxy.pa.decisions", "counter", "{decision}", "Supervisor decisions", ("type",)),
    Metric("agentproxy.pa.reasoning.duration", "histogram", "s", "Supervisor reasoning duration", ("type",)),
    Metric("agentproxy.gemini.api.duration", "histogram", "s", "Brain API call duration", ("model", "purpose")),
    Metric("agentproxy.claude.iterations", "counter", "{turn}", "Agent turns (Claude Code invocations)"),
    Metric("agentproxy.verifications", "counter", "{verification}", "Verifications run", ("type", "result")),
    Metric("agentproxy.sessions.active", "updown", "{session}", "Active sessions"),
    # Beyond the seed: what an SRE asks next.
    Metric("agentproxy.tokens", "counter", "{token}", "Tokens used", ("source", "model", "direction")),
    Metric("agentproxy.cost", "counter", "USD", "Money spent", ("source", "model")),
    Metric("agentproxy.tool.decisions", "counter", "{decision}", "Agents' tool uses decided", ("verdict",)),
    Metric("agentproxy.agents.running", "updown", "{agent}", "Agents running"),
    Metric("agentproxy.questions.answered", "counter", "{question}", "Agents' questions answered"),
    Metric("agentproxy.follow_ups", "counter", "{follow_up}", "Follow-ups sent to agents"),
)
METRIC_NAMES = frozenset(metric.name for metric in METRICS)
