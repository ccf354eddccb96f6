"""`pa --demo`: an offline run on a throwaway git repo with a scripted agent (no model, no network).

It shows the whole loop: a plan, a question the agent asks and the supervisor answers, a check
that fails, a follow-up in the same agent session that fixes it, the commit, the session listed.
"""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
from pathlib import Path

from agentproxy.options import RunOptions
from agentproxy.sessions import format_sessions
from agentproxy.store import SessionStore
from agentproxy.view import TextView

TASK = "Create greet.py with greet(name) and a unit test for it"

BUGGY = 'def greet(name):\n    return "Hello " + name\n'
FIXED = 'def greet(name):\n    return f"Hello, {name}!"\n'
TEST = (
    "import unittest\n\nfrom greet import greet\n\n\n"
    "class GreetTest(unittest.TestCase):\n"
    "    def test_greets_by_name(self):\n"
    '        self.assertEqual(greet("Ada"), "Hello, Ada!")\n'
)

SCRIPT = {
    "turns": [
        [
            {"say": "I'll write greet.py and a test. One question first."},
            {
                "ask": {
                    "question": "Which greeting style should greet() use?",
                    "header": "Style",
                    "options": [
                        {"label": "Friendly (Recommended)", "description": "Hello, NAME!"},
                        {"label": "Formal", "description": "Good day, NAME."},
                    ],
                }
            },
            {"say": "Going with: {answer}."},
            {"write": {"path": "greet.py", "content": BUGGY}},
            {"write": {"path": "test_greet.py", "content": TEST}},
            {"result": "Created greet.py and test_greet.py."},
        ],
        [
            {"say": "The test expects a comma and an exclamation mark; fixing greet()."},
            {"write": {"path": "greet.py", "content": FIXED}},
            {"result": "Fixed greet(): it now returns 'Hello, NAME!'."},
        ],
    ]
}


def run_demo() -> int:
    from agentproxy.runtime import run_task

    root = Path(tempfile.mkdtemp(prefix="agentproxy-demo-"))
    project, script = root / "project", root / "agent-script.json"
    project.mkdir()
    script.write_text(json.dumps(SCRIPT))
    store_path = root / "sessions.db"
    print("agentproxy demo: the coding agent here is SCRIPTED (no model, no network); it speaks")
    print("Claude Code's stream-json and control protocol, so the supervisor drives it like the real CLI.\n")
    options = RunOptions(
        working_dir=project,
        agent_command=(sys.executable, "-m", "agentproxy.scripted_agent", "--script", str(script)),
        checks=(f"{shlex.quote(sys.executable)} -m unittest discover -q",),
        check_timeout_s=60,
        silence_timeout_s=30,
        agent_timeout_s=120,
    )
    outcome = run_task(TASK, options, subscribers=[TextView()], store_path=store_path, timeout_s=300)
    store = SessionStore(store_path)
    try:
        print("\n$ pa --list-sessions")
        print(format_sessions(store.list_sessions()))
    finally:
        store.close()
    print(f"\nThe demo project is in {project} (git log shows the commit).")
    return 0 if outcome.status == "done" else 1
