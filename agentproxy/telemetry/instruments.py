"""The metric instruments, made from names.METRICS."""

from __future__ import annotations

from typing import Any

from agentproxy.telemetry.names import METRICS

# Seconds, from a brain call's fraction of one to a task's hours: the SDK's default buckets start at 5.
SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)


def make_instruments(meter: Any) -> dict[str, Any]:
    made = {}
    for metric in METRICS:
        if metric.kind == "histogram":
            made[metric.name] = meter.create_histogram(
                metric.name,
                unit=metric.unit,
                description=metric.description,
                explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
            )
            continue
        make = meter.create_counter if metric.kind == "counter" else meter.create_up_down_counter
        made[metric.name] = make(metric.name, unit=metric.unit, description=metric.description)
    return made
