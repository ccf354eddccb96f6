"""The metric instruments, made from names.METRICS."""

from __future__ import annotations

from typing import Any

from agentproxy.telemetry.names import METRICS


def make_instruments(meter: Any) -> dict[str, Any]:
    made = {}
    for metric in METRICS:
        make = {
            "counter": meter.create_counter,
            "histogram": meter.create_histogram,
            "updown": meter.create_up_down_counter,
        }[metric.kind]
        made[metric.name] = make(metric.name, unit=metric.unit, description=metric.description)
    return made
