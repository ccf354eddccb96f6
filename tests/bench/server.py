"""pa-server's figures (issue 10, `make bench`); no targets are set, so each is printed with its baseline.

1. SSE fan-out: a scripted agent thinks THINK_S, then says its lines (each an agent_said event): a burst
   of BURST_SAYS as fast as it can, or STEADY_SAYS with STEADY_PAUSE_S between two (an agent's pace). CLIENTS
   clients follow the session on GET /session/{id}/events, all connected before the first line; against one
   client alone, in the same run. Per round: the events delivered across the clients per second (from the
   first line's "at" to the last receipt), and the latency from an event's own "at" (stamped when the
   supervisor recorded it) to a client's receipt of it, median and p95; the server's CPU time and this
   process's. Medians of REPEATS rounds. The clients share one asyncio loop in this process.
2. RSS: the server's VmRSS idle after start, then its peak while SESSIONS tasks run at once in as many
   working directories (scripted agents that sleep SLEEP_S), sampled from /proc every POLL_S.

    python tests/bench/server.py [--clients N] [--sessions N]

Exits 1 if something fails (a client misses events, the sessions do not overlap), else 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import msgspec
from httpx_sse import aconnect_sse

from agentproxy.testing.live_server import Server, scripted_agent, start_server, stop_server

CLIENTS = 50
BURST_SAYS = 1000
STEADY_SAYS = 200
STEADY_PAUSE_S = 0.02
THINK_S = 3.0  # time for the clients to connect before the first line
REPEATS = 3
SESSIONS = 10
SLEEP_S = 10.0
SETTLE_S = 2.0
POLL_S = 0.05
TIMEOUT_S = 120.0
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
# A developer's brain settings must not reach the bench: the runs' plans stay offline.
BRAIN_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "AGENTPROXY_GEMINI_MODEL")

Pair = tuple[float, float]  # an event's (emitted at, received at), unix seconds


@dataclass(frozen=True)
class Pace:
    name: str
    says: int
    pause_s: float  # between two lines


@dataclass(frozen=True)
class FanOut:
    pace: str
    clients: int
    events: int  # agent_said events each client received
    emitted_per_s: float  # the session's own rate: its lines over the time between the first's and the last's "at"
    delivered_per_s: float  # across all clients, from the first line's "at" to the last receipt
    median_ms: float
    p95_ms: float
    server_cpu_s: float  # the server's (all its threads) during the round: the run's own work and the sending
    client_cpu_s: float  # this process's


# -- SSE fan-out ---------------------------------------------------------------------------------


def chatty_script(pace: Pace) -> list[list[dict[str, object]]]:
    lines: list[dict[str, object]] = []
    for number in range(pace.says):
        lines.append({"say": f"line {number}: the parser handles the failing case now"})
        if pace.pause_s:
            lines.append({"sleep": pace.pause_s})
    return [[{"sleep": THINK_S}, *lines, {"write": {"path": "out.txt", "content": "x\n"}}, {"result": "Done."}]]


async def start_task(client: httpx.AsyncClient, working_dir: str) -> str:
    """POST /task; its session's id, from the stream's first message (then this client goes away)."""
    async with aconnect_sse(client, "POST", "/task", json={"task": "Talk", "working_dir": working_dir}) as source:
        source.response.raise_for_status()
        async for message in source.aiter_sse():
            return json.loads(message.data)["session_id"]
    raise SystemExit("POST /task: the stream ended before naming its session")


class Stamped(msgspec.Struct):
    at: float


STAMPED = msgspec.json.Decoder(Stamped)  # an event's "at" alone: the rest of its data is skipped


async def follow(client: httpx.AsyncClient, session_id: str, connected: Callable[[], None]) -> list[Pair]:
    """Each agent_said event of the session, read until its `done`.

    A lean reader (messages split at blank lines, only "at" decoded): with httpx-sse's line-by-line parsing,
    50 clients cost this process more CPU than the server spent sending to them."""
    pairs: list[Pair] = []
    async with client.stream("GET", f"/session/{session_id}/events") as response:
        response.raise_for_status()
        chunks = response.aiter_raw()
        pending = await anext(chunks)  # the session's first events: the server follows it for this client
        connected()
        async for chunk in chunks:
            received = time.time()
            *messages, pending = (pending + chunk).replace(b"\r\n", b"\n").split(b"\n\n")
            for message in messages:
                fields = dict(line.partition(b":")[::2] for line in message.split(b"\n"))
                kind = fields.get(b"event", b"").strip()
                if kind == b"agent_said":
                    pairs.append((STAMPED.decode(fields[b"data"]).at, received))
                elif kind == b"done":
                    return pairs
    raise SystemExit(f"GET /session/{session_id}/events: the stream ended without `done`")


async def fan_out(server: Server, working_dir: str, clients: int, pace: Pace) -> FanOut:
    """One task; `clients` follow it, all connected while its agent thinks."""
    cpu_before = own_cpu_s(server.process.pid), time.process_time()
    limits = httpx.Limits(max_connections=clients + 1)
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT_S, limits=limits) as client:
        session_id = await start_task(client, working_dir)
        waiting = clients
        all_connected = asyncio.Event()

        def connected() -> None:
            nonlocal waiting
            waiting -= 1
            if not waiting:
                all_connected.set()

        followers = [asyncio.create_task(follow(client, session_id, connected)) for _ in range(clients)]
        await asyncio.wait_for(all_connected.wait(), THINK_S * 10)
        connected_at = time.time()
        received = await asyncio.gather(*followers)
    cpu = own_cpu_s(server.process.pid) - cpu_before[0], time.process_time() - cpu_before[1]
    return figures(pace, received, connected_at, cpu)


def figures(pace: Pace, received: list[list[Pair]], connected_at: float, cpu: tuple[float, float]) -> FanOut:
    counts = sorted({len(pairs) for pairs in received})
    if counts != [pace.says]:
        raise SystemExit(f"the clients received {counts} agent_said events, not {pace.says} each")
    emitted = [at for at, _ in received[0]]
    if emitted[0] < connected_at:
        raise SystemExit(f"the first line came {connected_at - emitted[0]:.2f}s before the last client: raise THINK_S")
    latencies = sorted(got - at for pairs in received for at, got in pairs)
    last_receipt = max(got for pairs in received for _, got in pairs)
    return FanOut(
        pace=pace.name,
        clients=len(received),
        events=pace.says,
        emitted_per_s=pace.says / (emitted[-1] - emitted[0]),
        delivered_per_s=len(latencies) / (last_receipt - emitted[0]),
        median_ms=statistics.median(latencies) * 1000,
        p95_ms=statistics.quantiles(latencies, n=20)[18] * 1000,
        server_cpu_s=cpu[0],
        client_cpu_s=cpu[1],
    )


def own_cpu_s(pid: int) -> float:
    """The process's user and system time, its threads' included and its children's not (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S  # utime and stime, fields 14 and 15


def fan_out_figures(root: Path, clients: int, pace: Pace) -> tuple[FanOut, FanOut]:
    """REPEATS rounds of one client alone then `clients` at once, each on a task of its own: the medians."""
    (root / "root").mkdir(parents=True)
    server = start_server(root / "root", root / "home", scripted_agent(root, chatty_script(pace)))
    try:
        alone, crowd = [], []
        for number in range(REPEATS):
            alone.append(asyncio.run(fan_out(server, f"alone-{number}", 1, pace)))
            crowd.append(asyncio.run(fan_out(server, f"crowd-{number}", clients, pace)))
    finally:
        stop_server(server)
    return median_of(alone), median_of(crowd)


def median_of(rounds: list[FanOut]) -> FanOut:
    measured = ("emitted_per_s", "delivered_per_s", "median_ms", "p95_ms", "server_cpu_s", "client_cpu_s")
    return replace(rounds[0], **{name: statistics.median(getattr(r, name) for r in rounds) for name in measured})


# -- RSS -----------------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


async def start_tasks(server: Server, working_dirs: list[str]) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT_S) as client:
        await asyncio.gather(*(start_task(client, working_dir) for working_dir in working_dirs))


def rss_figures(root: Path, sessions: int) -> tuple[float, float]:
    """The server's RSS idle, and its peak while `sessions` sleeping agents run at once (MB)."""
    (root / "root").mkdir(parents=True)
    turn = [{"sleep": SLEEP_S}, {"write": {"path": "out.txt", "content": "x\n"}}, {"result": "Wrote out.txt."}]
    server = start_server(root / "root", root / "home", scripted_agent(root, [turn]))
    try:
        time.sleep(SETTLE_S)
        idle = rss_mb(server.process.pid)
        asyncio.run(start_tasks(server, [f"session-{number}" for number in range(sessions)]))
        peak, most = idle, 0
        deadline = time.monotonic() + SLEEP_S + TIMEOUT_S
        with server.client() as client:
            while (active := client.get("/health").json()["active_sessions"]) and time.monotonic() < deadline:
                most = max(most, active)
                peak = max(peak, rss_mb(server.process.pid))
                time.sleep(POLL_S)
        if active:
            raise SystemExit(f"{active} sessions still running after {SLEEP_S + TIMEOUT_S:g}s")
        if most < sessions:
            raise SystemExit(f"at most {most} of the {sessions} sessions ran at once")
    finally:
        stop_server(server)
    return idle, peak


# -- the report ----------------------------------------------------------------------------------


def report(rows: list[FanOut], idle: float, peak: float, sessions: int) -> None:
    print(f"\npa-server, SSE fan-out: agent_said events after {THINK_S:g}s of quiet. burst: {BURST_SAYS} lines")
    print(f"at once; steady: {STEADY_SAYS} lines {STEADY_PAUSE_S * 1000:g} ms apart. Latency: from the event's own")
    print(f'"at" to its receipt. Medians of {REPEATS} rounds on {os.cpu_count()} cores; the clients share one')
    print("asyncio loop in this process.\n")
    print(
        f"{'pace':>7} {'clients':>8} {'emitted/s':>10} {'delivered/s':>12} {'latency median ms':>18} {'p95 ms':>8}"
        f" {'server CPU s':>13} {'client CPU s':>13}"
    )
    for row in rows:
        print(
            f"{row.pace:>7} {row.clients:>8} {row.emitted_per_s:>10.0f} {row.delivered_per_s:>12.0f}"
            f" {row.median_ms:>18.1f} {row.p95_ms:>8.1f} {row.server_cpu_s:>13.2f} {row.client_cpu_s:>13.2f}"
        )
    print(f"\npa-server RSS: idle {idle:.1f} MB; with {sessions} sessions at once (scripted agents sleeping")
    print(f"{SLEEP_S:g}s): peak {peak:.1f} MB (+{peak - idle:.1f} MB)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--sessions", type=int, default=SESSIONS)
    args = parser.parse_args()
    for name in BRAIN_VARIABLES:
        os.environ.pop(name, None)
    rows: list[FanOut] = []
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        for pace in (Pace("burst", BURST_SAYS, 0.0), Pace("steady", STEADY_SAYS, STEADY_PAUSE_S)):
            rows.extend(fan_out_figures(Path(tmp) / pace.name, args.clients, pace))
        idle, peak = rss_figures(Path(tmp) / "rss", args.sessions)
    report(rows, idle, peak, args.sessions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
