"""A scripted stand-in for the Claude Code CLI: no model, the same wire protocol.

It reads stream-json user turns on stdin and, for each turn, plays the next list of steps of a
JSON script, speaking Claude Code's stream-json on stdout and asking the host for every tool use
through the control protocol (`can_use_tool`), as `claude -p --permission-prompt-tool stdio` does.
Used by `pa --demo` and by tests that exercise the actors without the npm CLI.

    python -m agentproxy.scripted_agent --script FILE [claude's flags, ignored]

Script: {"turns": [[step, ...], ...]}; steps:
    {"say": TEXT}                                  assistant text
    {"ask": {"question", "header", "options": [{"label", "description"}]}}   AskUserQuestion
    {"write": {"path": REL, "content": TEXT}}      Write (approved by the host first)
    {"bash": COMMAND}                              Bash (approved by the host first)
    {"sleep": SECONDS}
    {"exit": CODE}                                 die without a result
    {"result": TEXT} / {"error": {"status": N, "text": TEXT}}   end the turn
"{answer}" in a text is replaced by the last answer received, "{session}" in a text or a path by
the session's id (agents that run at once then write files of their own). The turn reached is kept
per session beside the script, so ``--resume=ID`` goes on where that session stopped.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

MODEL = "scripted-agent"


class ScriptedAgent:
    def __init__(self, script_path: Path, session_id: str | None) -> None:
        self.script_path = script_path
        self.turns: list[list[dict[str, Any]]] = json.loads(script_path.read_text())["turns"]
        self.session_id = session_id or str(uuid.uuid4())
        self.state_path = script_path.with_name(f"{script_path.name}.{self.session_id}.turn")
        self.turn = int(self.state_path.read_text()) if self.state_path.exists() else 0
        self.answer = ""
        self.cwd = Path.cwd()

    def emit(self, obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    def read(self) -> dict[str, Any] | None:
        line = sys.stdin.readline()
        return json.loads(line) if line else None

    def run(self) -> int:
        while (message := self.read()) is not None:
            if message.get("type") != "user":
                continue
            self.emit(
                {
                    "type": "system",
                    "subtype": "init",
                    "session_id": self.session_id,
                    "cwd": str(self.cwd),
                    "model": MODEL,
                    "tools": ["AskUserQuestion", "Bash", "Write"],
                }
            )
            steps = self.turns[self.turn] if self.turn < len(self.turns) else [{"result": "Nothing more to do."}]
            self.turn += 1
            self.state_path.write_text(str(self.turn))
            code = self.play(steps)
            if code is not None:
                return code
        return 0

    def play(self, steps: list[dict[str, Any]]) -> int | None:
        for step in steps:
            if "say" in step:
                self.assistant({"type": "text", "text": self.fill(step["say"])})
            elif "ask" in step:
                self.ask(step["ask"])
            elif "write" in step:
                path = self.cwd / self.fill(step["write"]["path"])
                self.use_tool("Write", {"file_path": str(path), "content": self.fill(step["write"]["content"])})
            elif "bash" in step:
                self.use_tool("Bash", {"command": step["bash"]})
            elif "sleep" in step:
                time.sleep(float(step["sleep"]))
            elif "exit" in step:
                return int(step["exit"])
            elif "error" in step:
                self.result(
                    self.fill(step["error"].get("text", "API Error")), is_error=True, status=step["error"].get("status")
                )
                return None
            elif "result" in step:
                self.result(self.fill(step["result"]))
                return None
        self.result("Done.")
        return None

    def fill(self, text: str) -> str:
        return text.replace("{answer}", self.answer).replace("{session}", self.session_id)

    def assistant(self, block: dict[str, Any]) -> None:
        self.emit(
            {
                "type": "assistant",
                "session_id": self.session_id,
                "message": {"id": f"msg_{uuid.uuid4().hex[:12]}", "model": MODEL, "content": [block]},
            }
        )

    def request_permission(self, tool: str, tool_input: dict[str, Any]) -> dict[str, Any]:
        """Ask the host over the control protocol; returns its permission response."""
        tool_use_id = f"toolu_{uuid.uuid4().hex[:12]}"
        self.assistant({"type": "tool_use", "id": tool_use_id, "name": tool, "input": tool_input})
        request_id = str(uuid.uuid4())
        self.emit(
            {
                "type": "control_request",
                "request_id": request_id,
                "request": {
                    "subtype": "can_use_tool",
                    "tool_name": tool,
                    "input": tool_input,
                    "tool_use_id": tool_use_id,
                },
            }
        )
        while (message := self.read()) is not None:
            response = message.get("response", {})
            if message.get("type") == "control_response" and response.get("request_id") == request_id:
                return response.get("response", {"behavior": "deny", "message": response.get("error", "error")})
        raise SystemExit(0)  # the host closed stdin: the session is over

    def ask(self, question: dict[str, Any]) -> None:
        decision = self.request_permission("AskUserQuestion", {"questions": [{"multiSelect": False, **question}]})
        answers = decision.get("updatedInput", {}).get("answers", {})
        self.answer = next(iter(answers.values()), "")
        self.tool_result(f"Answered: {self.answer}")

    def use_tool(self, tool: str, tool_input: dict[str, Any]) -> None:
        decision = self.request_permission(tool, tool_input)
        if decision.get("behavior") != "allow":
            self.tool_result(f"Permission denied: {decision.get('message', '')}", is_error=True)
            return
        tool_input = decision.get("updatedInput") or tool_input
        if tool == "Write":
            path = Path(tool_input["file_path"])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(tool_input["content"])
            self.tool_result(f"File created successfully at: {path}")
        else:
            done = subprocess.run(tool_input["command"], shell=True, capture_output=True, text=True, timeout=120)
            self.tool_result(done.stdout + done.stderr, is_error=done.returncode != 0)

    def tool_result(self, text: str, is_error: bool = False) -> None:
        self.emit(
            {
                "type": "user",
                "session_id": self.session_id,
                "message": {
                    "role": "user",
                    "content": [{"type": "tool_result", "content": text, "is_error": is_error}],
                },
            }
        )

    def result(self, text: str, is_error: bool = False, status: int | None = None) -> None:
        line: dict[str, Any] = {
            "type": "result",
            "subtype": "success",
            "is_error": is_error,
            "result": text,
            "session_id": self.session_id,
            "num_turns": 1,
            "total_cost_usd": 0.0,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        if status is not None:
            line["api_error_status"] = status
        self.emit(line)


def main(argv: list[str]) -> int:
    script = argv[argv.index("--script") + 1] if "--script" in argv else None
    if script is None:
        print("scripted_agent: --script FILE is required", file=sys.stderr)
        return 2
    resume = next((a.split("=", 1)[1] for a in argv if a.startswith("--resume=")), None)
    return ScriptedAgent(Path(script), resume).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
