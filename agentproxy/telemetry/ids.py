"""A task's trace id and each subtask's span id, derived from the session: every process that knows the
session (the supervisor, a remote worker, an agent given TRACEPARENT) names the same trace.

Stdlib only: the Dispatcher computes an agent's TRACEPARENT without importing opentelemetry.
"""

from __future__ import annotations

import hashlib
import os

ENABLE = "AGENTPROXY_ENABLE_TELEMETRY"


def enabled() -> bool:
    return os.environ.get(ENABLE, "").strip().lower() in ("1", "true", "yes", "on")


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\0".join(parts).encode()).digest()


def trace_id_of(session_id: str) -> int:
    return int.from_bytes(_digest("trace", session_id)[:16], "big") or 1


def span_id_of(session_id: str, *path: str) -> int:
    """The span of the run (no path) or of a subtask (its id)."""
    return int.from_bytes(_digest("span", session_id, *path)[:8], "big") or 1


def traceparent(session_id: str, subtask_id: str) -> str:
    """W3C trace context naming the subtask's span as the parent: an agent's own telemetry joins the tree."""
    return f"00-{trace_id_of(session_id):032x}-{span_id_of(session_id, subtask_id):016x}-01"


def agent_environment(session_id: str, subtask_id: str) -> dict[str, str]:
    """What an agent's process gets when telemetry is on (nothing when it is off)."""
    if not enabled() or not session_id:
        return {}
    attributes = f"pa.session_id={session_id},pa.subtask_id={subtask_id}"
    if given := os.environ.get("OTEL_RESOURCE_ATTRIBUTES"):
        attributes = f"{given},{attributes}"
    return {"TRACEPARENT": traceparent(session_id, subtask_id), "OTEL_RESOURCE_ATTRIBUTES": attributes}
