"""Run one task from Python with the scripted agent (offline): `python examples/python_api.py`.

Swap agent_command for ("claude",) to drive the real Claude Code CLI.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from agentproxy.options import RunOptions
from agentproxy.runtime import run_task

SCRIPT = {"turns": [[{"write": {"path": "hello.py", "content": "print('hello')\n"}}, {"result": "Created hello.py."}]]}


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="agentproxy-example-"))
    script = root / "agent-script.json"
    script.write_text(json.dumps(SCRIPT))
    options = RunOptions(
        working_dir=root / "project",
        agent_command=(sys.executable, "-m", "agentproxy.scripted_agent", "--script", str(script)),
        checks=(f"{sys.executable} hello.py",),
    )
    (root / "project").mkdir()
    outcome = run_task("Create hello.py", options, store_path=root / "sessions.db", subscribers=[print])
    print(f"\n{outcome.status}: commit {outcome.commit} in {options.working_dir}")
    return 0 if outcome.status == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
