"""The broker under fuzzed frames, on a real ROUTER on loopback (insecure), sent from raw DEALER sockets.

10,000 frames (seeded, so a failure replays): wrong part counts, empty parts, foreign headers, random
bodies, msgpack of the wrong shape or types, truncated or trailing bytes, other protocol versions, and
valid frames among them. Nothing crashes the broker's thread, each malformed frame is counted and only
those, a version it does not speak is refused by name, and a real worker's Link is served afterwards.
Also how the broker loses a peer that announced itself: silence past its liveness, or a malformed frame.
"""

from __future__ import annotations

import random
import string
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
import pytest
import zmq

from agentproxy.bridge import protocol
from agentproxy.bridge.broker import Broker
from agentproxy.messages import AgentSaid, AgentUsedTool, AnyEvent, RecordAll, ToolDecided
from agentproxy.worker.link import Link

pytestmark = pytest.mark.timeout(120)

SEED = 9
FRAMES = 10_000
DEALERS = 16
BATCH = 500  # frames sent before the replies are read: no DEALER's receive queue comes near its limit
FUZZ_HEARTBEAT_S = 0.5
FUZZ_LIVENESS = 20  # no fuzzing peer goes silent long enough to be lost while the frames are sent
SETTLE_S = 30.0  # bounded waits for what the broker's thread does
WELCOME_S = 5.0
DEEP = 20_000  # nested arrays: far past any recursion limit
VERSIONS = ("0", "2", "01", "1.0", "1.1", "v1", "1 ", "")

Kind = Literal["valid", "malformed", "refused"]


@dataclass(frozen=True)
class Frame:
    parts: list[bytes]
    kind: Kind
    version: str = ""  # refused: the version its header names
    hello: bool = False  # valid: a Hello, which the owner welcomes


# -- the broker's owner ----------------------------------------------------------------------


@dataclass
class Owner:
    """What the Bridge actor is to the broker: it welcomes every Hello and keeps what the broker tells it."""

    heartbeat_s: float
    liveness: int
    broker: Broker | None = None
    endpoint: str = ""
    said: list[tuple[bytes, protocol.AnyBridgeMsg, float]] = field(default_factory=list)
    lost: list[tuple[bytes, str, float]] = field(default_factory=list)

    def on_message(self, peer: bytes, message: protocol.AnyBridgeMsg) -> None:
        self.said.append((peer, message, time.monotonic()))
        if isinstance(message, protocol.Hello) and self.broker is not None:
            self.broker.send(peer, protocol.Welcome(heartbeat_s=self.heartbeat_s, liveness=self.liveness))

    def on_lost(self, peer: bytes, reason: str) -> None:
        self.lost.append((peer, reason, time.monotonic()))

    def heartbeat_after(self, peer: bytes, since: float) -> bool:
        return any(p == peer and isinstance(m, protocol.Heartbeat) and at > since for p, m, at in self.said)


StartBroker = Callable[[float, int], Owner]


@pytest.fixture
def start_broker() -> Iterator[StartBroker]:
    brokers: list[Broker] = []

    def start(heartbeat_s: float, liveness: int) -> Owner:
        owner = Owner(heartbeat_s, liveness)
        owner.broker = Broker(
            "tcp://127.0.0.1:*",
            heartbeat_s=heartbeat_s,
            liveness=liveness,
            security=None,
            on_messages=lambda said: [owner.on_message(peer, message) for peer, message in said],
            on_lost=owner.on_lost,
        )
        brokers.append(owner.broker)
        owner.endpoint = owner.broker.start()
        return owner

    yield start
    for broker in brokers:
        broker.stop()


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def connect(context: zmq.Context, endpoint: str, identity: bytes) -> zmq.Socket:
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.ROUTING_ID, identity)
    dealer.setsockopt(zmq.SNDTIMEO, int(SETTLE_S * 1000))  # a broker that stopped reading fails the test
    dealer.connect(endpoint)
    return dealer


def broker_alive(broker: Broker) -> bool:
    return broker._thread.is_alive()  # the one thread that owns the ROUTER


def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def replies(dealer: zmq.Socket) -> list[protocol.AnyBridgeMsg]:
    """What the broker has sent this DEALER so far."""
    received = []
    while dealer.poll(0):
        received.append(protocol.decode(dealer.recv_multipart()))
    return received


def reply_within(dealer: zmq.Socket, timeout_s: float) -> protocol.AnyBridgeMsg | None:
    """The broker's next reply that is not a heartbeat."""
    deadline = time.monotonic() + timeout_s
    while dealer.poll(max(0, int((deadline - time.monotonic()) * 1000))):
        message = protocol.decode(dealer.recv_multipart())
        if not isinstance(message, protocol.Heartbeat):
            return message
    return None


# -- the frames ------------------------------------------------------------------------------


def body(message: protocol.BridgeMsg) -> bytes:
    return msgspec.msgpack.encode(message)


def as_map(message: protocol.BridgeMsg) -> dict:
    return msgspec.msgpack.decode(body(message))


def not_utf8(message: protocol.BridgeMsg, text: str, rng: random.Random) -> bytes:
    """message's body with one of its strings (text, ASCII) replaced by as many bytes that are not UTF-8."""
    encoded = msgspec.msgpack.encode(text)
    return body(message).replace(encoded, encoded[: -len(text)] + bytes(rng.randrange(0xF8, 0x100) for _ in text))


class Fuzzer:
    """Frames of every kind, each knowing what the broker must make of it."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.malformed: list[Callable[[], Frame]] = [
            self.wrong_part_count,
            self.empty_parts,
            self.foreign_header,
            self.random_body,
            self.unknown_type,
            self.hello_of_wrong_types,
            self.truncated,
            self.trailing_bytes,
            self.not_a_map,
            self.report_of_no_upward_message,
            self.string_not_utf8,
            self.nested_too_deep,
        ]

    def frame(self) -> Frame:
        draw = self.rng.random()
        if draw < 0.25:
            return self.valid()
        if draw < 0.35:
            return self.other_version()
        return self.rng.choice(self.malformed)()

    def word(self, size: int = 8) -> str:
        return "".join(self.rng.choices(string.ascii_lowercase, k=size))

    def message(self) -> protocol.BridgeMsg:
        rng = self.rng
        events: list[AnyEvent] = [
            AgentSaid(session_id="ab12cd34", at=time.time(), subtask_id="s1", text=self.word(rng.randrange(200))),
            AgentUsedTool(subtask_id="s1", tool="Bash", detail=f"ls {self.word()}"),
            ToolDecided(subtask_id="s1", tool="Bash", allowed=rng.random() < 0.5, reason=self.word(30)),
        ]
        return rng.choice(
            [
                protocol.Heartbeat(),
                # Huge ints where ints go are still ints: valid.
                protocol.Hello(
                    name=self.word(),
                    slots=rng.choice([1, 8, 2**64 - 1, -(2**63)]),
                    capabilities={"claude": "2.0.14"},
                    running=[protocol.Held(self.word(), rng.randrange(2**63))],
                ),
                protocol.Report(assignment=self.word(), epoch=rng.randrange(2**64), message=RecordAll(events=events)),
                protocol.Leaving(reason=self.word()),
                protocol.Chunk(transfer=self.word(), index=0, count=1, data=rng.randbytes(rng.randrange(2000))),
                protocol.Welcome(heartbeat_s=1.0, liveness=3),  # the wrong way round, but a frame of the protocol
            ]
        )

    def valid(self) -> Frame:
        message = self.message()
        hello = isinstance(message, protocol.Hello)
        if self.rng.random() < 0.5:
            return Frame([protocol.HEADER, body(message)], "valid", hello=hello)
        # Fields it does not know are skipped, as a newer minor revision may add some; shallow nesting too.
        added = {f"later_{self.word(4)}": self.rng.choice([2**64 - 1, None, [[[["deep enough"]]]], {"k": b"\x00"}])}
        return Frame([protocol.HEADER, msgspec.msgpack.encode(as_map(message) | added)], "valid", hello=hello)

    def other_version(self) -> Frame:
        version = self.rng.choice([*VERSIONS, str(self.rng.randrange(2, 10**9))])
        header = protocol.PROTOCOL if version == "" and self.rng.random() < 0.5 else b"APB/" + version.encode()
        payload = self.rng.choice([body(self.message()), self.rng.randbytes(40), b""])
        return Frame([header, payload], "refused", version)

    def wrong_part_count(self) -> Frame:
        pool = [protocol.HEADER, body(self.message()), self.rng.randbytes(16), b""]
        return Frame([self.rng.choice(pool) for _ in range(self.rng.choice([1, 3, 5]))], "malformed")

    def empty_parts(self) -> Frame:
        parts = self.rng.choice([[b""], [b"", b""], [protocol.HEADER, b""], [b"", body(self.message())]])
        return Frame(parts, "malformed")

    def foreign_header(self) -> Frame:
        header = self.rng.randbytes(self.rng.randrange(12))
        while header.startswith(protocol.PROTOCOL):
            header = self.rng.randbytes(self.rng.randrange(12))
        header = self.rng.choice([header, b"apb/1", b"APB1", b"/1", b" APB/1", b"HTTP/1.1", b"ZMTP/3.1"])
        return Frame([header, body(self.message())], "malformed")

    def random_body(self) -> Frame:
        return Frame([protocol.HEADER, self.rng.randbytes(self.rng.randrange(300))], "malformed")

    def unknown_type(self) -> Frame:
        tag = self.rng.choice([self.word(), "", "HELLO", "hello ", 7, None, ["hello"]])
        return Frame([protocol.HEADER, msgspec.msgpack.encode({"type": tag, "name": "w", "slots": 1})], "malformed")

    def hello_of_wrong_types(self) -> Frame:
        wrong: dict[str, list[Any]] = {
            "name": [42, 2**64 - 1, None, True, 1.5, b"\x00", ["w"], {"w": 1}],
            "slots": ["4", 1.5, True, None, [1], {"n": 1}],
            "capabilities": [["claude"], "claude", 3],
            "repos": [{"r": "abc"}, ["r"], 2**64 - 1],
            "running": [[1, 2], "a1", [{"assignment": 2**64 - 1, "epoch": 1}], [{"assignment": "a", "epoch": "1"}]],
        }
        fields = {"type": "hello", "name": "w", "slots": 1}
        name = self.rng.choice([*wrong, "missing"])
        if name == "missing":
            del fields[self.rng.choice(["name", "slots"])]
        else:
            fields[name] = self.rng.choice(wrong[name])
        return Frame([protocol.HEADER, msgspec.msgpack.encode(fields)], "malformed")

    def truncated(self) -> Frame:
        whole = body(self.message())
        return Frame([protocol.HEADER, whole[: self.rng.randrange(len(whole))]], "malformed")

    def trailing_bytes(self) -> Frame:
        return Frame([protocol.HEADER, body(self.message()) + self.rng.randbytes(self.rng.randint(1, 8))], "malformed")

    def not_a_map(self) -> Frame:
        value = self.rng.choice([None, 7, 2**64 - 1, -1, 1.5, "hello", b"bin", [], ["hello", "w", 1], True])
        return Frame([protocol.HEADER, msgspec.msgpack.encode(value)], "malformed")

    def report_of_no_upward_message(self) -> Frame:
        inner = self.rng.choice(
            [{"msg": self.word()}, {"kind": "agent_said", "subtask_id": "s1", "text": "hi"}, "record_all", None]
        )
        report = {"type": "report", "assignment": "a", "epoch": 1, "message": inner}
        return Frame([protocol.HEADER, msgspec.msgpack.encode(report)], "malformed")

    def string_not_utf8(self) -> Frame:
        hello = protocol.Hello(name="worker-name", slots=1, capabilities={"claude": "2.0.14"})
        text = self.rng.choice(["hello", "worker-name", "claude", "2.0.14"])
        return Frame([protocol.HEADER, not_utf8(hello, text, self.rng)], "malformed")

    def nested_too_deep(self) -> Frame:
        depth = self.rng.randint(DEEP // 2, DEEP)
        deep = b"\x82" + msgspec.msgpack.encode("type") + msgspec.msgpack.encode("heartbeat")
        deep += msgspec.msgpack.encode("later") + b"\x91" * depth + b"\xc0"  # [[[...[nil]...]]]
        return Frame([protocol.HEADER, deep], "malformed")


@dataclass
class Expected:
    """What the frames sent so far must have made the broker do, per fuzzing peer and in all."""

    frames: Counter[Kind] = field(default_factory=Counter)
    welcomes: Counter[bytes] = field(default_factory=Counter)
    refusals: dict[bytes, list[str]] = field(default_factory=dict)  # peer -> its Refused/Disconnect, in order
    losses: int = 0  # peers that announced themselves and then sent a malformed frame
    announced: set[bytes] = field(default_factory=set)

    def sent(self, peer: bytes, frame: Frame) -> None:
        self.frames[frame.kind] += 1
        if frame.kind == "valid":
            if frame.hello:
                self.welcomes[peer] += 1
                self.announced.add(peer)
            return
        self.refusals.setdefault(peer, []).append(f"refused: {frame.version}" if frame.kind == "refused" else "")
        if peer in self.announced:
            self.losses += 1
            self.announced.discard(peer)


def direct_replies(received: list[protocol.AnyBridgeMsg]) -> list[str]:
    """The broker's own replies to bad frames, in order: "refused: <the version its reason names>", or ""."""
    out = []
    for message in received:
        if isinstance(message, protocol.Refused):
            out.append(f"refused: {message.reason.split('protocol version ', 1)[1].split(' is not spoken', 1)[0]}")
        elif isinstance(message, protocol.Disconnect):
            out.append("")
    return out


# -- the tests -------------------------------------------------------------------------------


def test_ten_thousand_fuzzed_frames_are_counted_and_a_real_worker_is_served_afterwards(
    start_broker: StartBroker, context: zmq.Context
) -> None:
    owner = start_broker(FUZZ_HEARTBEAT_S, FUZZ_LIVENESS)
    assert owner.broker is not None
    broker = owner.broker
    peers = [f"fuzz-{n:02}".encode() for n in range(DEALERS)]
    dealers = {peer: connect(context, owner.endpoint, peer) for peer in peers}
    received: dict[bytes, list[protocol.AnyBridgeMsg]] = {peer: [] for peer in peers}
    fuzzer, rng, expected = Fuzzer(random.Random(SEED)), random.Random(SEED + 1), Expected()

    for start in range(0, FRAMES, BATCH):
        for _ in range(start, min(start + BATCH, FRAMES)):
            peer, frame = rng.choice(peers), fuzzer.frame()
            dealers[peer].send_multipart(frame.parts)
            expected.sent(peer, frame)
        for peer, dealer in dealers.items():
            received[peer] += replies(dealer)
        assert broker_alive(broker), f"the broker's thread died within the first {start + BATCH} frames"

    assert wait_until(lambda: broker.counters.frames_in == FRAMES or not broker_alive(broker), SETTLE_S)
    assert broker_alive(broker)
    assert broker.counters.frames_in == FRAMES
    assert broker.counters.malformed == expected.frames["malformed"] + expected.frames["refused"]
    assert len(owner.said) == expected.frames["valid"]

    def all_replies_read() -> bool:
        for peer, dealer in dealers.items():
            received[peer] += replies(dealer)
        return all(
            len(direct_replies(received[peer])) == len(expected.refusals.get(peer, []))
            and sum(isinstance(m, protocol.Welcome) for m in received[peer]) == expected.welcomes[peer]
            for peer in peers
        )

    all_replies_read_in_time = wait_until(all_replies_read, SETTLE_S)
    for peer in peers:
        assert direct_replies(received[peer]) == expected.refusals.get(peer, []), peer
        assert sum(isinstance(m, protocol.Welcome) for m in received[peer]) == expected.welcomes[peer], peer
    assert all_replies_read_in_time
    malformed_losses = [reason for _, reason, _ in owner.lost if reason.startswith("malformed frame")]
    assert len(malformed_losses) == expected.losses
    assert expected.frames["valid"] > 2000 and expected.frames["refused"] > 800  # the mix is what it says

    link_id = b"worker-after-fuzz"
    fatal: list[str] = []
    link = Link(
        owner.endpoint,
        link_id,
        keys_=None,
        heartbeat_s=FUZZ_HEARTBEAT_S,
        liveness=FUZZ_LIVENESS,
        hello=lambda: protocol.Hello(name="after-fuzz", slots=1),
        on_message=lambda message: None,
        on_fatal=fatal.append,
    )
    link.start()
    try:
        assert link.welcomed.wait(WELCOME_S), "the worker was not welcomed after the fuzzing"
        welcomed_at = time.monotonic()
        assert wait_until(lambda: owner.heartbeat_after(link_id, welcomed_at), WELCOME_S)
    finally:
        link.stop()
    assert fatal == []
    assert broker_alive(broker)
    assert broker.counters.malformed == expected.frames["malformed"] + expected.frames["refused"]


def test_a_peer_silent_after_its_hello_is_lost_within_heartbeat_times_liveness_plus_one_second(
    start_broker: StartBroker, context: zmq.Context
) -> None:
    heartbeat_s, liveness = 0.2, 3
    owner = start_broker(heartbeat_s, liveness)
    dealer = connect(context, owner.endpoint, b"silent")
    said_at = time.monotonic()
    dealer.send_multipart(protocol.encode(protocol.Hello(name="silent", slots=1)))

    assert wait_until(lambda: bool(owner.lost), heartbeat_s * liveness + 1.0 - (time.monotonic() - said_at))
    [(peer, reason, lost_at)] = owner.lost
    assert peer == b"silent"
    assert "silent for" in reason
    assert lost_at - said_at > heartbeat_s * liveness  # not a moment before its liveness ran out


def test_a_malformed_frame_after_a_hello_disconnects_the_peer(start_broker: StartBroker, context: zmq.Context) -> None:
    owner = start_broker(1.0, 3)  # its silence could not be lost before 3 s: it is the frame that loses it
    dealer = connect(context, owner.endpoint, b"garbling")
    dealer.send_multipart(protocol.encode(protocol.Hello(name="garbling", slots=1)))
    assert isinstance(reply_within(dealer, WELCOME_S), protocol.Welcome)

    dealer.send_multipart([protocol.HEADER, b"\xc1"])  # an opcode msgpack never uses

    assert wait_until(lambda: bool(owner.lost), 1.0)
    [(peer, reason, _)] = owner.lost
    assert peer == b"garbling"
    assert reason.startswith("malformed frame")
    assert isinstance(reply_within(dealer, WELCOME_S), protocol.Disconnect)
    assert owner.broker is not None and owner.broker.counters.malformed == 1


@pytest.mark.parametrize(
    "make_body",
    [
        pytest.param(lambda rng: Fuzzer(rng).string_not_utf8().parts[1], id="a string that is not utf-8"),
        pytest.param(lambda rng: Fuzzer(rng).nested_too_deep().parts[1], id="arrays nested past the recursion limit"),
    ],
)
def test_a_body_msgspec_fails_on_with_no_decode_error_is_malformed_too(
    start_broker: StartBroker, context: zmq.Context, make_body: Callable[[random.Random], bytes]
) -> None:
    owner = start_broker(1.0, 3)
    assert owner.broker is not None
    broker = owner.broker
    dealer = connect(context, owner.endpoint, b"odd")

    dealer.send_multipart([protocol.HEADER, make_body(random.Random(SEED))])

    assert wait_until(lambda: broker.counters.malformed == 1 or not broker_alive(broker), SETTLE_S)
    assert broker_alive(broker)
    assert isinstance(reply_within(dealer, WELCOME_S), protocol.Disconnect)
    assert broker.counters.frames_in == broker.counters.malformed == 1
