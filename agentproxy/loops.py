"""Noticing an agent that repeats itself (after OpenHands' StuckDetector).

The detector sees each tool call and, later, its result. It reports a loop when the last steps are
the same call with the same result ``repeats`` times in a row, two steps alternating (A-B-A-B-A-B),
or the same error ``repeats`` times in a row whatever the calls were. Results are compared after
masking what changes between identical runs (durations, addresses, temporary names).
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass
from typing import Any

ALTERNATION_STEPS = 6  # three rounds of A-B: two could be an honest edit-and-test cycle
SHOWN_CHARS = 80
VOLATILE = re.compile(
    r"\b\d+(?:\.\d+)?\s*(?:ms|s|sec|secs|seconds|minutes?)\b"  # durations
    r"|\b0x[0-9a-fA-F]+\b|\b[0-9a-f]{12,}\b"  # addresses, hashes, ids
    r"|\d{4}-\d\d-\d\d[T ][\d:.]+Z?"  # timestamps
    r"|/tmp/[^\s'\"]+"  # temporary paths
)


@dataclass(frozen=True)
class Step:
    call: str  # the tool and its input, canonical
    result: str  # the result with volatile parts masked
    is_error: bool

    def describe(self) -> str:
        return _short(self.call)


class StuckDetector:
    """Fed from the worker's thread; holds only the recent steps of one agent session."""

    def __init__(self, repeats: int = 4) -> None:
        self.repeats = max(2, repeats)
        self.calls: dict[str, str] = {}  # tool_use_id -> its call, until its result arrives
        self.steps: deque[Step] = deque(maxlen=max(self.repeats, ALTERNATION_STEPS))

    def called(self, tool_use_id: str, tool: str, tool_input: dict[str, Any]) -> None:
        self.calls[tool_use_id] = f"{tool} {json.dumps(tool_input, sort_keys=True, ensure_ascii=False, default=str)}"

    def returned(self, tool_use_id: str, content: Any, is_error: bool) -> str | None:
        """Record a result; a description of the loop it completes, or None."""
        call = self.calls.pop(tool_use_id, None)
        if call is None:
            return None
        self.steps.append(Step(call=call, result=VOLATILE.sub("#", _text(content)).strip(), is_error=is_error))
        return self.loop()

    def forget(self) -> None:
        """Start afresh, e.g. after the agent was refocused."""
        self.calls.clear()
        self.steps.clear()

    def loop(self) -> str | None:
        steps = list(self.steps)
        last = steps[-self.repeats :]
        if len(last) == self.repeats and len(set(last)) == 1:
            return f"the same call ({last[0].describe()}) returned the same result {self.repeats} times in a row"
        if len(last) == self.repeats and all(s.is_error for s in last) and len({s.result for s in last}) == 1:
            return f"the same error ({_short(last[0].result)}) {self.repeats} times in a row"
        recent = steps[-ALTERNATION_STEPS:]
        if (
            len(recent) == ALTERNATION_STEPS
            and recent[0] != recent[1]
            and all(step == recent[i % 2] for i, step in enumerate(recent))
        ):
            return f"alternating between ({recent[0].describe()}) and ({recent[1].describe()}) with the same results"
        return None


def _text(content: Any) -> str:
    """A tool result's content: a string, or a list of blocks of which the text ones count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(block.get("text", "")) for block in content if isinstance(block, dict))
    return "" if content is None else str(content)


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SHOWN_CHARS else flat[: SHOWN_CHARS - 1] + "…"
