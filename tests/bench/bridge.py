"""The bridge to remote workers (issue 9, `make bench`), each figure against its target.

1. Throughput: typical agent events (Reports carrying RecordAll batches of AgentSaid, AgentUsedTool and
   ToolDecided of realistic sizes) from a worker's Link through a real Broker into a real pykka actor that
   counts them (the broker hands it each batch of frames as PeersSaid, as the runtime does the Bridge actor), in
   events per second; against raw pyzmq in the same run: a DEALER sending the same msgpack frames on
   loopback to a ROUTER whose thread decodes them with msgspec. Both encode each message as they send it.
   REPEATS runs alternating with the baseline; the figure is the median ratio of a run to the raw run before
   it.                                                                                  target >= 0.5 of raw
2. Worker death detection: a worker process (a Link, heartbeat 1 s, liveness 3), welcomed, is killed with
   SIGKILL at a random moment between two heartbeats; the time from the kill to the broker's on_lost.
                                                             target <= heartbeat x liveness + 1 s = 4 s
Exits 1 if a target is missed.

    python tests/bench/bridge.py [--reports N] [--deaths N]
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

import msgspec
import pykka
import zmq

from agentproxy.bridge import protocol
from agentproxy.bridge.broker import Broker
from agentproxy.messages import AgentSaid, AgentUsedTool, PeersSaid, RecordAll, ToolDecided
from agentproxy.worker.link import Link

REPEATS = 7
REPORTS = 20_000
DEATHS = 5
HEARTBEAT_S = 1.0
LIVENESS = 3
TARGET_RATIO = 0.5
TARGET_DETECTION_S = HEARTBEAT_S * LIVENESS + 1.0
SEED = 9
LOOPBACK = "tcp://127.0.0.1:*"
READY_TIMEOUT_S = 10.0
DELIVERY_TIMEOUT_S = 120.0
TOOLS = ("Bash", "Read", "Edit", "Write", "Grep", "Glob")
SENTENCE = "the test suite passes now so I will update the parser and check the failing case again"


# -- the events --------------------------------------------------------------------------------


def prose(rng: random.Random, chars: int) -> str:
    words = SENTENCE.split()
    text = ""
    while len(text) < chars:
        text += rng.choice(words) + " "
    return text.strip()


def batch(rng: random.Random) -> list[Any]:
    """The events of the agent's lines read at once: mostly a line of text or a tool call and its verdict."""
    events: list[Any] = []
    for _ in range(rng.choice([1, 1, 2, 3, 6])):
        at = time.time()
        if rng.random() < 0.5:
            events.append(
                AgentSaid(session_id="3f9c2a1b", at=at, subtask_id="s2", text=prose(rng, rng.randint(40, 600)))
            )
            continue
        tool = rng.choice(TOOLS)
        detail = f"{tool.lower()} src/agentproxy/{prose(rng, rng.randint(10, 120)).replace(' ', '_')}.py"
        events.append(AgentUsedTool(session_id="3f9c2a1b", at=at, subtask_id="s2", tool=tool, detail=detail))
        reason = f"allowed: {tool} is in the policy's allowed tools"
        events.append(
            ToolDecided(session_id="3f9c2a1b", at=at, subtask_id="s2", tool=tool, allowed=True, reason=reason)
        )
    return events


def reports(count: int) -> list[protocol.Report]:
    rng = random.Random(SEED)
    return [
        protocol.Report(assignment="a-3f9c2a1b-s2", epoch=1, message=RecordAll(events=batch(rng))) for _ in range(count)
    ]


def events_in(report: protocol.Report) -> int:
    message = report.message
    return len(message.events) if isinstance(message, RecordAll) else 1


# -- through the bridge: Link -> Broker -> actor -----------------------------------------------


class EventCounter(pykka.ThreadingActor):
    """The Bridge actor's place: it welcomes the worker and counts the events its Reports carry."""

    def __init__(self, broker: Broker, expected: int, done: threading.Event) -> None:
        super().__init__()
        self.broker = broker
        self.expected = expected
        self.done = done
        self.count = 0

    def on_receive(self, message: Any) -> None:
        if not isinstance(message, PeersSaid):
            return
        for peer, said in message.said:
            match said:
                case protocol.Hello():
                    self.broker.send(peer, protocol.Welcome(heartbeat_s=HEARTBEAT_S, liveness=LIVENESS))
                case protocol.Report() as report:
                    self.count += events_in(report)
        if self.count >= self.expected:
            self.done.set()


def link_to(endpoint: str, identity: bytes) -> Link:
    return Link(
        endpoint,
        identity,
        keys_=None,
        heartbeat_s=HEARTBEAT_S,
        liveness=LIVENESS,
        hello=lambda: protocol.Hello(name=identity.decode(), slots=1),
        on_message=lambda message: None,
        on_fatal=lambda reason: print(f"the link failed: {reason}", file=sys.stderr),
    )


def through_bridge(batches: list[protocol.Report], events: int) -> float:
    """Seconds from the first send on a welcomed Link until the actor counted every event."""
    done = threading.Event()
    broker = Broker(
        LOOPBACK,
        heartbeat_s=HEARTBEAT_S,
        liveness=LIVENESS,
        security=None,
        on_messages=lambda said: counter.tell(PeersSaid(said=said)),
        on_lost=lambda peer, reason: print(f"the bench worker was lost: {reason}", file=sys.stderr),
    )
    counter = EventCounter.start(broker, events, done)  # before the broker starts: nothing is said to it sooner
    link = link_to(broker.start(), b"bench-worker")
    link.start()
    try:
        if not link.welcomed.wait(READY_TIMEOUT_S):
            raise SystemExit("the bench worker was not welcomed")
        started = time.perf_counter()
        for report in batches:
            link.send(report)
        if not done.wait(DELIVERY_TIMEOUT_S):
            raise SystemExit(f"the actor counted {counter.proxy().count.get()} events of {events}")
        return time.perf_counter() - started
    finally:
        link.stop()
        broker.stop()
        counter.stop()


# -- raw pyzmq: DEALER -> ROUTER, msgpack ------------------------------------------------------


def raw_pyzmq(batches: list[protocol.Report], events: int) -> float:
    """Seconds from the first send on a connected DEALER until the ROUTER's thread decoded every event."""
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    dealer = context.socket(zmq.DEALER)
    ready, done = threading.Event(), threading.Event()

    def receive() -> None:
        decoder = msgspec.msgpack.Decoder(protocol.AnyBridgeMsg)
        router.recv_multipart()  # the warm-up frame: the connection is up
        ready.set()
        count = 0
        while count < events:
            _, _, body = router.recv_multipart()
            count += events_in(decoder.decode(body))
        done.set()

    try:
        port = router.bind_to_random_port("tcp://127.0.0.1")
        receiver = threading.Thread(target=receive, name="raw-router", daemon=True)
        receiver.start()
        dealer.connect(f"tcp://127.0.0.1:{port}")
        encoder = msgspec.msgpack.Encoder()
        dealer.send_multipart([protocol.HEADER, encoder.encode(protocol.Heartbeat())])
        if not ready.wait(READY_TIMEOUT_S):
            raise SystemExit("the raw DEALER did not connect")
        started = time.perf_counter()
        for report in batches:
            dealer.send_multipart([protocol.HEADER, encoder.encode(report)])
        if not done.wait(DELIVERY_TIMEOUT_S):
            raise SystemExit("the raw ROUTER did not receive every event")
        return time.perf_counter() - started
    finally:
        context.destroy(linger=0)


# -- worker death ------------------------------------------------------------------------------


def run_worker(endpoint: str) -> int:
    """The worker process the death figure kills: a Link, welcomed, then idle until SIGKILL."""
    link = link_to(endpoint, f"bench-worker-{os.getpid()}".encode())
    link.start()
    if not link.welcomed.wait(READY_TIMEOUT_S):
        return 1
    print("welcomed", flush=True)
    threading.Event().wait()
    return 0


def death_detections(deaths: int) -> list[tuple[float, str]]:
    """For each killed worker process: seconds from its SIGKILL to on_lost, and the broker's reason."""
    lost: queue.SimpleQueue[tuple[float, str]] = queue.SimpleQueue()

    def welcome(said: list[tuple[bytes, protocol.AnyBridgeMsg]]) -> None:
        for peer, message in said:
            if isinstance(message, protocol.Hello):
                broker.send(peer, protocol.Welcome(heartbeat_s=HEARTBEAT_S, liveness=LIVENESS))

    broker = Broker(
        LOOPBACK,
        heartbeat_s=HEARTBEAT_S,
        liveness=LIVENESS,
        security=None,
        on_messages=welcome,
        on_lost=lambda peer, reason: lost.put((time.monotonic(), reason)),
    )
    endpoint = broker.start()
    rng = random.Random(SEED)
    figures = []
    try:
        for _ in range(deaths):
            figures.append(kill_one(endpoint, lost, rng))
    finally:
        broker.stop()
    return figures


def kill_one(endpoint: str, lost: queue.SimpleQueue[tuple[float, str]], rng: random.Random) -> tuple[float, str]:
    argv = [sys.executable, __file__, "--worker", endpoint]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as worker:
        assert worker.stdout is not None
        if worker.stdout.readline().strip() != "welcomed":
            worker.kill()
            raise SystemExit("the worker process was not welcomed")
        time.sleep(HEARTBEAT_S + rng.uniform(0, HEARTBEAT_S))  # past the first beats, anywhere between two
        killed_at = time.monotonic()
        worker.kill()
        worker.wait()
    try:
        lost_at, reason = lost.get(timeout=TARGET_DETECTION_S * 3)
    except queue.Empty:
        return float("inf"), "never reported lost"
    return lost_at - killed_at, reason


# -- the figures -------------------------------------------------------------------------------


def throughput(batches: list[protocol.Report], events: int) -> tuple[float, float, list[float]]:
    """Median events/s through the bridge and raw, and the ratio of each bridge run to the raw run before it."""
    bridged, raw = [], []
    for _ in range(REPEATS):
        raw.append(events / raw_pyzmq(batches, events))
        bridged.append(events / through_bridge(batches, events))
    ratios = [b / r for b, r in zip(bridged, raw, strict=True)]
    return statistics.median(bridged), statistics.median(raw), ratios


def throughput_missed(count: int) -> list[str]:
    batches = reports(count)
    events = sum(events_in(report) for report in batches)
    size = sum(len(msgspec.msgpack.encode(report)) for report in batches) / count
    bridged, raw, ratios = throughput(batches, events)
    ratio = statistics.median(ratios)  # paired runs: the machine's drift hits both alike
    print(f"bridge throughput: {count} Reports, {events} events ({size:.0f} bytes a Report), loopback")
    print(f"median of {REPEATS} runs, on {os.cpu_count()} cores")
    print(f"  raw pyzmq DEALER -> ROUTER, msgpack  {raw:9.0f} events/s   (the baseline)")
    print(f"  Link -> Broker -> actor              {bridged:9.0f} events/s")
    print(f"  bridge / raw, median of the paired runs  {ratio:.2f}   target >= {TARGET_RATIO}")
    print("  each run over the raw run before it: " + ", ".join(f"{r:.2f}" for r in ratios))
    return [f"bridge throughput {ratio:.2f} of raw < {TARGET_RATIO}"] if ratio < TARGET_RATIO else []


def detection_missed(deaths: int) -> list[str]:
    detections = death_detections(deaths)
    worst = max(seconds for seconds, _ in detections)
    print(f"worker death detection: SIGKILL of a worker process, heartbeat {HEARTBEAT_S:g} s x liveness {LIVENESS}")
    print(
        f"  median {statistics.median(s for s, _ in detections):.2f} s, worst {worst:.2f} s"
        f" of {len(detections)} kills   target <= {TARGET_DETECTION_S:g} s"
    )
    for seconds, reason in detections:
        print(f"  {seconds:5.2f} s  {reason}")
    return (
        [f"worker death detected after {worst:.2f} s > {TARGET_DETECTION_S:g} s"] if worst > TARGET_DETECTION_S else []
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=REPORTS)
    parser.add_argument("--deaths", type=int, default=DEATHS)
    parser.add_argument("--worker", metavar="ENDPOINT", help=argparse.SUPPRESS)  # the process the bench kills
    args = parser.parse_args()
    if args.worker:
        return run_worker(args.worker)
    missed = throughput_missed(args.reports) + detection_missed(args.deaths)
    for miss in missed:
        print(f"MISSED: {miss}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
