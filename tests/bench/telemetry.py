"""Telemetry's cost (`make bench`), each figure against a baseline measured in the same run.

1. `pa` on a one-file task (offline brain, real Claude Code CLI, the fake API) with telemetry on,
   exporting over OTLP/HTTP to a receiver on loopback, vs the same task with telemetry off.
2. The export cost per span: spans made and exported through the SDK's batch processor and the
   OTLP/HTTP exporter to the same receiver, wall time per span.

    python tests/bench/telemetry.py
"""

from __future__ import annotations

import http.server
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from run import PA, TASK, check, medians_s

from agentproxy.testing.claude_env import find_claude_bin, isolated_claude_env
from agentproxy.testing.fake_anthropic import FakeAnthropic, Text, write_file

SPANS = 20_000


class Receiver(http.server.BaseHTTPRequestHandler):
    """Takes any OTLP/HTTP export (an empty protobuf response is a valid one)."""

    received = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Receiver.received += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def receiver() -> tuple[http.server.ThreadingHTTPServer, str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def one_file_task(claude: str, root: Path, endpoint: str) -> tuple[float, float, float, float]:
    write = write_file("hello.txt", "hi\n")
    runs = iter(range(1000))

    def fresh_dir() -> Path:
        directory = root / f"run-{next(runs)}"
        directory.mkdir()
        return directory

    with FakeAnthropic(default=lambda request: write if not request.tool_results else Text("Created.")) as api:
        env = {**isolated_claude_env(api.url, root / "claude-home"), "AGENTPROXY_HOME": str(root / "home")}
        on = {
            **env,
            "AGENTPROXY_ENABLE_TELEMETRY": "1",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        }
        return medians_s(
            lambda: check([*PA, "-d", str(fresh_dir()), "--claude-bin", claude, TASK], env=env),
            lambda: check([*PA, "-d", str(fresh_dir()), "--claude-bin", claude, TASK], env=on),
        )


def export_cost_per_span(endpoint: str) -> float:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=SPANS))  # every span exported, none dropped
    tracer = provider.get_tracer("bench")
    attributes = {"pa.session_id": "3f2a9c1e", "pa.subtask_id": "1", "pa.attempt": 1, "pa.agent_session_id": "x" * 36}
    started = time.perf_counter()
    for _ in range(SPANS):
        tracer.start_span("claude.subprocess", attributes=attributes).end()
    provider.force_flush(60_000)
    took = time.perf_counter() - started
    provider.shutdown()
    return took / SPANS


def main() -> int:
    claude = find_claude_bin()
    if claude is None:
        raise SystemExit("the Claude Code CLI is not installed: make claude")
    server, endpoint = receiver()
    with tempfile.TemporaryDirectory(prefix="bench-telemetry-") as root:
        off, on, low, high = one_file_task(claude, Path(root), endpoint)
    per_span = export_cost_per_span(endpoint)
    server.shutdown()
    print("telemetry (OTLP/HTTP to a receiver on loopback), medians of alternating runs:")
    print(f"  pa one-file task, telemetry on {on:.3f} s vs off {off:.3f} s: {on / off:.2f}x ({low:.2f}-{high:.2f}x)")
    print(f"  export cost per span (batch processor + OTLP/HTTP, {SPANS} spans): {per_span * 1e6:.1f} us")
    print(f"  the receiver took {Receiver.received} export requests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
