"""Turning telemetry on: the SDK's providers and OTLP exporters, once per process.

The exporters read the standard OTEL_* variables themselves (endpoint, headers, resource attributes);
only the protocol is chosen here, from OTEL_EXPORTER_OTLP_PROTOCOL (grpc, the seed's default, or
http/protobuf). Export timeouts are low: a collector that is down costs a run a bounded delay at exit.
"""

from __future__ import annotations

import getpass
import logging
import os
import threading
import uuid
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("agentproxy.telemetry")

EXPORT_TIMEOUT_S = 2.0
SHUTDOWN_TIMEOUT_MS = 3000
DEFAULT_METRIC_INTERVAL_MS = 10_000

_lock = threading.Lock()
_started: Telemetry | None = None
_warned = False


class FixedIds:
    """An IdGenerator that hands out the ids set for the next span this thread starts (a task's root, a
    subtask), else random ones: each run builds its trace on its own thread, the presets stay its own."""

    def __init__(self) -> None:
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

        self.random = RandomIdGenerator()
        self.preset = threading.local()
        self.lock = threading.Lock()  # held while a span with fixed ids starts

    def generate_trace_id(self) -> int:
        fixed, self.preset.trace_id = getattr(self.preset, "trace_id", None), None
        return fixed or self.random.generate_trace_id()

    def generate_span_id(self) -> int:
        fixed, self.preset.span_id = getattr(self.preset, "span_id", None), None
        return fixed or self.random.generate_span_id()

    def is_trace_id_random(self) -> bool:
        return False


@dataclass
class Telemetry:
    tracer: Any
    meter: Any
    ids: FixedIds
    providers: tuple[Any, ...]
    instruments: dict[str, Any]
    running: dict[str, Any]  # each running run's root span, by trace key: its log records join its trace

    def flush(self) -> None:
        """At a run's end: what is batched goes out now, within the export timeout."""
        for provider in self.providers:
            try:
                provider.force_flush(SHUTDOWN_TIMEOUT_MS)
            except Exception as exc:  # the SDK logs its own; a failing collector must not fail the run
                log.debug("telemetry flush failed: %s", exc)


def start(span_exporter: Any = None, metric_reader: Any = None, log_exporter: Any = None) -> Telemetry | None:
    """The process's telemetry (made on first use); None, with one warning, if the packages are missing.

    Tests give in-memory exporters; otherwise the OTLP ones of the chosen protocol."""
    global _started, _warned
    with _lock:
        if _started is not None:
            return _started
        try:
            _started = _make(span_exporter, metric_reader, log_exporter)
        except ImportError as exc:
            if not _warned:
                _warned = True
                log.warning("telemetry is on but cannot start (%s): pip install 'agentproxy[telemetry]'", exc)
            return None
        return _started


def _make(span_exporter: Any, metric_reader: Any, log_exporter: Any) -> Telemetry:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from agentproxy.telemetry.instruments import make_instruments

    resource = Resource.create(
        {
            "service.name": os.environ.get("OTEL_SERVICE_NAME") or "agentproxy",
            "service.namespace": os.environ.get("OTEL_SERVICE_NAMESPACE") or "default",
            "pa.owner_id": owner_id(),
            "service.instance.id": uuid.uuid4().hex,  # two runs at once are two series, not one
        }
    )
    exporters: tuple[Any, Any, Any] = _exporters() if span_exporter is None else (span_exporter, None, log_exporter)
    ids = FixedIds()
    tracer_provider = TracerProvider(resource=resource, id_generator=ids)  # type: ignore[arg-type]
    tracer_provider.add_span_processor(BatchSpanProcessor(exporters[0], export_timeout_millis=SHUTDOWN_TIMEOUT_MS))
    interval = int(os.environ.get("OTEL_METRIC_EXPORT_INTERVAL") or DEFAULT_METRIC_INTERVAL_MS)
    reader = metric_reader or PeriodicExportingMetricReader(
        exporters[1], export_interval_millis=interval, export_timeout_millis=SHUTDOWN_TIMEOUT_MS
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    providers: list[Any] = [tracer_provider, meter_provider]
    running: dict[str, Any] = {}
    if exporters[2] is not None:
        logger_provider = LoggerProvider(resource=resource)
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(exporters[2]))
        handler = _run_logs_class()(running, level=logging.INFO, logger_provider=logger_provider)
        handler.addFilter(_Redacting())
        logging.getLogger("agentproxy").addHandler(handler)
        providers.append(logger_provider)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    meter = meter_provider.get_meter("agentproxy")
    return Telemetry(
        tracer=tracer_provider.get_tracer("agentproxy"),
        meter=meter,
        ids=ids,
        providers=tuple(providers),
        instruments=make_instruments(meter),
        running=running,
    )


def _exporters() -> tuple[Any, Any, Any]:
    """OTLP over the protocol OTEL_EXPORTER_OTLP_PROTOCOL names; each reads its endpoint and headers itself."""
    protocol = (os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc").strip().lower()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    elif protocol in ("http/protobuf", "http"):
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter  # type: ignore[assignment]
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # type: ignore[assignment]
            OTLPMetricExporter,
        )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # type: ignore[assignment]
    else:
        raise ImportError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is neither grpc nor http/protobuf")
    return (
        OTLPSpanExporter(timeout=EXPORT_TIMEOUT_S),
        OTLPMetricExporter(timeout=EXPORT_TIMEOUT_S),
        OTLPLogExporter(timeout=EXPORT_TIMEOUT_S),
    )


def owner_id() -> str:
    if given := os.environ.get("AGENTPROXY_OWNER_ID"):
        return given
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _run_logs_class() -> Any:
    """Made when telemetry starts: its base class is the SDK's, imported only then."""
    from opentelemetry import context, trace
    from opentelemetry.sdk._logs import LoggingHandler

    class RunLogs(LoggingHandler):
        """A record logged while one run is running joins that run's trace (its root span); with
        several at once (a server) there is no telling which, and it goes out on its own."""

        def __init__(self, running: dict[str, Any], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.running = running

        def emit(self, record: logging.LogRecord) -> None:
            roots = list(self.running.values())
            if len(roots) != 1 or trace.get_current_span().get_span_context().is_valid:
                super().emit(record)
                return
            token = context.attach(trace.set_span_in_context(roots[0]))
            try:
                super().emit(record)
            finally:
                context.detach(token)

    return RunLogs


class _Redacting(logging.Filter):
    """The run's secret redactor over every record exported."""

    def filter(self, record: logging.LogRecord) -> bool:
        from agentproxy.redact import installed

        record.msg = installed().redact(record.getMessage())
        record.args = ()
        return True
