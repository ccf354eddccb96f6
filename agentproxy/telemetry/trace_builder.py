"""A run's events as one trace and the seed's metrics: a subscriber of the ContextKeeper.

The spans are built from the events, stamped with the events' own times, so the tree is whole
whatever actor, thread or worker host the work happened on: a remote agent's events come back over
the bridge and land in the same trace. Ids come from the session (agentproxy.telemetry.ids), so the
TRACEPARENT an agent was given names its subtask's span.

    pa.run_task
    ├── pa.plan
    ├── gemini.api.call ...
    ├── pa.subtask (one per subtask; attempts as events)
    │   ├── pa.reasoning_loop (a turn and its review; one more per follow-up)
    │   │   ├── claude.subprocess (the agent's turn; tool decisions as events)
    │   │   ├── pa.function.checks
    │   │   └── pa.function.review
    │   └── pa.function.answer (a question, asked to answered)
    └── pa.function.merge
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentproxy.messages import (
    AgentFinished,
    AgentStarted,
    BrainCalled,
    ChecksRan,
    Event,
    FollowUpSent,
    Merged,
    PlanMade,
    QuestionAnswered,
    QuestionAsked,
    Reviewed,
    SessionFinished,
    SessionStarted,
    SubtaskFinished,
    SubtaskStarted,
    ToolDecided,
)
from agentproxy.telemetry import names
from agentproxy.telemetry.ids import span_id_of, trace_id_of
from agentproxy.telemetry.setup import Telemetry, owner_id


def ns(seconds: float) -> int:
    return int(seconds * 1e9)


@dataclass
class SubtaskSpans:
    span: Any
    loop: Any = None  # the open pa.reasoning_loop
    turn: Any = None  # the open claude.subprocess
    question: Any = None  # the open pa.function.answer
    agent_session: str = ""
    rounds: int = 0
    running: bool = False  # counted in agents.running


@dataclass
class TraceBuilder:
    telemetry: Telemetry
    root: Any = None
    session_id: str = ""
    trace: str = ""  # the run's trace key: its ids derive from it
    started_at: float = 0.0
    last_at: float = 0.0
    subtasks: dict[str, SubtaskSpans] = field(default_factory=dict)

    def __call__(self, event: Event) -> None:
        self.last_at = event.at or self.last_at
        handler = getattr(self, f"on_{type(event).__struct_config__.tag}", None)
        if handler is not None and (self.root is not None or isinstance(event, SessionStarted)):
            handler(event)

    # -- helpers ---------------------------------------------------------------------------

    def count(self, name: str, value: float = 1, **labels: Any) -> None:
        self.telemetry.instruments[name].add(value, labels)

    def record(self, name: str, value: float, **labels: Any) -> None:
        self.telemetry.instruments[name].record(value, labels)

    def child(self, name: str, parent: Any, at: float, **attributes: Any) -> Any:
        from opentelemetry import trace

        context = trace.set_span_in_context(parent)
        return self.telemetry.tracer.start_span(
            name, context=context, start_time=ns(at), attributes={**self.attributes(), **attributes}
        )

    def attributes(self) -> dict[str, Any]:
        return {"pa.session_id": self.session_id, "pa.owner_id": owner_id()}

    def with_fixed_ids(self, name: str, parent: Any, at: float, span_id: int, **attributes: Any) -> Any:
        """A span whose id (and, for the root, trace id) anyone can compute from the session."""
        ids = self.telemetry.ids
        with ids.lock:
            if parent is None:
                ids.preset.trace_id = trace_id_of(self.trace)
            ids.preset.span_id = span_id
            if parent is None:
                from opentelemetry.context import Context

                return self.telemetry.tracer.start_span(
                    name, context=Context(), start_time=ns(at), attributes={**self.attributes(), **attributes}
                )
            return self.child(name, parent, at, **attributes)

    @staticmethod
    def end(span: Any, at: float, error: str = "") -> None:
        from opentelemetry.trace import Status, StatusCode

        if span is None:
            return
        if error:
            span.set_status(Status(StatusCode.ERROR, error[:500]))
        span.end(end_time=ns(at))

    def of(self, subtask_id: str) -> SubtaskSpans | None:
        return self.subtasks.get(subtask_id)

    # -- the run ---------------------------------------------------------------------------

    def on_session_started(self, event: SessionStarted) -> None:
        if self.root is not None:
            return
        self.session_id, self.trace, self.started_at = event.session_id, event.trace or event.session_id, event.at
        self.root = self.with_fixed_ids(
            names.RUN_TASK, None, event.at, span_id_of(self.trace), **{"pa.task": event.task[:500]}
        )
        self.telemetry.running[self.trace] = self.root
        self.count("agentproxy.tasks.started")
        self.count("agentproxy.sessions.active")

    def on_plan_made(self, event: PlanMade) -> None:
        span = self.child(names.PLAN, self.root, self.started_at, **{"pa.subtasks": len(event.plan.subtasks)})
        self.end(span, event.at)
        self.count("agentproxy.pa.decisions", type="plan")

    def on_brain_called(self, event: BrainCalled) -> None:
        attributes = {
            "gen_ai.request.model": event.model,
            "pa.purpose": event.purpose,
            "gen_ai.usage.input_tokens": event.input_tokens,
            "gen_ai.usage.output_tokens": event.output_tokens,
            "pa.cost_usd": event.cost_usd,
        }
        span = self.child(names.BRAIN_CALL, self.root, event.at - event.duration_s, **attributes)
        self.end(span, event.at, event.error)
        self.record("agentproxy.gemini.api.duration", event.duration_s, model=event.model, purpose=event.purpose)
        self.record("agentproxy.pa.reasoning.duration", event.duration_s, type=event.purpose)
        self.count("agentproxy.pa.decisions", type=event.purpose)
        self.tokens("brain", event.model, event.input_tokens, event.output_tokens, event.cost_usd)

    def tokens(self, source: str, model: str, tokens_in: int, tokens_out: int, cost: float) -> None:
        self.count("agentproxy.tokens", tokens_in, source=source, model=model, direction="input")
        self.count("agentproxy.tokens", tokens_out, source=source, model=model, direction="output")
        self.count("agentproxy.cost", cost, source=source, model=model)

    def on_merged(self, event: Merged) -> None:
        span = self.child(names.FUNCTION_PREFIX + "merge", self.root, event.at, **{"pa.subtask_id": event.subtask_id})
        self.end(span, event.at)

    def on_session_finished(self, event: SessionFinished) -> None:
        for subtask_id in list(self.subtasks):
            self.close_subtask(subtask_id, event.at, "")
        self.end(self.root, event.at, event.reason if event.status != "done" else "")
        self.telemetry.running.pop(self.trace, None)
        self.root = None
        self.count("agentproxy.tasks.completed", status=event.status)
        self.record("agentproxy.task.duration", event.duration_s, status=event.status)
        self.count("agentproxy.sessions.active", -1)
        self.telemetry.flush()

    # -- subtasks --------------------------------------------------------------------------

    def on_subtask_started(self, event: SubtaskStarted) -> None:
        spans = self.of(event.subtask_id)
        if spans is None:
            span = self.with_fixed_ids(
                names.SUBTASK,
                self.root,
                event.at,
                span_id_of(self.trace, event.subtask_id),
                **{"pa.subtask_id": event.subtask_id, "pa.title": event.title[:200], "pa.agent": event.agent},
            )
            self.subtasks[event.subtask_id] = SubtaskSpans(span=span)
        else:  # started again (its worker host was lost): the same span, a new attempt
            self.close_round(spans, event.at, "started again")
            spans.span.add_event("pa.attempt", {"pa.attempt": event.attempt}, timestamp=ns(event.at))

    def on_agent_started(self, event: AgentStarted) -> None:
        if (spans := self.of(event.subtask_id)) is None:
            return
        spans.agent_session = event.agent_session_id
        if not spans.running:
            spans.running = True
            self.count("agentproxy.agents.running")
        if spans.turn is None:
            self.open_turn(spans, event.subtask_id, event.at)

    def open_turn(self, spans: SubtaskSpans, subtask_id: str, at: float) -> None:
        if spans.loop is None:
            spans.rounds += 1
            spans.loop = self.child(
                names.REASONING_LOOP, spans.span, at, **{"pa.subtask_id": subtask_id, "pa.attempt": spans.rounds}
            )
        spans.turn = self.child(
            names.AGENT_TURN,
            spans.loop,
            at,
            **{"pa.subtask_id": subtask_id, "pa.agent_session_id": spans.agent_session, "pa.attempt": spans.rounds},
        )

    def on_tool_decided(self, event: ToolDecided) -> None:
        verdict = "allowed" if event.allowed else "denied"
        self.count("agentproxy.tool.decisions", verdict=verdict)
        if (spans := self.of(event.subtask_id)) is not None and spans.turn is not None:
            attributes = {"pa.tool": event.tool, "pa.verdict": verdict, "pa.reason": event.reason[:300]}
            spans.turn.add_event("pa.tool_decided", attributes, timestamp=ns(event.at))

    def on_agent_finished(self, event: AgentFinished) -> None:
        self.count("agentproxy.claude.iterations")
        usage = event.usage
        self.tokens("agent", "claude", usage.input_tokens, usage.output_tokens, usage.cost_usd)
        if (spans := self.of(event.subtask_id)) is None or spans.turn is None:
            return
        spans.turn.set_attributes(
            {
                "gen_ai.usage.input_tokens": usage.input_tokens,
                "gen_ai.usage.output_tokens": usage.output_tokens,
                "pa.cost_usd": usage.cost_usd,
                "pa.num_turns": event.num_turns,
                "pa.agent_session_id": event.agent_session_id,
            }
        )
        self.end(spans.turn, event.at, event.result[:300] if event.is_error else "")
        spans.turn = None

    def on_question_asked(self, event: QuestionAsked) -> None:
        if (spans := self.of(event.subtask_id)) is None:
            return
        questions = [question.question[:300] for question in event.questions]
        spans.span.add_event("pa.question", {"pa.questions": questions, "pa.via": event.via}, timestamp=ns(event.at))
        spans.question = self.child(names.FUNCTION_PREFIX + "answer", spans.span, event.at)

    def on_question_answered(self, event: QuestionAnswered) -> None:
        self.count("agentproxy.questions.answered")
        if (spans := self.of(event.subtask_id)) is None:
            return
        answers = [f"{question[:150]} -> {answer[:150]}" for question, answer in event.answers.items()]
        spans.span.add_event("pa.answer", {"pa.answers": answers, "pa.by": event.by}, timestamp=ns(event.at))
        self.end(spans.question, event.at)
        spans.question = None

    def on_checks_ran(self, event: ChecksRan) -> None:
        failed = [v.command for v in event.verdicts if v.kind == "failed"]
        self.count("agentproxy.verifications", type="checks", result="failed" if failed else "passed")
        if (spans := self.of(event.subtask_id)) is None:
            return
        took = sum(result.duration_s for result in event.results)
        parent = spans.loop or spans.span
        span = self.child(
            names.FUNCTION_PREFIX + "checks", parent, event.at - took, **{"pa.checks": len(event.results)}
        )
        self.end(span, event.at, f"failed: {', '.join(failed)}"[:300] if failed else "")

    def on_reviewed(self, event: Reviewed) -> None:
        result = "passed" if event.verdict.passed else "failed"
        self.count("agentproxy.verifications", type="review", result=result)
        self.count("agentproxy.pa.decisions", type="review")
        if (spans := self.of(event.subtask_id)) is None:
            return
        span = self.child(names.FUNCTION_PREFIX + "review", spans.loop or spans.span, event.at, **{"pa.result": result})
        self.end(span, event.at)
        self.close_round(spans, event.at, "" if event.verdict.passed else "; ".join(event.verdict.findings)[:300])

    def close_round(self, spans: SubtaskSpans, at: float, error: str) -> None:
        self.end(spans.turn, at)
        self.end(spans.loop, at, error)
        spans.turn = spans.loop = None

    def on_follow_up_sent(self, event: FollowUpSent) -> None:
        self.count("agentproxy.follow_ups")
        if (spans := self.of(event.subtask_id)) is not None:
            self.open_turn(spans, event.subtask_id, event.at)

    def on_subtask_finished(self, event: SubtaskFinished) -> None:
        self.close_subtask(event.subtask_id, event.at, event.reason if event.status != "done" else "")

    def close_subtask(self, subtask_id: str, at: float, error: str) -> None:
        spans = self.subtasks.pop(subtask_id, None)
        if spans is None:
            return
        self.end(spans.question, at)
        self.close_round(spans, at, "")
        spans.span.set_attribute("pa.rounds", spans.rounds)
        self.end(spans.span, at, error)
        if spans.running:
            self.count("agentproxy.agents.running", -1)
