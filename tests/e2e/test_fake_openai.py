"""The real Codex CLI (`codex exec --json`) against FakeOpenAI: proves the fake speaks the Responses
wire protocol codex expects, and pins down what codex prints for each case, for the codex bridge."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import pytest

from agentproxy.testing.codex_env import codex_exec_argv, isolated_codex_env
from agentproxy.testing.fake_openai import (
    SHELL_TOOL,
    CapturedRequest,
    Delay,
    FakeOpenAI,
    Hang,
    Reply,
    Shell,
    Status,
    Text,
    add_file_patch,
    write_file,
)

pytestmark = [
    pytest.mark.codex_cli,
    pytest.mark.timeout(90),
]

RUN_TIMEOUT_S = 60
Events = list[dict[str, Any]]
Run = tuple[Events, "subprocess.CompletedProcess[str]", Path]


def workdir(tmp_path: Path) -> Path:
    """A fresh git repository: where codex runs."""
    cwd = tmp_path / "work"
    if not cwd.exists():
        cwd.mkdir(parents=True)
        subprocess.run(["git", "init", "-q"], cwd=cwd, check=True, timeout=10)
    return cwd


def run_codex(api: FakeOpenAI, tmp_path: Path, prompt: str, *flags: str, resume: str | None = None) -> Run:
    """One `codex exec --json` (or `exec resume`) in tmp_path/work with CODEX_HOME under tmp_path/home."""
    cwd = workdir(tmp_path)
    proc = start_codex(api, tmp_path, codex_exec_argv(prompt, *flags, resume=resume), stdout=subprocess.PIPE)
    try:
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        kill_group(proc)
    return parse_events(stdout), subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), cwd


def start_codex(api: FakeOpenAI, tmp_path: Path, argv: list[str], stdout: IO[str] | int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        argv,
        cwd=workdir(tmp_path),
        env=isolated_codex_env(api.base_url, tmp_path / "home"),
        stdin=subprocess.DEVNULL,  # with a pipe, codex would wait for more of the prompt
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, for kill_group
    )


def kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL codex's process group: the npm wrapper (node) runs the native codex as a child,
    which outlives a SIGKILL of node alone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)


def parse_events(stdout: str) -> Events:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def run_codexes_at_once(api: FakeOpenAI, tmp_path: Path, prompts: dict[str, str]) -> dict[str, Run]:
    """One `codex exec` per key, all started together, each in its own tmp_path / key."""
    with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
        runs = {key: pool.submit(run_codex, api, tmp_path / key, prompt) for key, prompt in prompts.items()}
        return {key: run.result() for key, run in runs.items()}


def items(events: Events, item_type: str) -> list[dict[str, Any]]:
    """The completed items of one type, in order."""
    return [e["item"] for e in events if e["type"] == "item.completed" and e["item"]["type"] == item_type]


def thread_id_of(events: Events) -> str:
    [started] = [event for event in events if event["type"] == "thread.started"]
    return str(started["thread_id"])


def reported_usage(requests: list[CapturedRequest]) -> dict[str, int]:
    """What turn.completed must say, summing what the fake reported for ``requests``."""
    usages = [request.usage or {} for request in requests]
    return {
        "input_tokens": sum(usage["input_tokens"] for usage in usages),
        "cached_input_tokens": 0,
        "cache_write_input_tokens": 0,
        "output_tokens": sum(usage["output_tokens"] for usage in usages),
        "reasoning_output_tokens": 0,
    }


def test_a_shell_command_writes_the_file_and_a_text_ends_the_turn(tmp_path: Path) -> None:
    with FakeOpenAI(write_file("hello.txt", "hello\n"), Text("written")) as api:
        events, proc, cwd = run_codex(api, tmp_path, "write hello.txt")

    assert proc.returncode == 0, proc.stderr
    assert (cwd / "hello.txt").read_text() == "hello\n"
    assert [event["type"] for event in events] == [
        "thread.started",
        "turn.started",
        "item.started",
        "item.completed",
        "item.completed",
        "turn.completed",
    ]
    [command] = items(events, "command_execution")
    assert command["command"] == "/bin/bash -lc \"printf %s 'hello\n' > hello.txt\""
    assert (command["exit_code"], command["status"], command["aggregated_output"]) == (0, "completed", "")
    assert events[2]["item"] == {**command, "exit_code": None, "status": "in_progress"}
    assert [message["text"] for message in items(events, "agent_message")] == ["written"]
    first, follow_up = api.requests
    assert events[-1]["usage"] == reported_usage([first, follow_up])

    assert first.cwd == follow_up.cwd == str(cwd)
    assert first.thread_id == follow_up.thread_id == thread_id_of(events)
    assert first.first_user_text == first.last_user_text == "write hello.txt"
    assert first.body["stream"] is True
    assert SHELL_TOOL in first.tools and "apply_patch" in first.tools
    [output] = follow_up.tool_outputs
    [call] = [item for item in follow_up.body["input"] if item.get("type") == "function_call"]
    assert (output["type"], output["call_id"]) == ("function_call_output", call["call_id"])
    assert "Process exited with code 0" in output["output"]
    assert api.side_requests == []


def test_a_failing_command_is_reported_back_and_shown_as_failed(tmp_path: Path) -> None:
    with FakeOpenAI(Shell(lambda request: f"echo {request.last_user_text}; exit 3"), Text("it failed")) as api:
        events, proc, _ = run_codex(api, tmp_path, "oops")

    assert proc.returncode == 0, proc.stderr
    [command] = items(events, "command_execution")
    assert (command["exit_code"], command["status"], command["aggregated_output"]) == (3, "failed", "oops\n")
    [output] = api.requests[1].tool_outputs
    assert "Process exited with code 3" in output["output"]


def test_an_apply_patch_shows_as_a_file_change(tmp_path: Path) -> None:
    with FakeOpenAI(add_file_patch("notes/a.txt", "one\ntwo\n"), Text("patched")) as api:
        events, proc, cwd = run_codex(api, tmp_path, "add notes/a.txt")

    assert proc.returncode == 0, proc.stderr
    assert (cwd / "notes" / "a.txt").read_text() == "one\ntwo\n"
    [change] = items(events, "file_change")
    assert change == {
        "id": change["id"],
        "type": "file_change",
        "changes": [{"path": str(cwd / "notes" / "a.txt"), "kind": "add"}],
        "status": "completed",
    }
    [output] = api.requests[1].tool_outputs
    assert output["type"] == "custom_tool_call_output"
    assert "A notes/a.txt" in output["output"]


def test_a_resumed_thread_continues_its_conversation(tmp_path: Path) -> None:
    conversations = {"alpha": [Text("alpha 1"), Text("alpha 2")], "beta": [Text("beta 1")]}
    with FakeOpenAI(default=Status(500, "no conversation matched"), conversations=conversations) as api:
        first_events, _, _ = run_codex(api, tmp_path, "alpha: start")
        thread_id = thread_id_of(first_events)
        events, proc, _ = run_codex(api, tmp_path, "go on, beta is not your name", resume=thread_id)

    assert proc.returncode == 0, proc.stderr
    assert thread_id_of(events) == thread_id
    assert [message["text"] for message in items(events, "agent_message")] == ["alpha 2"]
    first, resumed = api.requests
    assert [first.conversation, resumed.conversation] == ["alpha", "alpha"]
    assert resumed.thread_id == thread_id
    assert (resumed.first_user_text, resumed.last_user_text) == ("alpha: start", "go on, beta is not your name")
    said = [item["content"][0]["text"] for item in resumed.body["input"] if item.get("role") == "assistant"]
    assert said == ["alpha 1"]
    # turn.completed counts the whole thread: the resumed run adds its request to the first run's.
    assert events[-1]["usage"] == reported_usage([first, resumed])
    [rollout] = (tmp_path / "home" / ".codex" / "sessions").glob(f"*/*/*/rollout-*-{thread_id}.jsonl")
    assert "go on, beta is not your name" in rollout.read_text()


# Codex keeps the status' text for some codes and swaps in its own for others; retries are off (config).
STATUS_MESSAGES = {
    500: "We\u2019re currently experiencing high demand, which may cause temporary errors.",
    400: json.dumps(
        {"error": {"message": "fake refusal", "type": "invalid_request_error", "param": None, "code": None}}
    ),
}


@pytest.mark.parametrize("code", sorted(STATUS_MESSAGES))
def test_an_http_error_fails_the_turn_at_once(tmp_path: Path, code: int) -> None:
    message = "fake refusal" if code == 400 else "fake outage"
    with FakeOpenAI(default=Status(code, message)) as api:
        events, proc, _ = run_codex(api, tmp_path, "say hi")

    assert proc.returncode == 1
    expected = STATUS_MESSAGES[code]
    assert events[1:] == [
        {"type": "turn.started"},
        {"type": "error", "message": expected},
        {"type": "turn.failed", "error": {"message": expected}},
    ]
    assert len(api.requests) == 1, "request_max_retries=0 must stop the retries"


def test_a_hanging_api_keeps_codex_silent_until_killed(tmp_path: Path) -> None:
    stdout = tmp_path / "stdout.jsonl"
    with FakeOpenAI(default=Hang()) as api, stdout.open("w") as out:
        proc = start_codex(api, tmp_path, codex_exec_argv("wait for it"), stdout=out)
        try:
            api.wait_for_requests(1, timeout=RUN_TIMEOUT_S)
            time.sleep(3)
            assert proc.poll() is None, "codex gave up on a silent API"
        finally:
            kill_group(proc)

    assert [event["type"] for event in parse_events(stdout.read_text())] == ["thread.started", "turn.started"]
    [request] = api.requests
    assert request.answered_at is None


# A wrong route must show: whatever no conversation claims gets an error, not a plausible "done".
UNROUTED = Status(500, "no conversation matched")


def test_two_codexes_at_once_each_follow_their_own_conversation(tmp_path: Path) -> None:
    delay_s = 2.0
    conversations: dict[str, list[Reply]] = {
        key: [Delay(delay_s, write_file(f"{key}.txt", f"from {key}\n")), Text(f"{key} done")]
        for key in ("alpha", "beta")
    }
    with FakeOpenAI(default=UNROUTED, conversations=conversations) as api:
        runs = run_codexes_at_once(api, tmp_path, {"alpha": "alpha: write your file", "beta": "beta: write yours"})

    for key, (events, proc, cwd) in runs.items():
        assert proc.returncode == 0, proc.stderr
        assert [message["text"] for message in items(events, "agent_message")] == [f"{key} done"]
        assert [path.name for path in cwd.glob("*.txt")] == [f"{key}.txt"]
        first, follow_up = api.turns(key)
        assert first.cwd == follow_up.cwd == str(cwd)
        assert first.answered_at is not None and first.answered_at - first.received_at >= delay_s
    assert api.turns("alpha")[0].overlaps(api.turns("beta")[0])
    assert len(api.requests) == 4


# Plain HTTP below, no CLI: the routing rules, with the context codex injects around the prompt.

ENVIRONMENT = "<environment_context>\n  <cwd>/repo</cwd>\n  <shell>bash</shell>\n</environment_context>"
AGENTS_MD = "# AGENTS.md instructions for /repo\n\n<INSTRUCTIONS>\nalpha and beta are keys\n</INSTRUCTIONS>"


def user_message(*texts: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text} for text in texts]}


def reply_events(api: FakeOpenAI, *prompts: str, path: str = "/v1/responses") -> Events:
    """The SSE events of the fake's answer to a codex-like request whose user turns are ``prompts``."""
    messages = [user_message(AGENTS_MD, ENVIRONMENT), *(user_message(prompt) for prompt in prompts)]
    body = {"model": "gpt-fake", "stream": True, "input": messages}
    request = urllib.request.Request(
        f"{api.url}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        lines = response.read().decode().splitlines()
    return [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]


def reply_text(api: FakeOpenAI, *prompts: str) -> str:
    [done] = [event for event in reply_events(api, *prompts) if event["type"] == "response.output_item.done"]
    return str(done["item"]["content"][0]["text"])


def test_the_first_user_text_picks_the_conversation_past_the_injected_context() -> None:
    conversations = {"alpha": [Text("alpha 1"), Text("alpha 2")], "beta": [Text("beta 1")]}
    with FakeOpenAI(Text("positional 1"), conversations=conversations) as api:
        assert reply_text(api, "alpha: build it") == "alpha 1"
        assert reply_text(api, "beta: test it") == "beta 1"
        assert reply_text(api, "alpha: build it", "now tell beta") == "alpha 2"
        assert reply_text(api, "gamma: nobody's") == "positional 1"
        assert reply_text(api, "beta: test it", "more") == "done"

    assert [request.conversation for request in api.requests] == ["alpha", "beta", "alpha", "", "beta"]
    assert api.requests[2].cwd == "/repo"
    assert (api.requests[2].first_user_text, api.requests[2].last_user_text) == ("alpha: build it", "now tell beta")


def test_the_stream_carries_deltas_then_the_whole_item_then_usage() -> None:
    with FakeOpenAI(Text("hello there")) as api:
        events = reply_events(api, "hi")

    types = [event["type"] for event in events]
    assert types[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert types[-2:] == ["response.output_item.done", "response.completed"]
    deltas = [event["delta"] for event in events if event["type"] == "response.output_text.delta"]
    assert len(deltas) == 2 and "".join(deltas) == "hello there"
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert events[-1]["response"]["usage"] == api.requests[0].usage


def test_side_requests_do_not_consume_the_script() -> None:
    with FakeOpenAI(Text("scripted")) as api:
        with urllib.request.urlopen(f"{api.url}/v1/models", timeout=10) as response:
            assert json.load(response) == {}
        assert reply_events(api, "hi", path="/v1/responses/compact") == []
        assert reply_text(api, "hi") == "scripted"

    assert [request.path for request in api.side_requests] == ["/v1/models", "/v1/responses/compact"]
    assert [request.path for request in api.requests] == ["/v1/responses"]
