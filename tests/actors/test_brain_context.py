"""What the ContextKeeper gathers reaches the Gemini brain's requests through the running actors:
the context directory, screenshots, the plan, earlier answers, and the history of earlier sessions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentproxy.brain.gemini import GeminiBrain
from agentproxy.messages import Event, SessionFinished
from agentproxy.runtime import run_task
from agentproxy.testing.fake_gemini import FakeGemini, Json

PLAN = Json({"subtasks": [{"id": "1", "title": "hello", "instructions": "Create hello.py"}]})
PASSED = Json({"passed": True, "findings": ["ok"]})
WRITE = [[{"write": {"path": "hello.py", "content": "print('hello')\n"}}, {"result": "Created hello.py."}]]
ASK_THEN_WRITE = [
    [
        {"ask": {"question": "Which greeting?", "options": [{"label": "hello"}, {"label": "hi"}]}},
        {"write": {"path": "hello.py", "content": "print('{answer}')\n"}},
        {"result": "Created hello.py."},
    ]
]


def run_with_gemini(task: str, options, *replies: Json) -> tuple[FakeGemini, list[Event]]:
    events: list[Event] = []
    with FakeGemini(*replies) as gemini:
        brain = GeminiBrain("test-key", base_url=gemini.url, retry_initial_delay_s=0.01)
        outcome = run_task(task, options, brain=brain, subscribers=[events.append], timeout_s=60)
    assert outcome.status == "done", outcome.reason
    return gemini, events


def test_context_dir_documents_images_and_screenshots_reach_every_call(scripted_options: Any, tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    (context / "standards.md").write_text("Every module starts with a docstring.")
    (context / "mockup.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"1" * 50)
    screenshot = tmp_path / "screen.png"
    screenshot.write_bytes(b"\x89PNG\r\n\x1a\n" + b"2" * 70)
    options = scripted_options(WRITE, context_dir=context, screenshots=(screenshot,), checks=("true",))
    gemini, _ = run_with_gemini("Create hello.py", options, PLAN, PASSED)
    assert [r.method for r in gemini.requests] == ["generateContent", "generateContent"]
    for request in gemini.requests:  # plan and review
        assert "Every module starts with a docstring." in request.text
        assert sorted(request.images) == [("image/png", 58), ("image/png", 78)]


def test_the_answer_call_sees_the_plan_and_the_question(scripted_options: Any) -> None:
    options = scripted_options(ASK_THEN_WRITE, checks=("true",))
    gemini, _ = run_with_gemini("Create hello.py", options, PLAN, Json({"answers": ["hi"]}), PASSED)
    answer_request = gemini.requests[1]
    assert "Which greeting?" in answer_request.text and "1. hello" in answer_request.text  # the plan
    assert (options.working_dir / "hello.py").read_text() == "print('hi')\n"
    assert "print('hi')" in gemini.requests[2].text  # the review reads the diff of the answered work


def test_a_later_session_in_the_same_directory_reads_the_earlier_sessions_summary(scripted_options: Any) -> None:
    first = scripted_options(WRITE, checks=("true",))
    _, events = run_with_gemini("Create hello.py", first, PLAN, PASSED)
    assert isinstance(events[-1], SessionFinished) and events[-1].brain_cost_usd >= 0
    (first.working_dir / "hello.py").unlink()  # the second session has work to do again
    gemini, _ = run_with_gemini("Now add a README", first, PLAN, PASSED)
    plan_request = gemini.requests[0].text
    assert "Create hello.py" in plan_request and "session " in plan_request


def test_no_qa_keeps_the_checks_and_skips_the_brain_review(scripted_options: Any) -> None:
    options = scripted_options(WRITE, checks=("test -f hello.py",), brain_review=False)
    gemini, events = run_with_gemini("Create hello.py", options, PLAN)
    assert len(gemini.requests) == 1  # the plan only
    reviewed = [e for e in events if type(e).__name__ == "Reviewed"]
    assert reviewed and reviewed[0].verdict.findings == ["`test -f hello.py` passed"]
