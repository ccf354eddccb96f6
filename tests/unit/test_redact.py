"""The redactor: which values are secrets, and that they leave no event, log line or environment."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agentproxy import redact
from agentproxy.agents.claude import agent_environment
from agentproxy.checks import run_checks
from agentproxy.child_env import SUPERVISOR_VARIABLES, child_environment
from agentproxy.messages import (
    AgentQuestion,
    CheckResult,
    ChecksRan,
    QuestionAnswered,
    QuestionAsked,
    SessionFinished,
)
from agentproxy.redact import REDACTED, RedactingFilter, Redactor

GEMINI = "AIzaSyD-gemini-secret-value-123"


@pytest.fixture(autouse=True)
def no_installed_redactor(monkeypatch: pytest.MonkeyPatch) -> None:
    """As before any run; what a test installs is undone after it."""
    monkeypatch.setattr(redact, "_installed", None)


def test_secret_looking_variables_are_redacted_and_others_are_not() -> None:
    environ = {
        "GEMINI_API_KEY": GEMINI,
        "MY_SERVICE_TOKEN": "tok-0123456789",
        "AWS_SECRET": "aws-secret-value",
        "DB_PASSWORD_FILE": "hunter2hunter2",
        "GOOGLE_CREDENTIALS_JSON": "{creds-json-blob}",
        "HOME": "/home/someone-long",
        "PATH": "/usr/bin:/bin",
    }
    redactor = Redactor.from_sources(environ)
    text = " ".join(environ.values())
    assert redactor.redact(text).split() == [REDACTED] * 5 + ["/home/someone-long", "/usr/bin:/bin"]


def test_short_values_are_never_secrets() -> None:
    redactor = Redactor.from_sources({"DEBUG_KEY": "1", "FEATURE_TOKEN": "true", "SHORT_SECRET": "1234567"})
    assert redactor.redact("1 true 1234567") == "1 true 1234567"


def test_every_value_of_a_dotenv_file_is_a_secret(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"GEMINI_API_KEY={GEMINI}\nDATABASE_URL='postgres://u:pw@db/app'\nDEBUG=1\n")
    redactor = Redactor.from_sources({}, [dotenv, tmp_path / "missing.env"])
    assert redactor.redact(f"key {GEMINI} url postgres://u:pw@db/app debug 1") == (
        f"key {REDACTED} url {REDACTED} debug 1"
    )


def test_a_secret_that_contains_another_is_replaced_whole() -> None:
    redactor = Redactor(["abcdefgh", "abcdefgh-longer"])
    assert redactor.redact("abcdefgh-longer and abcdefgh") == f"{REDACTED} and {REDACTED}"


def test_events_are_redacted_in_nested_structs_lists_and_dict_keys() -> None:
    redactor = Redactor([GEMINI, 'with "quotes" and \\ backslash'])
    checks = ChecksRan(
        subtask_id="1",
        results=[CheckResult(command="printenv", exit_code=0, output_tail=f"GEMINI_API_KEY={GEMINI}\n")],
        session_id="s1",
        at=12.5,
    )
    cleaned = redactor.redact_struct(checks)
    assert isinstance(cleaned, ChecksRan) and cleaned.session_id == "s1" and cleaned.at == 12.5
    assert cleaned.results[0].output_tail == f"GEMINI_API_KEY={REDACTED}\n"
    answered = redactor.redact_struct(QuestionAnswered(subtask_id="1", answers={f"use {GEMINI}?": "yes"}, by="brain"))
    assert answered.answers == {f"use {REDACTED}?": "yes"}
    asked = redactor.redact_struct(
        QuestionAsked(subtask_id="1", questions=[AgentQuestion(question='say with "quotes" and \\ backslash')])
    )
    assert asked.questions[0].question == f"say {REDACTED}"


def test_an_event_without_secrets_is_returned_as_it_is() -> None:
    event = SessionFinished(status="done", reason="all good")
    assert Redactor([GEMINI]).redact_struct(event) is event
    assert Redactor([]).redact_struct(event) is event


def test_the_log_filter_redacts_messages_arguments_and_tracebacks(tmp_path: Path) -> None:
    redact.install(Redactor([GEMINI]))
    log_file = tmp_path / "test.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("agentproxy.test_redact")
    logger.addHandler(handler)
    try:
        logger.warning("key is %s", GEMINI)
        try:
            raise RuntimeError(f"failed with {GEMINI}")
        except RuntimeError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
        handler.close()
    written = log_file.read_text()
    assert GEMINI not in written
    assert f"key is {REDACTED}" in written and f"RuntimeError: failed with {REDACTED}" in written


def test_before_a_run_the_installed_redactor_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_API_KEY", "installed-secret-value")
    assert redact.installed().redact("installed-secret-value") == REDACTED


def test_children_get_no_supervisor_variable_but_keep_the_agents_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SUPERVISOR_VARIABLES:
        monkeypatch.setenv(name, "supervisor-only-value")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-agents-own")
    for env in (child_environment(), agent_environment(), agent_environment({"GEMINI_API_KEY": GEMINI, "X": "y"})):
        assert not SUPERVISOR_VARIABLES & env.keys()
    assert agent_environment()["ANTHROPIC_API_KEY"] == "sk-ant-agents-own"


def test_checks_run_without_the_supervisors_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", GEMINI)
    monkeypatch.setenv("PROJECT_SETTING", "kept")
    [result] = run_checks(["printenv"], tmp_path, timeout_s=30)
    assert result.passed and "PROJECT_SETTING=kept" in result.output_tail
    assert "GEMINI_API_KEY" not in result.output_tail and GEMINI not in result.output_tail


def test_the_clis_error_line_is_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from agentproxy.cli import app

    not_a_directory = tmp_path / "deploy-token-0123456789"
    not_a_directory.write_text("")
    monkeypatch.setenv("DEPLOY_TOKEN", not_a_directory.name)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", root.handlers[:])  # the CLI installs its log file handler
    monkeypatch.setattr(root, "level", root.level)
    result = CliRunner().invoke(app, ["--claude-bin", "true", "-d", str(not_a_directory), "a task"])
    for handler in root.handlers:
        handler.close()
    assert result.exit_code == 2
    assert "pa: error: working directory" in result.stderr and REDACTED in result.stderr
    assert not_a_directory.name not in result.stderr
