"""The recorded sessions, or one of them with its events, through agentproxy's Python API.

python examples/api_sessions.py          # the latest sessions, newest first
python examples/api_sessions.py ID       # one session (its id or a unique prefix) and its events
"""

from __future__ import annotations

import sys
import time

import agentproxy
from agentproxy.api import event_kind
from agentproxy.errors import UsageError


def show_sessions() -> None:
    for row in agentproxy.list_sessions(limit=20):
        cost = row.cost_usd + row.brain_cost_usd
        print(f"{row.id}  {row.status:<11}  ${cost:.4f}  {row.working_dir}  {row.task}")


def show_session(id_or_prefix: str) -> None:
    session = agentproxy.get_session(id_or_prefix)
    row = session.row
    print(f"session {row.id}: {row.status} {row.reason}".rstrip())
    print(f"task: {row.task}")
    print(f"directory: {row.working_dir}")
    for event in session.events:
        print(f"  {time.strftime('%H:%M:%S', time.localtime(event.at))}  {event_kind(event)}")


def main(argv: list[str]) -> int:
    try:
        if argv:
            show_session(argv[0])
        else:
            show_sessions()
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
