"""The approval policy end to end: the REAL Claude Code CLI asks, `pa` answers, the side effect never happens.

Each test scripts the model (the fake Anthropic API) to run commands whose effects are harmless but
visible in tmp_path: a denied command leaves its victim standing and its marker unwritten.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentproxy.testing.claude_env import find_claude_bin, isolated_claude_env, pa_argv
from agentproxy.testing.fake_anthropic import FakeAnthropic, Text, ToolUse

CLAUDE_BIN = find_claude_bin() or "claude"

# A minimal MCP server over stdio (JSON-RPC, one message a line) with one tool that runs a command.
MCP_SERVER = r"""
import json, subprocess, sys
TOOL = {"name": "run", "description": "Run a shell command",
        "inputSchema": {"type": "object", "properties": {"cmd": {"type": "string"}, "note": {"type": "string"}}}}
for line in sys.stdin:
    message = json.loads(line)
    method, ident = message.get("method"), message.get("id")
    if ident is None:
        continue
    if method == "initialize":
        result = {"protocolVersion": message["params"]["protocolVersion"], "capabilities": {"tools": {}},
                  "serverInfo": {"name": "shell", "version": "1"}}
    elif method == "tools/list":
        result = {"tools": [TOOL]}
    elif method == "tools/call":
        arguments = message["params"].get("arguments", {})
        if "cmd" in arguments:
            subprocess.run(arguments["cmd"], shell=True, timeout=30)
        else:
            open(arguments["note"], "w").write("noted\n")
        result = {"content": [{"type": "text", "text": "done"}]}
    else:
        result = {}
    sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": ident, "result": result}) + "\n")
    sys.stdout.flush()
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    directory = tmp_path / "project"
    directory.mkdir()
    return directory


def bash(command: str) -> ToolUse:
    return ToolUse("Bash", {"command": command, "description": "run a command"})


def run_pa(
    api: FakeAnthropic, project: Path, tmp_path: Path, home: Path, *extra: str, claude_bin: str = CLAUDE_BIN
) -> list[dict[str, Any]]:
    env = {**isolated_claude_env(api.url, tmp_path / "claude-home"), "AGENTPROXY_HOME": str(home)}
    done = subprocess.run(
        pa_argv(project, "Do the task", *extra, claude_bin=claude_bin),
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        start_new_session=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


def decisions(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == "tool_decided"]


def test_a_blocklisted_command_is_denied_and_never_runs(project: Path, tmp_path: Path, agentproxy_home: Path) -> None:
    victim = tmp_path / "claude-home" / "victim"
    victim.mkdir(parents=True)
    (victim / "keep.txt").write_text("keep\n")
    marker = project / "marker.txt"
    command = f'touch {marker} && rm -rf "$HOME"/victim'
    with FakeAnthropic(bash(command), Text("Done.")) as api:
        events = run_pa(api, project, tmp_path, agentproxy_home)

    (decided,) = decisions(events)
    assert decided["tool"] == "Bash" and decided["allowed"] is False
    assert f"rm -rf $HOME/victim (= {victim}) outside the worktree" in decided["reason"]
    assert (victim / "keep.txt").read_text() == "keep\n"
    assert not marker.exists()  # the whole line was refused, not just its dangerous half
    main = [r for r in api.requests if not r.side]
    assert main[1].tool_results[0].get("is_error")  # the model was told it was refused


def test_a_delete_outside_the_worktree_is_denied(project: Path, tmp_path: Path, agentproxy_home: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep\n")
    with FakeAnthropic(bash("rm -rf ../victim"), Text("Done.")) as api:
        events = run_pa(api, project, tmp_path, agentproxy_home)

    (decided,) = decisions(events)
    assert decided["allowed"] is False and "outside the worktree" in decided["reason"]
    assert (victim / "keep.txt").read_text() == "keep\n"


def test_the_users_deny_pattern_is_honoured(project: Path, tmp_path: Path, agentproxy_home: Path) -> None:
    with FakeAnthropic(bash("touch ok.txt"), bash("touch forbidden-marker.txt"), Text("Done.")) as api:
        events = run_pa(api, project, tmp_path, agentproxy_home, "--deny", r"forbidden-\w+")

    allowed, denied = decisions(events)
    assert allowed["allowed"] is True and (project / "ok.txt").exists()  # commands do run here
    assert denied["allowed"] is False and "--deny pattern forbidden-\\w+" in denied["reason"]
    assert not (project / "forbidden-marker.txt").exists()


def test_an_unknown_mcp_tool_is_judged(project: Path, tmp_path: Path, agentproxy_home: Path) -> None:
    server = tmp_path / "mcp_server.py"
    server.write_text(MCP_SERVER)
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"shell": {"command": sys.executable, "args": [str(server)]}}}))
    outside = tmp_path / "outside-marker.txt"
    ran = project / "ran-marker.txt"
    noted = project / "noted.txt"
    with FakeAnthropic(
        ToolUse("mcp__shell__run", {"cmd": f"touch {outside}"}),  # the policy: a write outside the worktree
        ToolUse("mcp__shell__run", {"cmd": f"touch {ran}"}),  # the offline brain: carries a command
        ToolUse("mcp__shell__run", {"note": "noted.txt"}),  # the offline brain: nothing risky
        Text("Done."),
    ) as api:
        events = run_pa(api, project, tmp_path, agentproxy_home, claude_bin=f"{CLAUDE_BIN} --mcp-config {config}")

    outside_call, command_call, note_call = decisions(events)
    assert outside_call["allowed"] is False and "outside the worktree" in outside_call["reason"]
    assert command_call["allowed"] is False and "offline brain" in command_call["reason"]
    assert note_call["allowed"] is True
    assert not outside.exists() and not ran.exists()
    assert noted.read_text() == "noted\n"  # the tool really runs when allowed
