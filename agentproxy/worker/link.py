"""The worker's end of the bridge: one thread that owns the DEALER socket.

It announces the worker (Hello) until the supervisor welcomes it, heartbeats, and announces it again
whenever the supervisor has been silent past its liveness or asks for it (Disconnect): ZeroMQ
reconnects the TCP connection by itself, with backoff, under the same routing id. A handshake the
supervisor refuses (an unknown key) ends the link: on_fatal says why.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import zmq
from zmq.utils.monitor import recv_monitor_message

from agentproxy.bridge import keys, protocol
from agentproxy.bridge.outbox import Outbox

log = logging.getLogger("agentproxy.worker")

RECONNECT_MIN_MS = 100
RECONNECT_MAX_MS = 5000
STOP_TIMEOUT_S = 5.0
HELLO_BACKOFF_MAX_S = 30.0


@dataclass(frozen=True)
class ClientKeys:
    key_file: Path  # the worker's own secret certificate
    server_key_file: Path  # the supervisor's public certificate


class Link:
    def __init__(
        self,
        endpoint: str,
        identity: bytes,
        *,
        keys_: ClientKeys | None,
        heartbeat_s: float,
        liveness: int,
        hello: Callable[[], protocol.Hello],
        on_message: Callable[[protocol.AnyBridgeMsg], None],
        on_fatal: Callable[[str], None],
    ) -> None:
        self.endpoint = endpoint
        self.identity = identity
        self.keys = keys_
        self.heartbeat_s = heartbeat_s
        self.liveness = liveness
        self.hello = hello
        self.on_message = on_message
        self.on_fatal = on_fatal
        self.outbox = Outbox()
        self.welcomed = threading.Event()
        self.leaving = threading.Event()  # handing its work back: it announces itself no more
        # The link thread's own state.
        self._pending: collections.deque[list[bytes]] = collections.deque()
        self._heard = self._next_hello = 0.0
        self._hello_every = heartbeat_s
        self._told_handshake = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bridge-link", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def send(self, message: protocol.BridgeMsg) -> None:
        """From any thread."""
        self.outbox.put(protocol.encode(message))

    def leave(self, reason: str) -> None:
        """Say goodbye (the supervisor requeues this worker's assignments at once) and announce no more."""
        self.leaving.set()
        self.send(protocol.Leaving(reason=reason))

    def stop(self) -> None:
        self._stop.set()
        self.outbox.put([])
        self._thread.join(STOP_TIMEOUT_S)
        self.outbox.close()

    # -- the link's thread -----------------------------------------------------------------

    def _run(self) -> None:
        context = zmq.Context()
        dealer = context.socket(zmq.DEALER)
        monitor = None
        try:
            dealer.setsockopt(zmq.ROUTING_ID, self.identity)
            dealer.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MIN_MS)
            dealer.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_MAX_MS)
            dealer.setsockopt(zmq.MAXMSGSIZE, protocol.MAX_MESSAGE_BYTES)
            dealer.setsockopt(zmq.LINGER, 0)
            if self.keys is not None:
                keys.make_client_secure(dealer, self.keys.key_file, self.keys.server_key_file)
            failures = zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            monitor = dealer.get_monitor_socket(failures | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
            dealer.connect(self.endpoint)
            self._serve(dealer, monitor)
        except Exception as exc:  # a bad endpoint or key: the worker cannot go on
            self.on_fatal(f"the bridge failed: {exc}")
        finally:
            if monitor is not None:
                dealer.disable_monitor()
                monitor.close(linger=0)
            dealer.close(linger=1000)  # the last frames (Leaving) get a moment to leave
            context.term()

    def _serve(self, dealer: zmq.Socket, monitor: zmq.Socket) -> None:
        poller = zmq.Poller()
        for item in (dealer, monitor, self.outbox.fd):
            poller.register(item, zmq.POLLIN)
        self._heard = next_beat = time.monotonic()
        self._announce_now()
        while not self._stop.is_set():
            now = time.monotonic()
            announcing = not self.welcomed.is_set() and not self.leaving.is_set()
            if announcing and now >= self._next_hello:
                self._send(dealer, protocol.encode(self.hello()))
                self._next_hello = now + self._hello_every
                self._hello_every = min(self._hello_every * 2, HELLO_BACKOFF_MAX_S)
            if now >= next_beat:
                self._send(dealer, protocol.encode(protocol.Heartbeat()))
                next_beat = now + self.heartbeat_s
            if self.welcomed.is_set() and now - self._heard > self.heartbeat_s * self.liveness:
                log.warning("the supervisor has been silent for %.1fs: announcing again", now - self._heard)
                self._announce_now()
                continue
            wake = min(next_beat, self._next_hello) if announcing else next_beat
            # Frames that could not go (the send queue was full) wake the loop as soon as there is room.
            poller.modify(dealer, zmq.POLLIN | (zmq.POLLOUT if self._pending else 0))
            ready = dict(poller.poll(int(max(0.0, wake - now) * 1000) + 1))
            if monitor in ready and self._refused(monitor):
                return
            if ready.get(dealer, 0) & zmq.POLLIN:
                self._heard = time.monotonic()
                self._receive(dealer)
            if self.outbox.fd in ready or self._pending:
                self._pending.extend(self.outbox.drain())
                self._flush(dealer)
        self._pending.extend(self.outbox.drain())  # what was handed over before stop (Leaving) still goes
        self._flush(dealer)

    def _announce_now(self) -> None:
        self.welcomed.clear()
        self._hello_every, self._next_hello = self.heartbeat_s, time.monotonic()

    def _send(self, dealer: zmq.Socket, frames: list[bytes]) -> bool:
        """Never blocks: a refused or cut connection must not hold the thread (a heartbeat can be lost)."""
        try:
            dealer.send_multipart(frames, zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def _flush(self, dealer: zmq.Socket) -> None:
        """The outbox's frames in order; what cannot go yet waits for the next turn."""
        while self._pending:
            frames = self._pending[0]
            if frames and not self._send(dealer, frames):
                return
            self._pending.popleft()

    def _receive(self, dealer: zmq.Socket) -> None:
        while True:
            try:
                parts = dealer.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                message = protocol.decode(parts)
            except protocol.VersionMismatch as exc:
                self.on_fatal(f"the supervisor speaks another protocol: {exc}")
                self._stop.set()
                return
            except protocol.MalformedFrame as exc:
                log.warning("ignored a malformed frame from the supervisor: %s", exc)
                continue
            match message:
                case protocol.Heartbeat():
                    pass
                case protocol.Welcome(heartbeat_s=heartbeat_s, liveness=liveness):
                    self.heartbeat_s, self.liveness = heartbeat_s, liveness  # the supervisor's pace
                    self.welcomed.set()
                case protocol.Disconnect(reason=reason):
                    log.info("the supervisor asks to announce again: %s", reason)
                    self._announce_now()
                case protocol.Refused(reason=reason):
                    self.on_fatal(f"refused by the supervisor: {reason}")
                    self._stop.set()
                    return
                case _:
                    self.on_message(message)

    def _refused(self, monitor: zmq.Socket) -> bool:
        event = recv_monitor_message(monitor, zmq.NOBLOCK)
        if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            self.on_fatal(
                f"not authorized by the supervisor at {self.endpoint} (is this worker's key in its authorized keys?)"
            )
            return True
        if event["event"] != zmq.EVENT_HANDSHAKE_FAILED_AUTH and not self._told_handshake:
            self._told_handshake = True  # libzmq retries every 100 ms: said once
            log.warning(
                "the CURVE handshake with %s failed (is --server-key the supervisor's certificate?)", self.endpoint
            )
        return False
