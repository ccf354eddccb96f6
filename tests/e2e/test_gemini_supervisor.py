"""The Gemini brain supervising the REAL Claude Code CLI: both APIs are the project's fakes, the
clients (google-genai, claude) are the real ones."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from agentproxy.brain.gemini import GeminiBrain
from agentproxy.brain.resilient import ResilientBrain
from agentproxy.messages import (
    AgentFinished,
    BrainCalled,
    Event,
    FollowUpSent,
    PlanMade,
    QuestionAnswered,
    SessionFinished,
    SubtaskFinished,
)
from agentproxy.runtime import run_task
from agentproxy.testing.claude_env import fake_api_options, find_claude_bin, isolated_claude_env, pa_argv
from agentproxy.testing.fake_anthropic import CapturedRequest, FakeAnthropic, Text, ToolUse, write_file
from agentproxy.testing.fake_gemini import FakeGemini, Json, Status

CLAUDE_BIN = find_claude_bin() or "claude"
GEMINI_KEY = "AIzaSy-e2e-secret-key-987654321"
PASSED = Json({"passed": True, "findings": ["meets the criteria"]})


def one_subtask(instructions: str) -> Json:
    return Json({"subtasks": [{"id": "1", "title": "Do it", "instructions": instructions}]})


def run(task: str, anthropic: FakeAnthropic, gemini: FakeGemini, tmp_path: Path, **overrides: Any):
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    options = fake_api_options(anthropic.url, project, tmp_path / "claude-home", **overrides)
    brain = ResilientBrain(GeminiBrain(GEMINI_KEY, base_url=gemini.url, retry_initial_delay_s=0.01))
    events: list[Event] = []
    outcome = run_task(task, options, brain=brain, subscribers=[events.append], timeout_s=180)
    return outcome, events, project


def test_a_plan_of_several_subtasks_runs_each_and_reviews_each(tmp_path: Path) -> None:
    plan = Json(
        {
            "subtasks": [
                {"id": "1", "title": "Model", "instructions": "Create model.txt", "files": ["model.txt"]},
                {"id": "2", "title": "View", "instructions": "Create view.txt", "depends_on": ["1"]},
            ]
        }
    )

    def agent(request: CapturedRequest):
        if request.tool_results:
            return Text("Done.")
        return write_file("view.txt" if "view.txt" in request.last_user_text else "model.txt", "ok\n")

    with FakeAnthropic(default=agent) as anthropic, FakeGemini(plan, PASSED, PASSED, PASSED) as gemini:
        outcome, events, project = run("Build the model, then the view", anthropic, gemini, tmp_path)
    assert outcome.status == "done", outcome.reason
    assert (project / "model.txt").exists() and (project / "view.txt").exists()
    assert [(e.subtask_id, e.status) for e in events if isinstance(e, SubtaskFinished)] == [
        ("1", "done"),
        ("2", "done"),
    ]
    made = next(e for e in events if isinstance(e, PlanMade))
    assert made.brain == "gemini" and len(made.plan.subtasks) == 2
    # One review per subtask, then one of the merged whole against the task.
    assert [e.purpose for e in events if isinstance(e, BrainCalled)] == ["plan", "review", "review", "review"]
    assert "Build the model, then the view" in gemini.requests[3].text
    review_of_view = gemini.requests[2].text
    assert "Create view.txt" in review_of_view and "view.txt" in review_of_view  # the diff is in the review


def test_gemini_answers_a_real_ask_user_question_and_the_agent_gets_it(tmp_path: Path) -> None:
    question = {
        "question": "Which web framework should I use?",
        "header": "Framework",
        "options": [
            {"label": "Flask (Recommended)", "description": "small"},
            {"label": "Django", "description": "big"},
        ],
        "multiSelect": False,
    }

    def record_the_answer(request: CapturedRequest) -> ToolUse:
        return write_file("choice.txt", json.dumps(request.tool_results[0].get("content")))

    anthropic = FakeAnthropic(ToolUse("AskUserQuestion", {"questions": [question]}), record_the_answer, Text("Done."))
    # Django, not the recommended option the offline brain would pick: the answer is Gemini's.
    gemini = FakeGemini(one_subtask("Pick a framework"), Json({"answers": ["Django"]}), PASSED)
    with anthropic, gemini:
        outcome, events, project = run("Pick a web framework", anthropic, gemini, tmp_path)
    assert outcome.status == "done", outcome.reason
    answered = next(e for e in events if isinstance(e, QuestionAnswered))
    assert answered.answers == {question["question"]: "Django"} and answered.by == "gemini"
    assert "Django" in (project / "choice.txt").read_text()
    assert "Which web framework should I use?" in gemini.requests[1].text
    assert [e.purpose for e in events if isinstance(e, BrainCalled)] == ["plan", "answer", "review"]


def test_a_failed_review_sends_its_follow_up_to_the_same_agent_session(tmp_path: Path) -> None:
    failed = Json({"passed": False, "findings": ["no README"], "follow_up": "Also write README.md describing app.txt."})
    anthropic = FakeAnthropic(
        write_file("app.txt", "app\n"),
        Text("Wrote app.txt."),
        write_file("README.md", "# app\n"),
        Text("Added README."),
    )
    with anthropic, FakeGemini(one_subtask("Create app.txt"), failed, PASSED) as gemini:
        outcome, events, project = run("Create app.txt", anthropic, gemini, tmp_path)
    assert outcome.status == "done", outcome.reason
    assert (project / "README.md").exists()
    [follow_up] = [e for e in events if isinstance(e, FollowUpSent)]
    assert follow_up.instruction == "Also write README.md describing app.txt."
    main = [r for r in anthropic.requests if not r.side]
    assert "Also write README.md describing app.txt." in main[2].last_user_text
    assert len({e.agent_session_id for e in events if isinstance(e, AgentFinished)}) == 1
    finished = events[-1]
    assert isinstance(finished, SessionFinished) and finished.brain_cost_usd > 0


def test_pa_with_gemini_down_finishes_on_the_offline_brain_and_never_shows_the_key(
    tmp_path: Path, agentproxy_home: Path
) -> None:
    project = tmp_path / "project"
    with (
        FakeAnthropic(write_file("hello.txt", "hi\n"), Text("Created hello.txt.")) as anthropic,
        FakeGemini(default=Status(500)) as gemini,
    ):
        env = {
            **isolated_claude_env(anthropic.url, tmp_path / "claude-home"),
            "AGENTPROXY_HOME": str(agentproxy_home),
            "GEMINI_API_KEY": GEMINI_KEY,
            "GOOGLE_GEMINI_BASE_URL": gemini.url,
        }
        done = subprocess.run(
            pa_argv(project, "Create hello.txt"),
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
    assert done.returncode == 0, done.stderr
    kinds = [json.loads(line)["kind"] for line in done.stdout.splitlines()]
    assert "brain_fell_back" in kinds and kinds[-1] == "session_finished"
    assert gemini.requests and all(r.api_key == GEMINI_KEY for r in gemini.requests)
    for place in (done.stdout, done.stderr):
        assert GEMINI_KEY not in place
    written = [path for path in (agentproxy_home / "data").iterdir() if path.is_file()]  # log, db, WAL
    assert any(path.name == "agentproxy.log" for path in written)
    for path in written:
        assert GEMINI_KEY.encode() not in path.read_bytes(), path


def test_a_question_the_review_finds_is_answered_in_the_same_session_without_an_extra_call(tmp_path: Path) -> None:
    asked = "Should the users table use UUID or integer keys?"
    review_asks = Json({"passed": False, "findings": ["the agent waits for a decision"], "question": asked})

    def agent(request: CapturedRequest):
        if request.tool_results:
            return Text("Wrote schema.sql with the users table.")
        return write_file("schema.sql", f"-- {request.last_user_text[-300:]!r}\n")

    with (
        FakeAnthropic(default=agent) as anthropic,
        FakeGemini(one_subtask("Write schema.sql"), review_asks, Json({"answers": ["UUID"]}), PASSED) as gemini,
    ):
        outcome, events, project = run("Write the schema", anthropic, gemini, tmp_path)
    assert outcome.status == "done", outcome.reason
    assert [e.purpose for e in events if isinstance(e, BrainCalled)] == ["plan", "review", "answer", "review"]
    answered = [e for e in events if isinstance(e, QuestionAnswered)]
    assert answered and answered[0].answers == {asked: "UUID"}
    assert "UUID" in (project / "schema.sql").read_text()  # the answer reached the agent's next turn
    follow_ups = [e for e in events if isinstance(e, FollowUpSent)]
    assert len(follow_ups) == 1 and follow_ups[0].attempt == 1  # answering is not a verification attempt
    assert '"question"' in json.dumps(gemini.requests[1].schema)  # the review call itself decides
