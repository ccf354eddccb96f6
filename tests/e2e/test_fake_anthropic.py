"""The real Claude Code CLI against FakeAnthropic: proves the fake speaks the wire protocol the CLI
expects, so the supervisor's integration tests can script the model instead of paying for it."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from agentproxy.testing.claude_env import find_claude_bin, isolated_claude_env
from agentproxy.testing.fake_anthropic import CapturedRequest, Error, FakeAnthropic, Text, ToolUse

CLAUDE_BIN = find_claude_bin() or "claude"
RUN_TIMEOUT_S = 60


def run_claude(
    api: FakeAnthropic, tmp_path: Path, prompt: str, *flags: str
) -> tuple[list[dict[str, Any]], subprocess.CompletedProcess[str], Path]:
    """One headless `claude -p` run in a fresh cwd; returns (stdout events, process, cwd)."""
    cwd = tmp_path / "work"
    cwd.mkdir(exist_ok=True)
    proc = subprocess.run(
        [CLAUDE_BIN, "-p", prompt, "--output-format", "stream-json", "--verbose", *flags],
        cwd=cwd,
        env=isolated_claude_env(api.url, tmp_path / "home"),
        stdin=subprocess.DEVNULL,  # an open stdin makes -p wait for more input
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return events, proc, cwd


def result_of(events: list[dict[str, Any]], proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    results = [event for event in events if event.get("type") == "result"]
    assert results, f"no result event; rc={proc.returncode} stderr={proc.stderr[-2000:]}"
    return results[-1]


def assistant_texts(events: list[dict[str, Any]]) -> list[str]:
    return [
        block["text"]
        for event in events
        if event.get("type") == "assistant"
        for block in event["message"]["content"]
        if block.get("type") == "text"
    ]


def test_scripted_text_reaches_the_result(tmp_path: Path) -> None:
    with FakeAnthropic(Text("hi from the fake")) as api:
        events, proc, cwd = run_claude(api, tmp_path, "say hi")

    result = result_of(events, proc)
    assert result["is_error"] is False, result
    assert result["result"] == "hi from the fake"
    assert "hi from the fake" in assistant_texts(events)
    assert proc.returncode == 0
    [request] = api.requests
    assert request.last_user_text == "say hi"
    assert request.cwd == str(cwd)
    assert request.body["stream"] is True
    assert {"Write", "Bash", "Edit"} <= set(request.tools)


def test_scripted_write_creates_the_file_and_returns_a_tool_result(tmp_path: Path) -> None:
    write = ToolUse("Write", lambda r: {"file_path": f"{r.cwd}/hello.txt", "content": "hello\n"}, text="Writing.")
    with FakeAnthropic(write, Text("written")) as api:
        events, proc, cwd = run_claude(api, tmp_path, "write hello.txt", "--allowedTools", "Write")

    result = result_of(events, proc)
    assert result["is_error"] is False, result
    assert result["result"] == "written"
    assert (cwd / "hello.txt").read_text() == "hello\n"
    first, follow_up = api.wait_for_requests(2, timeout=1)
    [tool_use_id] = [
        block["id"]
        for event in events
        if event.get("type") == "assistant"
        for block in event["message"]["content"]
        if block.get("type") == "tool_use"
    ]
    [tool_result] = follow_up.tool_results
    assert tool_result["tool_use_id"] == tool_use_id
    assert not tool_result.get("is_error")
    assert first.cwd == follow_up.cwd == str(cwd)


def test_a_500_fails_fast_with_an_error_result(tmp_path: Path) -> None:
    with FakeAnthropic(default=Error(500, message="fake outage")) as api:
        started = time.monotonic()
        events, proc, _ = run_claude(api, tmp_path, "say hi")
        elapsed = time.monotonic() - started

    assert elapsed < 30
    result = result_of(events, proc)
    assert result["is_error"] is True, result
    assert result.get("api_error_status") == 500 or "500" in json.dumps(result) + proc.stderr
    assert len(api.requests) == 1, "CLAUDE_CODE_MAX_RETRIES=0 must stop the retries"


def test_side_requests_do_not_consume_the_script(tmp_path: Path) -> None:
    """Supervisor mode (stream-json + control protocol): the host asks for a session title, which
    makes the CLI send a tool-less side request; the two-reply script must still drive the turn."""
    cwd = tmp_path / "work"
    cwd.mkdir()

    def write_prompt(request: CapturedRequest) -> ToolUse:
        return ToolUse("Write", {"file_path": f"{request.cwd}/note.txt", "content": request.last_user_text})

    with FakeAnthropic(write_prompt, Text("written")) as api:
        proc = subprocess.Popen(
            [
                CLAUDE_BIN,
                "-p",
                "--input-format",
                "stream-json",
                "--output-format",
                "stream-json",
                "--verbose",
                "--permission-prompt-tool",
                "stdio",
            ],
            cwd=cwd,
            env=isolated_claude_env(api.url, tmp_path / "home"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None

        def send(message: dict[str, Any]) -> None:
            proc.stdin.write(json.dumps(message) + "\n")
            proc.stdin.flush()

        try:
            send(
                {
                    "type": "control_request",
                    "request_id": "title",
                    "request": {
                        "subtype": "generate_session_title",
                        "description": "fix the login bug",
                        "persist": False,
                    },
                }
            )
            events = []
            for line in proc.stdout:
                event = json.loads(line)
                events.append(event)
                if event.get("type") == "control_response" and event["response"]["request_id"] == "title":
                    send({"type": "user", "message": {"role": "user", "content": "remember me"}})
                elif event.get("type") == "control_request":
                    request = event["request"]
                    send(
                        {
                            "type": "control_response",
                            "response": {
                                "subtype": "success",
                                "request_id": event["request_id"],
                                "response": {"behavior": "allow", "updatedInput": request["input"]},
                            },
                        }
                    )
                elif event.get("type") == "result":
                    break
            proc.stdin.close()
            proc.wait(timeout=RUN_TIMEOUT_S)
        finally:
            proc.kill()

    result = events[-1]
    assert result["type"] == "result" and result["is_error"] is False, result
    assert result["result"] == "written"
    assert (cwd / "note.txt").read_text() == "remember me"
    [title_request] = api.side_requests
    assert "fix the login bug" in title_request.last_user_text
    assert [r.last_user_text for r in api.requests] == ["remember me", ""]
    assert api.requests[1].tool_results
