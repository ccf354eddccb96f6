"""schemathesis against a live pa-server's own OpenAPI schema (issue 10): every operation, with cases the
schema allows and cases it forbids, bounded, plus the paths random strings seldom reach. No answer may be
a 5xx; an answer the schema documents must match it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.core.failures import FailureGroup

from agentproxy.testing.live_server import Server, scripted_agent, sse

# One quick turn that changes a file: the runs the fuzzer starts end at once, inside their working directory.
QUICK = [[{"write": {"path": "note.txt", "content": "hi\n"}}, {"result": "Wrote note.txt."}]]
EXAMPLES = 25  # per operation and generation mode
DEADLINE_MS = 20_000
REQUEST_TIMEOUT_S = 15
CHECKS = [not_a_server_error, response_schema_conformance]
# Paths random strings seldom reach: another user's home, a name or a path longer than the system allows.
EDGE_TASKS = [
    {"task": "x", "working_dir": "~nosuchuser/w"},
    {"task": "x", "working_dir": "n" * 300},
    {"task": "x", "working_dir": "/".join(["n" * 200] * 25)},
    {"task": "x", "working_dir": "edge", "screenshots": [{"path": "~nosuchuser/shot.png"}]},
    {"task": "x", "working_dir": "edge", "screenshots": [{"path": "s" * 300 + ".png"}]},
]


@dataclass
class Fuzzer:
    url: str
    found: list[str] = field(default_factory=list)  # each failed check, with the request that shows it

    def check(self, case: Case) -> None:
        disarm(case)
        try:
            case.call_and_validate(base_url=self.url, checks=CHECKS, timeout=REQUEST_TIMEOUT_S)
        except FailureGroup as failures:
            self.found.append(f"{case.operation.label}: {failures}")

    def fuzz(self, operation: APIOperation, mode: GenerationMode, **fixed: Any) -> None:
        @settings(
            max_examples=EXAMPLES,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: a failing request is reported as sent
            deadline=DEADLINE_MS,
            database=None,
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet,  # the failures are kept and reported at the end, each with its request
        )
        @given(case=operation.as_strategy(generation_mode=mode, **fixed))
        def one(case: Case) -> None:
            self.check(case)

        try:
            one()
        except Unsatisfiable:  # a string path parameter alone: no value breaks the schema
            assert mode is GenerationMode.NEGATIVE, f"{operation.label}: no case generated"


def closed(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its request bodies closed, as the server reads them (forbid_unknown_fields): left
    open, most generated bodies carry an unknown field and never get past the 400."""
    for component in schema["components"]["schemas"].values():
        component.setdefault("additionalProperties", False)
    return schema


def disarm(case: Case) -> None:
    """The fuzzer's strings must not become shell commands: a task's checks and setup are made harmless."""
    body = case.body
    if case.path != "/task" or not isinstance(body, dict):
        return
    if isinstance(body.get("checks"), list) and all(isinstance(item, str) for item in body["checks"]):
        body["checks"] = ["true"] * len(body["checks"])
    if isinstance(body.get("setup"), str):
        body["setup"] = "off"


def first_session(server: Server) -> str:
    """A session that exists, for the operations that take one: fuzzed ids alone only reach the 404."""
    body = {"task": "Write a note", "working_dir": "w"}
    with server.client() as client, client.stream("POST", "/task", json=body) as response:
        messages = list(sse(response.iter_lines()))
    assert messages[-1]["event"] == "done", messages
    return json.loads(messages[0]["data"])["session_id"]


def test_no_request_gets_a_server_error_and_answers_match_the_schema(
    tmp_path: Path, server_with: Callable[..., Server]
) -> None:
    server = server_with(scripted_agent(tmp_path, QUICK))
    existing = first_session(server)
    schema = schemathesis.openapi.from_dict(closed(httpx.get(f"{server.url}/schema/openapi.json").json()))
    fuzzer = Fuzzer(server.url)
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzzer.fuzz(operation, mode)
        if "{session_id}" in operation.path:
            fuzzer.fuzz(operation, GenerationMode.POSITIVE, path_parameters={"session_id": existing})
    for body in EDGE_TASKS:
        fuzzer.check(schema["/task"]["POST"].Case(body=body))
    assert not fuzzer.found, "\n\n".join(fuzzer.found)
    assert server.process.poll() is None, server.stderr()
