"""The Gemini brain through the REAL google-genai SDK against the project's fake Gemini API:
structured output, retries, fallbacks, cost accounting, context and budget, and no key leaks."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import pytest

from agentproxy.brain.base import Attempt, PickInput, ReviewInput, Situation
from agentproxy.brain.gemini import DEFAULT_MODEL, GeminiBrain
from agentproxy.brain.resilient import ResilientBrain
from agentproxy.context import ContextDocument, ProjectContext
from agentproxy.errors import BrainError, UsageError
from agentproxy.knowledge import Knowledge
from agentproxy.messages import AgentQuestion, BrainCalled, BrainFellBack, CheckResult, Event, Option, Subtask, to_json
from agentproxy.testing.fake_gemini import Disconnect, FakeGemini, Hang, Json, RawText, Status

API_KEY = "AIzaSy-test-secret-key-0123456789"
PLAN = {
    "rationale": "API first, then the UI on top of it",
    "subtasks": [
        {"id": "1", "title": "API", "instructions": "Add /login", "checks": ["pytest -q"], "files": ["api.py"]},
        {"id": "2", "title": "UI", "instructions": "Add the login form", "depends_on": ["1"]},
    ],
}
SUBTASK = Subtask(id="1", title="API", instructions="Add /login", checks=["pytest -q"])


def brain_for(api: FakeGemini, events: list[Event], **kwargs) -> GeminiBrain:
    brain = GeminiBrain(API_KEY, base_url=api.url, retry_initial_delay_s=0.01, **kwargs)
    brain.events.connect(events.append)
    return brain


def test_plan_is_structured_output_parsed_into_subtasks() -> None:
    events: list[Event] = []
    with FakeGemini(Json(PLAN, input_tokens=1000, output_tokens=200)) as api:
        plan = brain_for(api, events).plan("Add OAuth login", Knowledge())
    assert [(s.id, s.title, s.depends_on) for s in plan.subtasks] == [("1", "API", []), ("2", "UI", ["1"])]
    assert plan.subtasks[0].checks == ["pytest -q"] and plan.subtasks[0].files == ["api.py"]
    request = api.requests[0]
    assert request.model == DEFAULT_MODEL and request.method == "generateContent"
    assert request.schema["properties"]["subtasks"]["items"]["required"] == ["id", "title", "instructions"]
    assert request.temperature == pytest.approx(0.2)
    assert "ONE subtask" in request.system_text and "Add OAuth login" in request.text
    assert request.api_key == API_KEY  # sent to the API, and nowhere else (see the leak test)
    [called] = [e for e in events if isinstance(e, BrainCalled)]
    assert (called.purpose, called.ok, called.input_tokens, called.output_tokens) == ("plan", True, 1000, 200)
    assert called.cost_usd == pytest.approx((1000 * 0.50 + 200 * 3.00) / 1e6)


@pytest.mark.parametrize("api_version", ["v1", "v1beta"])
def test_both_api_versions_are_served(api_version: str) -> None:
    with FakeGemini(Json(PLAN)) as api:
        brain_for(api, [], api_version=api_version).plan("task", Knowledge())
    assert api.requests[0].api_version == api_version


def test_model_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPROXY_GEMINI_MODEL", "gemini-2.5-pro")
    with FakeGemini(Json(PLAN)) as api:
        brain_for(api, []).plan("task", Knowledge())
    assert api.requests[0].model == "gemini-2.5-pro"


@pytest.mark.parametrize(
    "bad",
    [
        RawText("{not json"),
        Json({"subtasks": []}),
        Json({"subtasks": [{"id": "1", "title": "t", "instructions": "i", "depends_on": ["1"]}]}),
    ],
    ids=["malformed-json", "no-subtasks", "cycle"],
)
def test_bad_output_is_asked_for_once_more(bad) -> None:
    with FakeGemini(bad, Json(PLAN)) as api:
        plan = brain_for(api, []).plan("task", Knowledge())
    assert len(plan.subtasks) == 2 and len(api.requests) == 2


def test_bad_output_twice_is_a_brain_error_then_the_offline_answer() -> None:
    events: list[Event] = []
    with FakeGemini(RawText("nope"), RawText("still nope")) as api:
        brain = ResilientBrain(brain_for(api, events))
        plan = brain.plan("1. write a\n2. write b", Knowledge())
    assert [s.instructions for s in plan.subtasks] == ["write a", "write b"]  # the offline plan
    fell_back = [e for e in events if isinstance(e, BrainFellBack)]
    assert len(fell_back) == 1 and "malformed twice" in fell_back[0].reason and not fell_back[0].for_rest_of_session


def test_429_is_retried_by_the_sdk() -> None:
    with FakeGemini(Status(429), Json(PLAN)) as api:
        plan = brain_for(api, []).plan("task", Knowledge())
    assert len(plan.subtasks) == 2 and len(api.requests) == 2


def test_repeated_500s_fall_back_and_then_stop_calling() -> None:
    events: list[Event] = []
    with FakeGemini(default=Status(500)) as api:
        brain = ResilientBrain(brain_for(api, events, retry_attempts=2), max_failures=2)
        for _ in range(3):
            assert brain.answer([AgentQuestion(question="DB?", options=[Option(label="SQLite")])], Situation("t")) == [
                "SQLite"
            ]
        calls_after_giving_up = len(api.requests)
        brain.plan("task", Knowledge())
    assert calls_after_giving_up == 4  # 2 calls x 2 SDK attempts, then none
    assert len(api.requests) == calls_after_giving_up
    fell_back = [e for e in events if isinstance(e, BrainFellBack)]
    assert [f.for_rest_of_session for f in fell_back] == [False, True]
    assert brain.name == "offline (gemini unavailable)"


def test_connection_refused_is_a_brain_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before the call: nothing listens there
    brain = GeminiBrain(API_KEY, base_url=f"http://127.0.0.1:{port}", retry_initial_delay_s=0.01)
    with pytest.raises(BrainError, match="ConnectError"):
        brain.plan("task", Knowledge())


@pytest.mark.parametrize("silence", [Hang(30), Disconnect()], ids=["timeout", "disconnect"])
def test_a_silent_or_vanishing_api_is_a_brain_error(silence) -> None:
    with FakeGemini(silence, default=silence) as api:
        brain = brain_for(api, [], timeout_s=1, retry_attempts=1)
        started = time.monotonic()
        with pytest.raises(BrainError):
            brain.plan("task", Knowledge())
    assert time.monotonic() - started < 10


def test_the_api_key_never_appears_in_events_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    events: list[Event] = []
    errors: list[str] = []
    with FakeGemini(Json(PLAN), Status(400, message=f"API key {API_KEY} not valid"), default=Status(500)) as api:
        brain = brain_for(api, events, retry_attempts=1)
        brain.plan("task", Knowledge())
        for _ in range(2):
            try:
                brain.plan("task", Knowledge())
            except BrainError as exc:
                errors.append(str(exc))
        resilient = ResilientBrain(brain)
        resilient.plan("task", Knowledge())
    assert len(errors) == 2 and events
    everything = "\n".join([*(to_json(e).decode() for e in events), *errors, caplog.text])
    assert API_KEY not in everything
    assert "HTTP 400" in everything


def test_review_reads_the_diff_and_check_tail_and_never_overrules_failing_checks() -> None:
    failing = CheckResult(command="pytest -q", exit_code=1, output_tail="x" * 50_000 + "\nE   AssertionError: boom")
    review = ReviewInput(task="Add /login", subtask=SUBTASK, checks=[failing], diff="+def login(): ...")
    with FakeGemini(Json({"passed": True, "findings": ["looks fine"]})) as api:
        verdict = brain_for(api, [], prompt_chars=20_000).review(review)
    assert not verdict.passed and "looks fine" in verdict.findings
    assert "AssertionError: boom" in verdict.follow_up
    text = api.requests[0].text
    assert "AssertionError: boom" in text and "+def login(): ..." in text  # the tail survived the budget
    assert len(text) <= 20_000 + len(api.requests[0].system_text) + 10


def test_failed_review_carries_the_follow_up() -> None:
    passing = CheckResult(command="pytest -q", exit_code=0)
    verdict_json = {"passed": False, "findings": ["no docstring"], "follow_up": "Add a docstring to login()."}
    with FakeGemini(Json({"passed": False, "findings": ["x"]}), Json(verdict_json)) as api:
        verdict = brain_for(api, []).review(ReviewInput(task="t", subtask=SUBTASK, checks=[passing]))
    assert verdict.follow_up == "Add a docstring to login()." and len(api.requests) == 2  # the first lacked one


def test_context_documents_images_and_conversation_reach_the_request(tmp_path: Path) -> None:
    mockup = tmp_path / "mockup.png"
    mockup.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    project = ProjectContext(
        documents=(ContextDocument(source="standards.md", text="Use snake_case everywhere.", modified=0.0),),
        images=(mockup,),
    )
    knowledge = Knowledge(project=project, exchanges=("Q: DB?\nA: SQLite",))
    question = AgentQuestion(question="Which style?", options=[Option(label="camelCase"), Option(label="snake_case")])
    with FakeGemini(Json({"answers": ["snake_case"]})) as api:
        answers = brain_for(api, []).answer(
            [question], Situation("Add login", knowledge=knowledge, transcript_tail="…")
        )
    assert answers == ["snake_case"]
    request = api.requests[0]
    assert "Use snake_case everywhere." in request.text and "Q: DB?\nA: SQLite" in request.text
    assert "camelCase" in request.text
    assert request.images == [("image/png", 108)]


def test_the_prompt_budget_holds_on_a_huge_transcript() -> None:
    tail = "".join(f"line {i}: did something\n" for i in range(200_000)) + "FINAL LINE"
    question = AgentQuestion(question="Continue?", options=[Option(label="yes")])
    with FakeGemini(Json({"answers": ["yes"]})) as api:
        brain_for(api, [], prompt_chars=8_000).answer([question], Situation("t", transcript_tail=tail))
    text = api.requests[0].text
    assert len(text) - len(api.requests[0].system_text) <= 8_000 + 10
    assert "FINAL LINE" in text and "line 0:" not in text  # the end of the output is kept


def test_a_tool_no_rule_covers_is_judged_by_gemini() -> None:
    with FakeGemini(Json({"allow": False, "reason": "publishing is out of scope"})) as api:
        judgement = brain_for(api, []).judge_tool("mcp__npm__publish", {"package": "x"}, Situation("Fix a typo"))
    assert not judgement.allow and "publishing is out of scope" in judgement.reason
    assert "mcp__npm__publish" in api.requests[0].text and "Fix a typo" in api.requests[0].text


def test_a_call_past_the_deadline_is_answered_offline_at_the_deadline() -> None:
    events: list[Event] = []
    with FakeGemini(Hang(30)) as api:
        brain = ResilientBrain(brain_for(api, events, timeout_s=60, retry_attempts=1), deadline_s=0.5)
        started = time.monotonic()
        answers = brain.answer([AgentQuestion(question="DB?", options=[Option(label="SQLite")])], Situation("t"))
        waited = time.monotonic() - started
    assert answers == ["SQLite"] and waited < 5
    assert [e.reason for e in events if isinstance(e, BrainFellBack)] == ["no answer within 0.5s"]


def test_the_prompt_budget_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPROXY_PROMPT_CHARS", "3000")
    with FakeGemini(Json(PLAN)) as api:
        brain_for(api, []).plan("x" * 50_000, Knowledge())
    assert len(api.requests[0].text) - len(api.requests[0].system_text) <= 3000 + 10
    monkeypatch.setenv("AGENTPROXY_PROMPT_CHARS", "lots")
    with pytest.raises(UsageError, match="AGENTPROXY_PROMPT_CHARS"):
        GeminiBrain(API_KEY)


ATTEMPTS = [
    Attempt(attempt_id="1~1", agent="claude", summary="rewrote parse()", diff="+def parse(): fast", diff_lines=40),
    Attempt(
        attempt_id="1~2", agent="codex", summary="cached the regex", diff="+PATTERN = re.compile(...)", diff_lines=3
    ),
]


def test_the_brain_picks_among_verified_attempts_reading_their_diffs_with_its_reason() -> None:
    events: list[Event] = []
    choice = PickInput(task="Speed up parse()", subtask=SUBTASK, attempts=ATTEMPTS)
    reply = {"attempt_id": "1~2", "reason": "the smaller change that does the job"}
    with FakeGemini(Json({"attempt_id": "1~9", "reason": "x"}), Json(reply)) as api:
        pick = brain_for(api, events).pick(choice)
    assert pick.attempt_id == "1~2" and pick.reason.startswith("the smaller change that does the job (picked by")
    assert len(api.requests) == 2, "an attempt id that is not one of them is asked for again"
    text = api.requests[0].text
    assert "+def parse(): fast" in text and "+PATTERN = re.compile(...)" in text and "codex" in text
    assert [e.purpose for e in events if isinstance(e, BrainCalled)] == ["pick", "pick"]


def test_offline_the_smallest_diff_is_picked_and_a_failing_api_falls_back_to_that() -> None:
    choice = PickInput(task="Speed up parse()", subtask=SUBTASK, attempts=ATTEMPTS)
    with FakeGemini(Status(500), Status(500), Status(500), Status(500)) as api:
        pick = ResilientBrain(brain_for(api, [])).pick(choice)
    assert pick.attempt_id == "1~2" and "smallest diff" in pick.reason
