"""Real OTLP receivers for tests: what an OpenTelemetry Collector would be sent, decoded with opentelemetry-proto.

    with OtlpHttpReceiver() as collector:   # or OtlpGrpcReceiver()
        run with OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint ...
        collector.spans(), collector.metric_totals("agentproxy.tasks.started"), collector.resources()

OtlpHttpReceiver answers POST /v1/traces, /v1/metrics and /v1/logs (protobuf, gzipped or not) as
OTLP/HTTP does; OtlpGrpcReceiver serves the collector's TraceService, MetricsService and LogsService.
Both keep every export request they decode, in the order they arrived.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import grpc  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError, Message  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

HOST = "127.0.0.1"
Labels = tuple[tuple[str, Any], ...]  # a metric point's attributes, sorted: hashable


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str  # hex, as in TRACEPARENT
    span_id: str
    parent_span_id: str  # "" for a root
    attributes: dict[str, Any]
    resource: dict[str, Any]


def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(value_of(item) for item in value.array_value.values)
    if kind == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    return getattr(value, kind) if kind else None


def attributes_of(pairs: Any) -> dict[str, Any]:
    return {pair.key: value_of(pair.value) for pair in pairs}


def labels_of(pairs: Any) -> Labels:
    return tuple(sorted(attributes_of(pairs).items()))


def point_value(point: Any) -> float:
    """A sum's value, or a histogram's count."""
    if hasattr(point, "as_int"):
        return point.as_int if point.WhichOneof("value") == "as_int" else point.as_double
    return float(point.count)


class Received:
    """Every export request decoded, by signal; the exporters post from their own threads, hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.traces: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.metrics: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self.logs: list[logs_service_pb2.ExportLogsServiceRequest] = []
        self.rejected: list[str] = []  # requests that were no OTLP export (grpcio refuses those itself)

    def add(self, request: Message) -> None:
        with self._lock:
            if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
                self.traces.append(request)
            elif isinstance(request, metrics_service_pb2.ExportMetricsServiceRequest):
                self.metrics.append(request)
            elif isinstance(request, logs_service_pb2.ExportLogsServiceRequest):
                self.logs.append(request)

    def count(self) -> int:
        with self._lock:
            return len(self.traces) + len(self.metrics) + len(self.logs)

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            requests = list(self.traces)
        return [
            ReceivedSpan(
                name=span.name,
                trace_id=span.trace_id.hex(),
                span_id=span.span_id.hex(),
                parent_span_id=span.parent_span_id.hex(),
                attributes=attributes_of(span.attributes),
                resource=attributes_of(resource_spans.resource.attributes),
            )
            for request in requests
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]

    def metric_names(self) -> set[str]:
        return {metric.name for metric in self._metrics()}

    def metric_totals(self, name: str) -> dict[Labels, float]:
        """The last value received for each label set: the SDK exports cumulative totals."""
        totals: dict[Labels, float] = {}
        for metric in self._metrics():
            if metric.name == name:
                data = getattr(metric, metric.WhichOneof("data"))
                totals.update((labels_of(point.attributes), point_value(point)) for point in data.data_points)
        return totals

    def _metrics(self) -> Iterator[Any]:
        with self._lock:
            requests = list(self.metrics)
        for request in requests:
            for resource_metrics in request.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    yield from scope_metrics.metrics

    def log_records(self) -> list[Any]:
        with self._lock:
            requests = list(self.logs)
        return [
            record
            for request in requests
            for resource_logs in request.resource_logs
            for scope_logs in resource_logs.scope_logs
            for record in scope_logs.log_records
        ]

    def resources(self) -> list[dict[str, Any]]:
        """The resource attributes of every batch of every signal."""
        with self._lock:
            batches = [
                *(batch.resource for request in self.traces for batch in request.resource_spans),
                *(batch.resource for request in self.metrics for batch in request.resource_metrics),
                *(batch.resource for request in self.logs for batch in request.resource_logs),
            ]
        return [attributes_of(resource.attributes) for resource in batches]


# -- OTLP/HTTP ---------------------------------------------------------------------------------------

HTTP_ROUTES: dict[str, tuple[type[Message], type[Message]]] = {
    "/v1/traces": (trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse),
    "/v1/metrics": (metrics_service_pb2.ExportMetricsServiceRequest, metrics_service_pb2.ExportMetricsServiceResponse),
    "/v1/logs": (logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse),
}


class _OtlpHttpHandler(BaseHTTPRequestHandler):
    server: _OtlpHttpServer

    def do_POST(self) -> None:
        route = HTTP_ROUTES.get(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if route is None:
            self.reject(404, f"POST {self.path}")
            return
        request_type, response_type = route
        try:
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                body = gzip.decompress(body)
            request = request_type.FromString(body)
        except (OSError, DecodeError) as exc:
            self.reject(400, f"POST {self.path}: {exc}")
            return
        self.server.received.add(request)
        reply = response_type().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def reject(self, status: int, what: str) -> None:
        self.server.received.rejected.append(what)
        self.send_error(status)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the test reads what was received
        pass


class _OtlpHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, received: Received) -> None:
        super().__init__((HOST, 0), _OtlpHttpHandler)
        self.received = received


class OtlpHttpReceiver(Received):
    def __init__(self) -> None:
        super().__init__()
        self._server = _OtlpHttpServer(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="otlp-http", daemon=True
        )

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self._server.server_port}"

    def __enter__(self) -> OtlpHttpReceiver:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# -- OTLP/gRPC ---------------------------------------------------------------------------------------


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    def Export(self, request: Any, context: Any) -> Any:
        self.received.add(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    def Export(self, request: Any, context: Any) -> Any:
        self.received.add(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class _LogsService(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    def Export(self, request: Any, context: Any) -> Any:
        self.received.add(request)
        return logs_service_pb2.ExportLogsServiceResponse()


class OtlpGrpcReceiver(Received):
    def __init__(self) -> None:
        super().__init__()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="otlp-grpc"))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(self), self._server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsService(self), self._server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_LogsService(self), self._server)
        self.port = self._server.add_insecure_port(f"{HOST}:0")

    @property
    def endpoint(self) -> str:
        """http://: the gRPC exporter then connects without TLS."""
        return f"http://{HOST}:{self.port}"

    def __enter__(self) -> OtlpGrpcReceiver:
        self._server.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.stop(grace=None).wait(5)
