"""The Codex and Gemini CLI stream readers, fed the CLIs' real transcripts and the lines their failures print."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentproxy.agents.backend import Opened, Said, StreamReader, ToolReturned, TurnEnded, Unreadable, UsedTool
from agentproxy.agents.codex import CODEX, CodexStream
from agentproxy.agents.gemini_cli import GEMINI_CLI, GeminiStream

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "protocol-samples"


def read_all(reader: StreamReader, lines: list[str]) -> list[object]:
    return [reading for line in lines for reading in reader.read(line)]


def sample(name: str) -> list[str]:
    return [line for line in (SAMPLES / name).read_text().splitlines() if line.strip()]


def test_a_real_codex_turn_opens_its_thread_runs_a_command_says_and_ends_with_its_usage() -> None:
    readings = read_all(CodexStream(), sample("codex_exec_json.jsonl"))
    assert readings[0] == Opened(session_id="01a20a01-474d-7be2-8b4a-1b68e2806497")
    used = [r for r in readings if isinstance(r, UsedTool)]
    assert len(used) == 1 and used[0].runs_command and "hello.py" in used[0].input["command"]
    assert [r for r in readings if isinstance(r, ToolReturned)] == [ToolReturned(id=used[0].id, output="completed")]
    assert Said(text="Done: hello.py created.") in readings
    assert readings[-1] == TurnEnded(ok=True, text="Done: hello.py created.", input_tokens=200, output_tokens=40)


def test_a_codex_turn_that_fails_says_why_and_a_failed_command_is_an_error_result() -> None:
    lines = [
        json.dumps({"type": "thread.started", "thread_id": "t1"}),
        json.dumps({"type": "item.completed", "item": {"id": "i1", "type": "command_execution", "command": "false",
                                                        "aggregated_output": "boom", "exit_code": 1,
                                                        "status": "failed"}}),
        json.dumps({"type": "error", "message": "unexpected status 500 Internal Server Error"}),
        json.dumps({"type": "turn.failed", "error": {"message": "unexpected status 500 Internal Server Error"}}),
    ]  # fmt: skip
    readings = read_all(CodexStream(), lines)
    assert isinstance(readings[1], UsedTool) and readings[2] == ToolReturned(id="i1", output="boom", is_error=True)
    assert readings[-1] == TurnEnded(ok=False, error="unexpected status 500 Internal Server Error")


def test_a_codex_process_that_exits_without_ending_its_turn_reports_its_errors() -> None:
    reader = CodexStream()
    read_all(reader, [json.dumps({"type": "error", "message": "stream disconnected"}), "not json"])
    ended = reader.at_exit(1, "")
    assert ended is not None and not ended.ok and "stream disconnected" in ended.error


def test_a_real_gemini_turn_opens_its_session_writes_a_file_and_ends_with_tokens_per_model() -> None:
    readings = read_all(GeminiStream(), sample("gemini_cli_stream_json.jsonl"))
    assert readings[0] == Opened(session_id="f23fe5a7-b153-4090-b284-e9f4a84a2b74", model="auto")
    used = next(r for r in readings if isinstance(r, UsedTool))
    assert used.tool == "write_file" and used.edits and used.input["file_path"].endswith("hello.py")
    assert ToolReturned(id=used.id, output="", is_error=False) in readings
    ended = readings[-1]
    assert isinstance(ended, TurnEnded) and ended.ok
    assert ended.text.startswith("Echo: got function result") and ended.text.endswith('"write_file_1795464217222_0"}]')
    assert (ended.input_tokens, ended.output_tokens) == (30, 15)
    assert ended.models == {"gemini-3.5-flash-lite": (10, 5), "gemini-3.8-flash": (20, 10)}


def test_a_gemini_turn_that_fails_or_exits_early_says_why() -> None:
    error = {"type": "ApiError", "message": "quota", "code": 429}
    failed = read_all(GeminiStream(), [json.dumps({"type": "result", "status": "error", "error": error})])
    assert failed == [TurnEnded(ok=False, error="quota", api_error_status=429)]
    reader = GeminiStream()
    assert read_all(reader, ["{"]) and isinstance(read_all(reader, ["{"])[0], Unreadable)
    ended = reader.at_exit(55, "")
    assert ended is not None and "does not trust the working directory" in ended.error


@pytest.mark.parametrize("resume", [None, "s-1"])
def test_each_backend_starts_a_turn_in_the_worktree_and_resumes_its_session(resume: str | None, tmp_path: Path) -> None:
    codex = CODEX.turn_argv(["codex"], "do it", cwd=tmp_path, resume=resume, model="m")
    assert codex[:3] == ["codex", "exec", "--json"] and codex[-2:] == ["--", "do it"]
    assert codex[codex.index("--cd") + 1] == str(tmp_path) and codex[codex.index("--sandbox") + 1] == "workspace-write"
    assert (("resume" in codex) and codex[codex.index("resume") + 1] == resume) == (resume is not None)
    gemini = GEMINI_CLI.turn_argv(["gemini"], "do it", cwd=tmp_path, resume=resume, model=None)
    assert gemini[-2:] == ["-p", "do it"] and ("--resume" in gemini) == (resume is not None)


def test_only_the_gemini_cli_gets_the_brain_key_and_only_when_it_is_shared() -> None:
    key = {"GEMINI_API_KEY": "k"}
    assert "GEMINI_API_KEY" not in GEMINI_CLI.environment({"PATH": "/bin"}, brain_key={})
    assert GEMINI_CLI.environment({"PATH": "/bin"}, brain_key=key)["GEMINI_API_KEY"] == "k"
    assert "GEMINI_API_KEY" not in CODEX.environment({"PATH": "/bin"}, brain_key=key)
