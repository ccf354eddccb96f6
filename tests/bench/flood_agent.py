"""A stand-in for the Claude Code CLI that floods its first turn: LINES assistant text lines, then the result.

Speaks the stream-json that agentproxy.scripted_agent speaks (init, assistant, result), standalone so that
its own start-up stays small. Writes to STAMPS, as JSON, when it wrote its first line and its result line,
for tests/bench/events.py.

    python tests/bench/flood_agent.py --lines N --stamps FILE [--think SECONDS] [claude's flags, ignored]

--think: the pause between the turn's init line and its first text line, as a model call before its output.
"""

from __future__ import annotations

import json
import sys
import time
import uuid


def emit(out, obj: dict) -> None:
    out.write(json.dumps(obj) + "\n")


def assistant_text(session_id: str, index: int) -> dict:
    text = f"Reading module {index}: it parses the input, checks the bounds and writes the report."
    return {
        "type": "assistant",
        "session_id": session_id,
        "message": {"id": f"msg_{index}", "model": "flood-agent", "content": [{"type": "text", "text": text}]},
    }


def result(session_id: str) -> dict:
    return {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "result": "Explained the project.",
        "session_id": session_id,
        "num_turns": 1,
        "total_cost_usd": 0.0,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }


def play_turn(session_id: str, lines: int, think_s: float, stamps: dict) -> None:
    out = sys.stdout
    emit(out, {"type": "system", "subtype": "init", "session_id": session_id, "model": "flood-agent", "cwd": "."})
    out.flush()
    time.sleep(think_s)
    stamps.setdefault("first_line_at", time.time())
    for index in range(lines):
        emit(out, assistant_text(session_id, index))
    out.flush()
    stamps.setdefault("result_at", time.time())
    emit(out, result(session_id))
    out.flush()


def main(argv: list[str]) -> int:
    lines = int(argv[argv.index("--lines") + 1])
    stamps_path = argv[argv.index("--stamps") + 1]
    think_s = float(argv[argv.index("--think") + 1]) if "--think" in argv else 0.0
    session_id = str(uuid.uuid4())
    stamps: dict = {}
    for raw in sys.stdin:
        if json.loads(raw).get("type") != "user":
            continue
        first = not stamps  # only the first turn floods
        play_turn(session_id, lines if first else 0, think_s if first else 0.0, stamps)
        with open(stamps_path, "w") as handle:
            json.dump(stamps, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
