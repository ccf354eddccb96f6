"""Telling a turn that ended on a rate limit, an overload or a usage limit, and how long to wait.

Such a turn is nobody's fault: the agent pauses and then continues the same session. When the limit
says when it lifts (an epoch after "|", "resets 3pm (Europe/Paris)", a rejected rate_limit_event's
resetsAt), the pause lasts until then; otherwise it backs off exponentially with jitter.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

LIMIT_STATUSES = frozenset({429, 529})
LIMIT_ERROR_TYPES = frozenset({"rate_limit_error", "overloaded_error"})
BACKOFF_CAP_S = 900.0
JITTER = 0.2
_LIMIT_TEXT = re.compile(
    r"rate[ _-]?limit|overloaded|usage limit|limit reached|hit your limit|too many requests|quota exceeded"
    r"|resource[ _]exhausted",
    re.IGNORECASE,
)
_EPOCH = re.compile(r"\|\s*(\d{10})\b")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RESETS_AT = re.compile(
    r"resets?\s+(?:at\s+)?(?:(mon|tue|wed|thu|fri|sat|sun)\w*\s+)?(\d{1,2})(?::(\d{2}))?\s*(am|pm)?"
    r"(?:\s*\(([\w/+-]+)\))?",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Limit:
    reason: str
    resets_at: float | None = None  # epoch seconds, when the limit says


def limit_of(status: int | None, error_type: str, text: str, rejected_until: float | None, now: float) -> Limit | None:
    """The limit that ended a failed turn, or None when the failure is something else."""
    said = " ".join(text.split())[:200]
    if status not in LIMIT_STATUSES and error_type not in LIMIT_ERROR_TYPES and not _LIMIT_TEXT.search(text):
        return None
    reason = f"API {status}: {said}" if status else said or error_type
    return Limit(reason=reason, resets_at=_resets_at(text, now) or rejected_until)


def pause_s(limit: Limit, pauses: int, first_wait_s: float, now: float, rng: random.Random | None = None) -> float:
    """How long the pauses-th pause in a row lasts: until the reset time, else backoff with jitter."""
    if limit.resets_at is not None and limit.resets_at > now:
        return limit.resets_at - now
    backoff = min(first_wait_s * 2 ** max(0, pauses - 1), max(BACKOFF_CAP_S, first_wait_s))
    return backoff * (1 + (rng or random).uniform(-JITTER, JITTER))


def _resets_at(text: str, now: float) -> float | None:
    if epoch := _EPOCH.search(text):
        return float(epoch.group(1))
    match = _RESETS_AT.search(text)
    if match is None:
        return None
    weekday, hour, minute, meridiem, zone = match.groups()
    hour, minute = int(hour), int(minute or 0)
    if meridiem:
        hour = hour % 12 + (12 if meridiem.lower() == "pm" else 0)
    if hour > 23 or minute > 59:
        return None
    local = dt.datetime.fromtimestamp(now, _zone(zone))
    reset = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    days = (_WEEKDAYS.index(weekday.lower()) - local.weekday()) % 7 if weekday else 0
    reset += dt.timedelta(days=days)
    if reset <= local:
        reset += dt.timedelta(days=7 if weekday else 1)
    return reset.timestamp()


def _zone(name: str | None) -> dt.tzinfo | None:
    if not name:
        return None  # the machine's local time, as the CLI printed it
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
