"""Telemetry end to end, `pa` as a subprocess: a real run with the REAL Claude Code CLI exports one trace
tree and the metrics to a real OTLP receiver (HTTP or gRPC, as OTEL_EXPORTER_OTLP_PROTOCOL says); off,
nothing of opentelemetry is imported; on without the packages, one warning; a collector that is down
costs a bounded delay, no traceback, the exit code unchanged."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.proto")
pytest.importorskip("grpc")

from agentproxy.config import LOG_FILE
from agentproxy.telemetry import names
from agentproxy.telemetry.ids import trace_id_of
from agentproxy.testing.claude_env import isolated_claude_env, pa_argv
from agentproxy.testing.fake_anthropic import FakeAnthropic, Text, write_file
from agentproxy.testing.live_server import free_port
from agentproxy.testing.otlp_receivers import OtlpGrpcReceiver, OtlpHttpReceiver, Received

RUN_TIMEOUT_S = 120
TWO_FILES = "Add two files:\n- write alpha.txt\n- write beta.txt"
WRITE_HELLO = [[{"write": {"path": "hello.txt", "content": "hello\n"}}, {"result": "Wrote hello.txt."}]]
EXPORT_DELAY_BOUND_S = 8.0  # the exporters' timeouts are 2 s: a down collector costs a few of them at most
WARNING = "agentproxy[telemetry]"


def part(number: int, total: int, title: str) -> str:
    """What only that subtask's agent is told: its conversation's key (as in tests/e2e/test_parallel_e2e.py)."""
    return f"Your part ({number} of {total}): {title}"


def base_env(root: Path, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """environ without any telemetry setting of the developer's, and a home of its own under root."""
    env = {k: v for k, v in environ.items() if not k.startswith("OTEL_") and k != "AGENTPROXY_ENABLE_TELEMETRY"}
    env["AGENTPROXY_HOME"] = str(root / "agentproxy-home")
    return env


def telemetry_on(protocol: str, endpoint: str, **more: str) -> dict[str, str]:
    return {
        "AGENTPROXY_ENABLE_TELEMETRY": "1",
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        **more,
    }


def new_project(root: Path) -> Path:
    project = root / "project"
    project.mkdir(parents=True)
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=project, check=True)
    (project / "README.md").write_text("# project\n")
    subprocess.run(["git", *identity, "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", *identity, "commit", "-q", "-m", "start"], cwd=project, check=True)
    return project


def scripted_agent(root: Path, turns: list[list[dict[str, Any]]]) -> str:
    script = root / "agent-script.json"
    script.write_text(json.dumps({"turns": turns}))
    return shlex.join([sys.executable, "-m", "agentproxy.scripted_agent", "--script", str(script)])


def json_events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def of_kind(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [event for event in events if event["kind"] == kind]


def pa(argv: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]], float]:
    """`pa` to its end: the process, its events, its wall time."""
    started = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    took = time.monotonic() - started
    events = json_events(done.stdout)
    assert events and events[-1]["kind"] == "session_finished", done.stderr[-3000:]
    return done, events, took


def scripted_pa(root: Path, extra_env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    """A one-file task by the scripted agent (fast, offline) in a fresh project and home under root."""
    argv = pa_argv(new_project(root), "Write hello.txt", claude_bin=scripted_agent(root, WRITE_HELLO))
    done, events, took = pa(argv, {**base_env(root), **extra_env})
    assert events[-1]["status"] == "done", events[-1]
    return done, took


# -- a real run, exported over OTLP/HTTP and OTLP/gRPC -----------------------------------------------


def assert_one_trace_tree(spans: list[Any], events: list[dict[str, Any]]) -> None:
    session_id = events[0]["session_id"]
    roots = [span for span in spans if not span.parent_span_id]
    assert [root.name for root in roots] == [names.RUN_TASK], [(s.name, s.parent_span_id) for s in spans]
    assert {span.trace_id for span in spans} == {f"{trace_id_of(session_id):032x}"}
    by_id = {span.span_id: span for span in spans}
    orphans = [span.name for span in spans if span.parent_span_id and span.parent_span_id not in by_id]
    assert orphans == []
    assert {span.attributes.get("pa.session_id") for span in spans} == {session_id}

    def subtask_of(span: Any) -> str:
        """The pa.subtask_id of the pa.subtask span above span."""
        while span.name != names.SUBTASK:
            span = by_id[span.parent_span_id]
        return span.attributes["pa.subtask_id"]

    subtasks = {span.attributes["pa.subtask_id"] for span in spans if span.name == names.SUBTASK}
    assert subtasks >= {"1", "2"}
    turns = [span for span in spans if span.name == names.AGENT_TURN]
    assert {(subtask_of(turn), turn.attributes["pa.agent_session_id"]) for turn in turns} == {
        (event["subtask_id"], event["agent_session_id"]) for event in of_kind(events, "agent_finished")
    }


def assert_the_runs_metrics(collector: Received, events: list[dict[str, Any]]) -> None:
    received = collector.metric_names()
    assert {"agentproxy.tasks.started", "agentproxy.tasks.completed", "agentproxy.claude.iterations"} <= received
    assert received <= names.METRIC_NAMES
    assert collector.metric_totals("agentproxy.tasks.started") == {(): 1}
    assert collector.metric_totals("agentproxy.tasks.completed") == {(("status", "done"),): 1}
    iterations = sum(collector.metric_totals("agentproxy.claude.iterations").values())
    assert iterations == len(of_kind(events, "agent_finished")) >= 2


@pytest.mark.claude_cli
@pytest.mark.parametrize(
    ("protocol", "receiver_type"),
    [("http/protobuf", OtlpHttpReceiver), ("grpc", OtlpGrpcReceiver)],
    ids=["http", "grpc"],
)
def test_a_real_run_reaches_the_collector_as_one_trace_tree_and_the_metrics(
    protocol: str, receiver_type: type[OtlpHttpReceiver | OtlpGrpcReceiver], tmp_path: Path
) -> None:
    conversations = {
        part(1, 2, "write alpha.txt"): [write_file("alpha.txt", "alpha\n"), Text("Wrote alpha.txt.")],
        part(2, 2, "write beta.txt"): [write_file("beta.txt", "beta\n"), Text("Wrote beta.txt.")],
    }
    argv = pa_argv(new_project(tmp_path), TWO_FILES)
    with FakeAnthropic(conversations=conversations) as api, receiver_type() as collector:
        env = {
            **base_env(tmp_path, isolated_claude_env(api.url, tmp_path / "claude-home")),
            **telemetry_on(protocol, collector.endpoint, OTEL_METRIC_EXPORT_INTERVAL="500"),
        }
        done, events, _ = pa(argv, env)
    assert done.returncode == 0 and events[-1]["status"] == "done", done.stderr[-3000:]
    assert_one_trace_tree(collector.spans(), events)
    assert_the_runs_metrics(collector, events)
    assert {resource.get("service.name") for resource in collector.resources()} == {"agentproxy"}
    assert collector.rejected == []  # every request was an export of the receiver's own protocol


# -- off, and on without the packages ----------------------------------------------------------------

# Runs a task through the Python API, then tells which opentelemetry modules that process imported.
LOADED_AFTER_A_RUN = """
import json, sys
import agentproxy
outcome = list(agentproxy.run_task(sys.argv[1], sys.argv[2], claude_bin=sys.argv[3]))[-1]
loaded = sorted(name for name in sys.modules if name.startswith("opentelemetry"))
print(json.dumps({"status": outcome.status, "loaded": loaded}))
"""


@pytest.mark.parametrize("enabled", [False, True], ids=["off", "on"])
def test_off_a_run_imports_nothing_of_opentelemetry(enabled: bool, tmp_path: Path) -> None:
    project = new_project(tmp_path)
    with OtlpHttpReceiver() as collector:
        env = {**base_env(tmp_path), **(telemetry_on("http/protobuf", collector.endpoint) if enabled else {})}
        argv = [sys.executable, "-c", LOADED_AFTER_A_RUN, "Write hello.txt", str(project)]
        done = subprocess.run(
            [*argv, scripted_agent(tmp_path, WRITE_HELLO)], env=env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 0, done.stderr[-3000:]
    reported = json.loads(done.stdout.splitlines()[-1])
    assert reported["status"] == "done"
    assert bool(reported["loaded"]) is enabled, reported["loaded"]  # on, the same probe sees them: it works
    assert (collector.count() > 0) is enabled


def test_on_without_the_packages_the_run_goes_on_after_one_warning(tmp_path: Path) -> None:
    unimportable = tmp_path / "no-opentelemetry"
    (unimportable / "opentelemetry").mkdir(parents=True)
    (unimportable / "opentelemetry" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'opentelemetry'\", name='opentelemetry')\n"
    )
    pythonpath = os.pathsep.join(filter(None, [str(unimportable), os.environ.get("PYTHONPATH")]))
    done, _ = scripted_pa(tmp_path, {"AGENTPROXY_ENABLE_TELEMETRY": "1", "PYTHONPATH": pythonpath})
    assert done.returncode == 0, done.stderr[-3000:]
    log = (tmp_path / "agentproxy-home" / "data" / LOG_FILE).read_text()
    warned = [line for line in [*done.stderr.splitlines(), *log.splitlines()] if WARNING in line]
    assert len(warned) == 1 and " WARNING agentproxy.telemetry " in warned[0], warned
    assert "Traceback" not in done.stderr


# -- a collector that is down ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seconds_off(tmp_path_factory: pytest.TempPathFactory) -> float:
    """The wall time of the scripted one-file run with telemetry off."""
    done, took = scripted_pa(tmp_path_factory.mktemp("off"), {})
    assert done.returncode == 0, done.stderr[-3000:]
    return took


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"], ids=["grpc", "http"])
def test_a_collector_that_is_down_costs_a_bounded_delay_and_no_traceback(
    protocol: str, seconds_off: float, tmp_path: Path
) -> None:
    nobody_listens = f"http://127.0.0.1:{free_port()}"
    done, took = scripted_pa(tmp_path, telemetry_on(protocol, nobody_listens))
    assert done.returncode == 0, done.stderr[-3000:]
    assert took - seconds_off < EXPORT_DELAY_BOUND_S, (took, seconds_off)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
