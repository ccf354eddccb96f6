"""The real Gemini CLI against FakeGemini: proves the fake speaks the wire protocol the CLI expects
(stream-json events, tool calls, resumed sessions, API errors, hangs, parallel sessions), so the
supervisor's Gemini bridge can be tested with a scripted model instead of a paid one."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import pytest

from agentproxy.testing.fake_gemini import (
    SIDE_REPLY_TEXT,
    Delay,
    FakeGemini,
    Hang,
    RawText,
    Reply,
    Status,
    write_file,
)
from agentproxy.testing.gemini_cli_env import find_gemini_bin, isolated_gemini_env

GEMINI_BIN = find_gemini_bin()
RUN_TIMEOUT_S = 60
pytestmark = [
    pytest.mark.gemini_cli,
    pytest.mark.timeout(120),
]

# A wrong route or an extra turn must show: what no script answers gets an error, not a plausible reply.
UNSCRIPTED = Status(500, "no scripted reply for this request")

Run = tuple[list[dict[str, Any]], int, Path]


def git_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=path, check=True, timeout=30)
    return path


def gemini_argv(prompt: str, *flags: str) -> list[str]:
    assert GEMINI_BIN is not None
    return [GEMINI_BIN, "-p", prompt, "--output-format", "stream-json", "--approval-mode", "yolo", *flags]


@contextlib.contextmanager
def gemini_process(argv: list[str], cwd: Path, env: dict[str, str], stdout: IO[str]) -> Iterator[subprocess.Popen[str]]:
    """The CLI in its own process group, killed with everything it started when the block ends."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def run_gemini(api: FakeGemini, tmp_path: Path, prompt: str, *flags: str) -> Run:
    """One headless `gemini -p` run in tmp_path / "work" (a git repo), HOME in tmp_path / "home";
    returns (stdout events, exit code, cwd). Reusing tmp_path reuses the session store."""
    cwd = tmp_path / "work"
    if not cwd.exists():
        git_repo(cwd)
    out = tmp_path / f"stdout-{time.monotonic_ns()}.jsonl"
    env = isolated_gemini_env(api.url, tmp_path / "home")
    with out.open("w") as stdout, gemini_process(gemini_argv(prompt, *flags), cwd, env, stdout) as proc:
        returncode = proc.wait(timeout=RUN_TIMEOUT_S)
    return read_events(out), returncode, cwd


def run_geminis_at_once(api: FakeGemini, tmp_path: Path, prompts: dict[str, str]) -> dict[str, Run]:
    """One `gemini -p` per key, all started together, each under tmp_path / key."""
    with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
        runs = {key: pool.submit(run_gemini, api, tmp_path / key, prompt) for key, prompt in prompts.items()}
        return {key: run.result() for key, run in runs.items()}


def assistant_text(events: list[dict[str, Any]]) -> str:
    return "".join(e["content"] for e in events if e["type"] == "message" and e["role"] == "assistant")


def test_a_scripted_write_file_runs_and_the_stream_shows_every_step(tmp_path: Path) -> None:
    with FakeGemini(write_file("hello.txt", "hello\n"), RawText("written"), default=UNSCRIPTED) as api:
        events, returncode, cwd = run_gemini(api, tmp_path, "write hello.txt")

    assert returncode == 0, events
    assert (cwd / "hello.txt").read_text() == "hello\n"
    assert [e["type"] for e in events] == ["init", "message", "tool_use", "tool_result", "message", "message", "result"]
    init, prompt, tool_use, tool_result, *_, result = events
    assert init["session_id"] and init["model"] == "auto"
    assert (prompt["role"], prompt["content"]) == ("user", "write hello.txt")
    assert tool_use["tool_name"] == "write_file"
    assert tool_use["parameters"] == {"file_path": str(cwd / "hello.txt"), "content": "hello\n"}
    assert (tool_result["tool_id"], tool_result["status"]) == (tool_use["tool_id"], "success")
    assert assistant_text(events) == "written"  # streamed in two chunks: two `delta` messages
    assert result["status"] == "success"
    assert result["stats"]["tool_calls"] == 1 and result["stats"]["input_tokens"] > 0

    first, follow_up = api.wait_for_requests(2, timeout=1)
    assert first.method == follow_up.method == "streamGenerateContent"
    assert first.cwd == follow_up.cwd == str(cwd)
    assert first.task_text == follow_up.task_text == "write hello.txt"
    assert {"write_file", "run_shell_command", "replace", "read_file"} <= set(first.tools)
    [response] = follow_up.function_responses
    assert response["name"] == "write_file" and response["id"] in tool_use["tool_id"]
    assert "Successfully created" in response["response"]["output"]
    # Model "auto": one routing call per prompt, answered outside the script.
    [classifier] = api.side_requests
    assert classifier.method == "generateContent" and "complexity_score" in json.dumps(classifier.schema)


def test_a_resumed_session_sends_its_history_under_the_same_session_id(tmp_path: Path) -> None:
    conversations = {"alpha": [RawText("alpha 1"), RawText("alpha 2")], "beta": [RawText("beta 1")]}
    with FakeGemini(default=UNSCRIPTED, conversations=conversations) as api:
        started, _, _ = run_gemini(api, tmp_path, "alpha: start")
        session_id = started[0]["session_id"]
        events, returncode, _ = run_gemini(api, tmp_path, "go on, beta is not your name", "--resume", session_id)

    assert returncode == 0, events
    assert events[0]["session_id"] == session_id
    assert assistant_text(events) == "alpha 2"
    assert [request.conversation for request in api.requests] == ["alpha", "alpha"]
    resumed = api.requests[1]
    assert resumed.task_text == "alpha: start"
    assert resumed.last_user_text == "go on, beta is not your name"
    assert [content["role"] for content in resumed.body["contents"]] == ["user", "model", "user"]
    assert resumed.body["contents"][1]["parts"] == [{"text": "alpha 1"}]
    assert list((tmp_path / "home").glob(f".gemini/tmp/*/chats/session-*-{session_id[:8]}.jsonl"))


@pytest.mark.parametrize("code", [500, 400])
def test_an_api_error_ends_the_run_at_once_with_an_error_result(tmp_path: Path, code: int) -> None:
    with FakeGemini(default=Status(code, "fake outage")) as api:
        started = time.monotonic()
        events, returncode, _ = run_gemini(api, tmp_path, "say hi")
        elapsed = time.monotonic() - started

    assert elapsed < 30
    assert [e["type"] for e in events] == ["init", "message", "result"]
    result = events[-1]
    assert result["status"] == "error" and "fake outage" in result["error"]["message"]
    assert returncode == code % 256  # the CLI exits with the HTTP status, truncated to a byte
    assert len(api.requests) == 1, "general.maxAttempts 1 must stop the retries"


def test_a_hung_reply_leaves_the_cli_silent_until_it_is_killed(tmp_path: Path) -> None:
    cwd = git_repo(tmp_path / "work")
    out = tmp_path / "stdout.jsonl"
    with FakeGemini(Hang(RUN_TIMEOUT_S), default=UNSCRIPTED) as api:
        env = isolated_gemini_env(api.url, tmp_path / "home")
        with out.open("w") as stdout, gemini_process(gemini_argv("say hi"), cwd, env, stdout) as proc:
            api.wait_for_requests(1, timeout=RUN_TIMEOUT_S)
            with pytest.raises(subprocess.TimeoutExpired):
                proc.wait(timeout=3)

    assert proc.returncode == -signal.SIGKILL
    assert [e["type"] for e in read_events(out)] == ["init", "message"]
    assert api.requests[0].answered_at is None


def test_two_clis_at_once_follow_their_own_conversations_in_parallel(tmp_path: Path) -> None:
    delay_s = 2.0
    conversations: dict[str, list[Reply]] = {
        key: [Delay(delay_s, write_file(f"{key}.txt", f"from {key}\n")), RawText(f"{key} done")]
        for key in ("alpha", "beta")
    }
    with FakeGemini(default=UNSCRIPTED, conversations=conversations) as api:
        runs = run_geminis_at_once(api, tmp_path, {"alpha": "alpha: write your file", "beta": "beta: write yours"})

    for key, (events, returncode, cwd) in runs.items():
        assert returncode == 0, events
        assert assistant_text(events) == f"{key} done"
        assert [path.name for path in cwd.glob("*.txt")] == [f"{key}.txt"]
        first, follow_up = api.turns(key)
        assert first.cwd == follow_up.cwd == str(cwd)
        assert first.answered_at is not None and first.answered_at - first.received_at >= delay_s
    (alpha, _), (beta, _) = api.turns("alpha"), api.turns("beta")
    assert alpha.overlaps(beta)


# Plain HTTP below, no CLI: the routing rules one by one, in milliseconds.

CLI_HEADERS = {"Content-Type": "application/json", "User-Agent": "GeminiCLI-tui/0.61.0/gemini-3.8-flash (linux; x64)"}
# The CLI opens the first user message with its environment, whose paths may name any key.
SESSION_CONTEXT = {"text": "<session_context>\n- **Workspace Directories:**\n  - /tmp/beta/work\n</session_context>"}


def post(api: FakeGemini, body: dict[str, Any], headers: dict[str, str] = CLI_HEADERS) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{api.url}/v1beta/models/gemini-fake:generateContent", data=json.dumps(body).encode(), headers=headers
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.load(response))


def main_loop_text(api: FakeGemini, task: str) -> str:
    """The text of the fake's answer to a CLI main-loop call (tools declared) whose task is ``task``."""
    body = {
        "contents": [{"role": "user", "parts": [SESSION_CONTEXT, {"text": task}]}],
        "tools": [{"functionDeclarations": [{"name": "write_file"}]}],
    }
    return str(post(api, body)["candidates"][0]["content"]["parts"][0]["text"])


def test_the_task_picks_the_conversation_and_the_session_context_does_not() -> None:
    with FakeGemini(RawText("positional"), conversations={"alpha": [RawText("alpha 1")]}) as api:
        assert main_loop_text(api, "alpha: build it") == "alpha 1"
        assert main_loop_text(api, "gamma: nobody's") == "positional"

    assert [request.conversation for request in api.requests] == ["alpha", ""]
    assert api.requests[0].cwd == "/tmp/beta/work"


def test_cli_side_calls_get_neutral_answers_and_sdk_calls_stay_scripted() -> None:
    schema = {"type": "OBJECT", "properties": {"reasoning": {"type": "STRING"}, "score": {"type": "INTEGER"}}}
    classifier = {
        "contents": [{"role": "user", "parts": [{"text": "write a file"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": schema},
    }
    summary = {"contents": [{"role": "user", "parts": [{"text": "Summarize the user's primary intent"}]}]}
    with FakeGemini(RawText("scripted")) as api:
        neutral = post(api, classifier)["candidates"][0]["content"]["parts"][0]["text"]
        summarized = post(api, summary)["candidates"][0]["content"]["parts"][0]["text"]
        sdk = post(api, summary, headers={"Content-Type": "application/json"})["candidates"][0]["content"]["parts"][0]

    assert json.loads(neutral) == {"reasoning": SIDE_REPLY_TEXT, "score": 1}
    assert summarized == SIDE_REPLY_TEXT
    assert sdk["text"] == "scripted"
    assert len(api.side_requests) == 2 and len(api.requests) == 1


def test_delays_do_not_hold_up_other_requests_and_closing_cuts_them_short() -> None:
    conversations = {"alpha": [Delay(0.5, RawText("alpha late"))], "beta": [Delay(0.5, RawText("beta late"))]}
    with FakeGemini(conversations=conversations) as api, ThreadPoolExecutor(max_workers=2) as pool:
        assert list(pool.map(lambda key: main_loop_text(api, key), ["alpha", "beta"])) == ["alpha late", "beta late"]
    [alpha], [beta] = api.turns("alpha"), api.turns("beta")
    assert alpha.overlaps(beta)
    assert alpha.answered_at is not None and alpha.answered_at - alpha.received_at >= 0.5

    with ThreadPoolExecutor(max_workers=1) as pool:
        with FakeGemini(default=Delay(60, RawText("too late"))) as api:
            pending = pool.submit(main_loop_text, api, "alpha")
            api.wait_for_requests(1)
        with pytest.raises(http.client.RemoteDisconnected):
            pending.result(timeout=5)
    assert api.requests[0].answered_at is None
