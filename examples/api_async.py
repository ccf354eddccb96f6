"""Two tasks at once, in two directories, with the async API: each event is printed as it arrives.

    python examples/api_async.py DIR1 "Add a CLI flag --verbose" DIR2 "Write tests for the parser"

The coding agent is Claude Code: `claude` on PATH, or the command in CLAUDE_BIN.
"""

from __future__ import annotations

import asyncio
import sys

from agentproxy.actors.dispatcher import RunOutcome

import agentproxy
from agentproxy.api import event_kind


async def follow(label: str, directory: str, task: str) -> str:
    """Print the run's events as [label] KIND lines; its status once it has ended."""
    status = "failed"
    async for item in agentproxy.arun_task(task, directory):
        if isinstance(item, RunOutcome):
            print(f"[{label}] outcome: {item.status} (session {item.session_id}) {item.reason}", flush=True)
            status = item.status
        else:
            print(f"[{label}] {event_kind(item)}", flush=True)
    return status


async def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print("usage: python examples/api_async.py DIR1 TASK1 DIR2 TASK2", file=sys.stderr)
        return 2
    statuses = await asyncio.gather(follow("1", argv[0], argv[1]), follow("2", argv[2], argv[3]))
    return 0 if all(status == "done" for status in statuses) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
