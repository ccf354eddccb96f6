"""Run one task with agentproxy's Python API, printing each event's kind as it happens, then the outcome.

    python examples/api_run_task.py DIR "Add a README that says what this project does"

The coding agent is Claude Code: `claude` on PATH, or the command in CLAUDE_BIN. The supervisor's brain
is Gemini when GEMINI_API_KEY is set, else the offline one.
"""

from __future__ import annotations

import sys

from agentproxy.actors.dispatcher import RunOutcome

import agentproxy
from agentproxy.api import event_kind
from agentproxy.errors import UsageError


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python examples/api_run_task.py DIR TASK", file=sys.stderr)
        return 2
    directory, task = argv
    try:
        for item in agentproxy.run_task(task, directory, parallel=2):  # pa's options, by their Python names
            if isinstance(item, RunOutcome):  # the last item
                print(f"outcome: {item.status} (session {item.session_id}, commit {item.commit}) {item.reason}")
                status = item.status
            else:
                print(event_kind(item), flush=True)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if status == "done" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
