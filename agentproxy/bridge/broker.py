"""The broker: the supervisor's end of the bridge, one thread that owns the ROUTER socket.

It frames and unframes (protocol.encode/decode) and keeps each announced worker's liveness (any
frame counts; heartbeats both ways). It tells its owner what arrived (on_messages: the frames read
at once, in order, so that a flood costs the owner one message a batch) and which worker is gone
(on_lost). What a message means, and whether it is stale, is the Bridge actor's business.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import zmq

from agentproxy import config
from agentproxy.bridge import keys, protocol
from agentproxy.bridge.outbox import Outbox
from agentproxy.errors import UsageError
from agentproxy.options import ListenOptions

log = logging.getLogger("agentproxy.bridge")

SEND_HWM = 10_000  # frames queued for one worker before it counts as not reading
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
RECEIVE_BATCH = 1000  # frames read before the outbox and the clock get their turn

Said = tuple[bytes, protocol.AnyBridgeMsg]  # a worker's routing id, and what it said


@dataclass(frozen=True)
class Security:
    """CURVE, the Guide's Ironhouse: the supervisor's secret certificate and the workers it admits."""

    secret_file: Path
    authorized_dir: Path
    on_refused: Callable[[str], None]  # a refused worker's public key, z85


@dataclass
class Counters:
    frames_in: int = 0
    frames_out: int = 0
    malformed: int = 0
    workers_lost: int = 0


class Broker:
    def __init__(
        self,
        endpoint: str,
        *,
        heartbeat_s: float,
        liveness: int,
        security: Security | None,
        on_messages: Callable[[list[Said]], object],
        on_lost: Callable[[bytes, str], object],
    ) -> None:
        self.endpoint = endpoint
        self.heartbeat_s = heartbeat_s
        self.liveness = liveness
        self.security = security
        self.on_messages = on_messages
        self._said: list[Said] = []  # read, not yet handed over
        self.on_lost = on_lost
        self.counters = Counters()
        self.outbox = Outbox()
        self.bound = ""  # the endpoint actually bound (a wildcard port resolved)
        self.last_seen: dict[bytes, float] = {}  # announced workers -> when a frame of theirs last came
        self._stop = threading.Event()
        self._started = threading.Event()
        self._error = ""
        self._thread = threading.Thread(target=self._run, name="bridge-broker", daemon=True)

    # -- any thread ------------------------------------------------------------------------

    def start(self) -> str:
        """Bind (on the broker's thread); a bad or busy address is the user's error."""
        self._thread.start()
        if not self._started.wait(START_TIMEOUT_S):
            raise UsageError(f"--listen {self.endpoint}: the broker did not start within {START_TIMEOUT_S:g}s")
        if self._error:
            raise UsageError(f"--listen {self.endpoint}: {self._error}")
        return self.bound

    def send(self, peer: bytes, message: protocol.BridgeMsg) -> None:
        self.outbox.put([peer, *protocol.encode(message)])

    def stop(self) -> None:
        self._stop.set()
        self.outbox.put([])  # wakes the thread
        self._thread.join(STOP_TIMEOUT_S)
        self.outbox.close()

    # -- the broker's thread ---------------------------------------------------------------

    def _run(self) -> None:
        context = zmq.Context()
        authenticator = None
        router = context.socket(zmq.ROUTER)
        try:
            router.setsockopt(zmq.ROUTER_MANDATORY, 1)
            router.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a worker reconnecting under its id takes its place
            router.setsockopt(zmq.MAXMSGSIZE, protocol.MAX_MESSAGE_BYTES)
            router.setsockopt(zmq.SNDHWM, SEND_HWM)
            router.setsockopt(zmq.RCVHWM, SEND_HWM)
            router.setsockopt(zmq.LINGER, 0)
            if self.security is not None:
                authorized = keys.AuthorizedKeys(self.security.authorized_dir, self.security.on_refused)
                authenticator = keys.start_authenticator(context, authorized)
                keys.make_server_secure(router, self.security.secret_file)
            router.bind(self.endpoint)
            self.bound = router.getsockopt_string(zmq.LAST_ENDPOINT)
        except zmq.ZMQError as exc:
            self._error = str(exc)
        except UsageError as exc:
            self._error = str(exc)
        self._started.set()
        try:
            if not self._error:
                self._serve(router)
        finally:
            router.close(linger=0)
            if authenticator is not None:
                authenticator.stop()
            context.term()

    def _serve(self, router: zmq.Socket) -> None:
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(self.outbox.fd, zmq.POLLIN)
        next_beat = time.monotonic() + self.heartbeat_s
        while not self._stop.is_set():
            ready = dict(poller.poll(int(max(0.0, next_beat - time.monotonic()) * 1000)))
            if router in ready:
                self._receive(router)
            if self.outbox.fd in ready:
                for frames in self.outbox.drain():
                    if frames:
                        self._send(router, frames)
            if time.monotonic() >= next_beat:
                self._beat(router)
                next_beat = time.monotonic() + self.heartbeat_s

    def _receive(self, router: zmq.Socket) -> None:
        try:
            self._read(router)
        finally:
            self._hand_over()

    def _read(self, router: zmq.Socket) -> None:
        for _ in range(RECEIVE_BATCH):
            try:
                parts = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.counters.frames_in += 1
            peer, body = parts[0], parts[1:]
            try:
                message = protocol.decode(body)
            except protocol.VersionMismatch as exc:
                self._malformed(router, peer, protocol.Refused(reason=str(exc)), str(exc))
                continue
            except protocol.MalformedFrame as exc:
                self._malformed(router, peer, protocol.Disconnect(reason=f"malformed frame: {exc}"), str(exc))
                continue
            if isinstance(message, protocol.Hello) or peer in self.last_seen:
                self.last_seen[peer] = time.monotonic()
            self._said.append((peer, message))

    def _hand_over(self) -> None:
        """What was read, to the owner; a failure of the owner's is logged, never the broker's end."""
        said, self._said = self._said, []
        if said:
            try:
                self.on_messages(said)
            except Exception:
                log.exception("the bridge's owner failed to take %d frames", len(said))

    def _malformed(self, router: zmq.Socket, peer: bytes, reply: protocol.BridgeMsg, why: str) -> None:
        """Counted; the peer is told why and forgotten (its work, if any, is requeued)."""
        self.counters.malformed += 1
        self._send(router, [peer, *protocol.encode(reply)])
        self._lose(peer, f"malformed frame ({why})")

    def _send(self, router: zmq.Socket, frames: list[bytes]) -> None:
        try:
            router.send_multipart(frames, zmq.NOBLOCK)
            self.counters.frames_out += 1
        except zmq.Again:
            self._lose(frames[0], "not reading what it is sent")
        except zmq.ZMQError as exc:  # EHOSTUNREACH under ROUTER_MANDATORY: no such peer connected
            self._lose(frames[0], f"unreachable ({exc.strerror})")

    def _beat(self, router: zmq.Socket) -> None:
        deadline = self.heartbeat_s * self.liveness
        now = time.monotonic()
        for peer, seen in list(self.last_seen.items()):
            if now - seen > deadline:
                self._lose(peer, f"silent for {now - seen:.1f}s (heartbeat {self.heartbeat_s:g}s x {self.liveness})")
            else:
                self._send(router, [peer, *protocol.encode(protocol.Heartbeat())])

    def _lose(self, peer: bytes, why: str) -> None:
        self._hand_over()  # what the peer said before goes first
        if self.last_seen.pop(peer, None) is not None:
            self.counters.workers_lost += 1
            log.info("worker %r lost: %s", peer, why)
            self.on_lost(peer, why)


def listen(
    options: ListenOptions,
    on_messages: Callable[[list[Said]], object],
    on_lost: Callable[[bytes, str], object],
    on_refused: Callable[[str], None],
) -> tuple[Broker, str]:
    """A started broker for --listen, and what to tell the user about it (where the workers' certificate is)."""
    security, about = None, "no authentication (--listen-insecure)"
    if options.secure:
        public, secret, created = keys.supervisor_keys(config.config_dir())
        authorized = options.authorized_keys or keys.authorized_keys_dir(config.config_dir())
        security = Security(secret_file=secret, authorized_dir=authorized, on_refused=on_refused)
        made = "made now" if created else "made earlier"
        about = f"workers need the supervisor's public certificate {public} ({made}); their keys go in {authorized}"
    broker = Broker(
        options.endpoint,
        heartbeat_s=options.heartbeat_s,
        liveness=options.liveness,
        security=security,
        on_messages=on_messages,
        on_lost=on_lost,
    )
    bound = broker.start()
    return broker, f"listening for workers on {bound}: {about}"
