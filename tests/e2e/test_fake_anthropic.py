"""The real Claude Code CLI against FakeAnthropic: proves the fake speaks the wire protocol the CLI
expects, so the supervisor's integration tests can script the model instead of paying for it."""

from __future__ import annotations

import http.client
import json
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from agentproxy.testing.claude_env import find_claude_bin, isolated_claude_env
from agentproxy.testing.fake_anthropic import (
    CapturedRequest,
    Delay,
    Error,
    FakeAnthropic,
    Reply,
    Text,
    ToolUse,
    write_file,
)

CLAUDE_BIN = find_claude_bin() or "claude"
RUN_TIMEOUT_S = 60


def run_claude(
    api: FakeAnthropic, tmp_path: Path, prompt: str, *flags: str
) -> tuple[list[dict[str, Any]], subprocess.CompletedProcess[str], Path]:
    """One headless `claude -p` run in a fresh cwd; returns (stdout events, process, cwd)."""
    cwd = tmp_path / "work"
    cwd.mkdir(parents=True, exist_ok=True)
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


Run = tuple[list[dict[str, Any]], subprocess.CompletedProcess[str], Path]


def run_claudes_at_once(api: FakeAnthropic, tmp_path: Path, prompts: dict[str, str], *flags: str) -> dict[str, Run]:
    """One `claude -p` per key, all started together, each in its own directory under tmp_path / key."""
    with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
        runs = {key: pool.submit(run_claude, api, tmp_path / key, prompt, *flags) for key, prompt in prompts.items()}
        return {key: run.result() for key, run in runs.items()}


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


# A wrong route must show: whatever no conversation claims gets an error, not a plausible "done".
UNROUTED = Error(500, message="no conversation matched")


def test_two_clis_at_once_each_follow_their_own_conversation(tmp_path: Path) -> None:
    conversations: dict[str, list[Reply]] = {
        key: [write_file(f"{key}.txt", f"from {key}\n"), Text(f"{key} done")] for key in ("alpha", "beta")
    }
    with FakeAnthropic(default=UNROUTED, conversations=conversations) as api:
        runs = run_claudes_at_once(
            api, tmp_path, {"alpha": "alpha: write your file", "beta": "beta: write yours"}, "--allowedTools", "Write"
        )

    for key, (events, proc, cwd) in runs.items():
        result = result_of(events, proc)
        assert result["is_error"] is False, result
        assert result["result"] == f"{key} done"
        assert [path.name for path in cwd.glob("*.txt")] == [f"{key}.txt"]
        assert (cwd / f"{key}.txt").read_text() == f"from {key}\n"
        first, follow_up = api.turns(key)
        assert first.cwd == follow_up.cwd == str(cwd)
        assert follow_up.tool_results and not follow_up.tool_results[0].get("is_error")
    assert len(api.requests) == 4


def test_delayed_replies_to_two_clis_are_in_flight_together(tmp_path: Path) -> None:
    delay_s = 2.0
    conversations = {key: [Delay(delay_s, Text(f"{key} done"))] for key in ("alpha", "beta")}
    with FakeAnthropic(default=UNROUTED, conversations=conversations) as api:
        runs = run_claudes_at_once(api, tmp_path, {"alpha": "alpha: take your time", "beta": "beta: you too"})

    for key, (events, proc, _) in runs.items():
        assert result_of(events, proc)["result"] == f"{key} done"
    [alpha], [beta] = api.turns("alpha"), api.turns("beta")
    assert alpha.overlaps(beta)
    for turn in (alpha, beta):
        assert turn.answered_at is not None and turn.answered_at - turn.received_at >= delay_s


def test_a_resumed_session_continues_its_conversation(tmp_path: Path) -> None:
    conversations = {"alpha": [Text("alpha 1"), Text("alpha 2")], "beta": [Text("beta 1")]}
    with FakeAnthropic(default=UNROUTED, conversations=conversations) as api:
        events, proc, _ = run_claude(api, tmp_path, "alpha: start")
        session_id = result_of(events, proc)["session_id"]
        events, proc, _ = run_claude(api, tmp_path, "go on, beta is not your name", "--resume", session_id)

    assert result_of(events, proc)["result"] == "alpha 2"
    assert [request.conversation for request in api.requests] == ["alpha", "alpha"]
    assert api.requests[1].first_user_text == "alpha: start"


# Plain HTTP below, no CLI: the routing rules one by one, in milliseconds.

# The CLI opens the first user message with reminders; one naming a key must not route the request.
REMINDER = {"type": "text", "text": "<system-reminder>\nalpha and beta are keys\n</system-reminder>\n"}


def reply_text(api: FakeAnthropic, first_user_text: str, *later_user_texts: str) -> str:
    """The text of the fake's answer to a main-loop call whose history opens with first_user_text."""
    messages = [{"role": "user", "content": [REMINDER, {"type": "text", "text": first_user_text}]}]
    for text in later_user_texts:
        messages += [{"role": "assistant", "content": "ok"}, {"role": "user", "content": text}]
    body = {"model": "claude-fake", "max_tokens": 64, "tools": [{"name": "Write"}], "messages": messages}
    request = urllib.request.Request(
        f"{api.url}/v1/messages", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        [block] = json.load(response)["content"]
    return block["text"]


def test_the_first_user_text_picks_the_conversation_and_the_rest_take_the_positional_script() -> None:
    conversations = {"alpha": [Text("alpha 1"), Text("alpha 2")], "beta": [Text("beta 1")]}
    with FakeAnthropic(Text("positional 1"), conversations=conversations) as api:
        assert reply_text(api, "alpha: build it") == "alpha 1"
        assert reply_text(api, "beta: test it") == "beta 1"
        assert reply_text(api, "alpha: build it", "now tell beta") == "alpha 2"
        assert reply_text(api, "gamma: nobody's") == "positional 1"
        assert reply_text(api, "beta: test it", "more") == "done"

    assert [request.conversation for request in api.requests] == ["alpha", "beta", "alpha", "", "beta"]


def test_add_extends_a_conversation_or_starts_one() -> None:
    with FakeAnthropic(Text("positional 1"), conversations={"alpha": [Text("alpha 1")]}) as api:
        api.add(Text("alpha 2"), conversation="alpha")
        api.add(Text("gamma 1"), conversation="gamma")
        assert reply_text(api, "alpha") == "alpha 1"
        assert reply_text(api, "alpha") == "alpha 2"
        assert reply_text(api, "gamma") == "gamma 1"
        assert reply_text(api, "delta") == "positional 1"


def test_delays_do_not_hold_up_other_requests() -> None:
    conversations = {key: [Delay(0.5, Text(f"{key} late"))] for key in ("alpha", "beta")}
    with FakeAnthropic(conversations=conversations) as api, ThreadPoolExecutor(max_workers=2) as pool:
        assert list(pool.map(lambda key: reply_text(api, key), ["alpha", "beta"])) == ["alpha late", "beta late"]

    [alpha], [beta] = api.turns("alpha"), api.turns("beta")
    assert alpha.overlaps(beta)
    assert alpha.answered_at is not None and alpha.answered_at - alpha.received_at >= 0.5


def test_closing_the_fake_cuts_a_delay_short() -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        with FakeAnthropic(default=Delay(60, Text("too late"))) as api:
            pending = pool.submit(reply_text, api, "alpha")
            api.wait_for_requests(1)
        with pytest.raises(http.client.RemoteDisconnected):
            pending.result(timeout=5)
    assert api.requests[0].answered_at is None
