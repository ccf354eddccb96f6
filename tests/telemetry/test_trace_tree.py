"""Telemetry with in-memory exporters: a real run (scripted agents, two subtasks, a question, a
follow-up) as one span tree, and the seed's metrics with their labels and values."""

from __future__ import annotations

import json
import logging
import shlex
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk._logs.export import InMemoryLogExporter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agentproxy
from agentproxy.messages import SubtaskStarted
from agentproxy.telemetry import names, setup
from agentproxy.telemetry.ids import span_id_of, trace_id_of

QUESTION = {"question": "Which greeting?", "header": "Greeting", "options": [{"label": "hi", "description": "short"}]}
TURNS = [
    [{"ask": QUESTION}, {"write": {"path": "out.txt", "content": "{answer}\n"}},
     {"write": {"path": "broken.txt", "content": "x"}}, {"result": "Wrote out.txt."}],
    [{"bash": "rm broken.txt"}, {"result": "Removed broken.txt."}],
]  # fmt: skip


LOGS: list[Any] = []  # the log records the fixture's run exported


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Any], Any, str]:
    tmp = tmp_path_factory.mktemp("telemetry")
    script = tmp / "script.json"
    script.write_text(json.dumps({"turns": TURNS}))
    spans, reader, logs = InMemorySpanExporter(), InMemoryMetricReader(), InMemoryLogExporter()
    mp = pytest.MonkeyPatch()
    mp.setenv("AGENTPROXY_ENABLE_TELEMETRY", "1")
    mp.setenv("AGENTPROXY_HOME", str(tmp / "home"))
    mp.setenv("AGENTPROXY_OWNER_ID", "team-a")
    try:
        assert setup.start(span_exporter=spans, metric_reader=reader, log_exporter=logs) is not None
        repo = tmp / "repo"
        repo.mkdir()
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
        claude = shlex.join([sys.executable, "-m", "agentproxy.scripted_agent", "--script", str(script)])
        run = agentproxy.start_task(
            "Greet twice:\n- write out.txt in a\n- write out.txt in b",
            repo,
            claude_bin=claude,
            checks=["test ! -e broken.txt"],
        )
        for event in run.events():
            if isinstance(event, SubtaskStarted):  # the run's trace has begun
                logging.getLogger("agentproxy.test").warning("a record logged while the run runs")
                break
        outcome = run.wait(120)
        assert outcome is not None
        assert outcome.status == "done", outcome.reason
        setup.start().flush()  # type: ignore[union-attr]
        LOGS.extend(logs.get_finished_logs())
        return spans.get_finished_spans(), reader.get_metrics_data(), outcome.session_id
    finally:
        mp.undo()


def test_the_run_is_one_tree_rooted_at_pa_run_task(exported: tuple[list[Any], Any, str]) -> None:
    spans, _, session_id = exported
    by_id = {span.context.span_id: span for span in spans}
    roots = [span for span in spans if span.parent is None]
    assert [root.name for root in roots] == [names.RUN_TASK]
    root = roots[0]
    assert root.context.trace_id == trace_id_of(session_id) and root.context.span_id == span_id_of(session_id)
    assert {span.context.trace_id for span in spans} == {root.context.trace_id}
    assert all(span.parent.span_id in by_id for span in spans if span.parent is not None)  # no orphan

    def parent_name(span: Any) -> str:
        return by_id[span.parent.span_id].name

    subtasks = [span for span in spans if span.name == names.SUBTASK and span.attributes["pa.subtask_id"] in "12"]
    assert len(subtasks) == 2 and all(parent_name(span) == names.RUN_TASK for span in subtasks)
    assert all(span.context.span_id == span_id_of(session_id, span.attributes["pa.subtask_id"]) for span in subtasks)
    loops = [span for span in spans if span.name == names.REASONING_LOOP]
    assert Counter(span.attributes["pa.subtask_id"] for span in loops) == {"1": 2, "2": 2}  # a follow-up each
    turns = [span for span in spans if span.name == names.AGENT_TURN]
    assert len(turns) == 4 and all(parent_name(span) == names.REASONING_LOOP for span in turns)
    assert all(span.attributes["pa.agent_session_id"] for span in turns)
    decided = [event for span in turns for event in span.events if event.name == "pa.tool_decided"]
    assert decided and all(event.attributes["pa.verdict"] == "allowed" for event in decided)
    for step in ("checks", "review", "answer", "merge"):
        assert any(span.name == names.FUNCTION_PREFIX + step for span in spans), step
    asked = [event for span in subtasks for event in span.events if event.name == "pa.question"]
    assert len(asked) == 2 and asked[0].attributes["pa.questions"] == ("Which greeting?",)
    assert root.attributes["pa.owner_id"] == "team-a" and root.resource.attributes["service.name"] == "agentproxy"
    assert all(span.end_time >= span.start_time for span in spans)


def metric_points(data: Any) -> dict[str, list[Any]]:
    points: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)
    return points


def test_the_seeds_metrics_arrive_with_their_labels_and_values(exported: tuple[list[Any], Any, str]) -> None:
    _, data, _ = exported
    points = metric_points(data)
    assert set(points) <= names.METRIC_NAMES
    assert sum(p.value for p in points["agentproxy.tasks.started"]) == 1
    assert [(dict(p.attributes), p.value) for p in points["agentproxy.tasks.completed"]] == [({"status": "done"}, 1)]
    assert sum(p.value for p in points["agentproxy.claude.iterations"]) == 4
    verifications = {
        (p.attributes["type"], p.attributes["result"]): p.value for p in points["agentproxy.verifications"]
    }
    assert verifications[("checks", "failed")] == 2 and verifications[("review", "passed")] >= 2
    assert sum(p.value for p in points["agentproxy.follow_ups"]) == 2
    assert sum(p.value for p in points["agentproxy.questions.answered"]) == 2
    assert sum(p.value for p in points["agentproxy.sessions.active"]) == 0  # up at the start, down at the end
    assert sum(p.value for p in points["agentproxy.agents.running"]) == 0
    assert points["agentproxy.task.duration"][0].count == 1
    assert {p.attributes["verdict"] for p in points["agentproxy.tool.decisions"]} == {"allowed"}


def test_a_record_logged_during_the_run_joins_its_trace(exported: tuple[list[Any], Any, str]) -> None:
    _, _, session_id = exported
    ours = [log for log in LOGS if "while the run runs" in str(log.log_record.body)]
    assert len(ours) == 1
    assert ours[0].log_record.trace_id == trace_id_of(session_id)
