"""Frames to send, handed from any thread to the one thread that owns a ZeroMQ socket.

pyzmq sockets are not thread-safe: senders put frames in a queue and write a byte to a pipe whose
read end the owner polls beside its socket, so it wakes at once and sends them itself.
"""

from __future__ import annotations

import contextlib
import os
import queue


class Outbox:
    def __init__(self) -> None:
        self._frames: queue.SimpleQueue[list[bytes]] = queue.SimpleQueue()
        self.fd, self._wake = os.pipe()
        os.set_blocking(self.fd, False)
        os.set_blocking(self._wake, False)

    def put(self, frames: list[bytes]) -> None:
        self._frames.put(frames)
        with contextlib.suppress(BlockingIOError, OSError):  # a full pipe already wakes the owner
            os.write(self._wake, b"\0")

    def drain(self) -> list[list[bytes]]:
        """On the owner's thread: everything put so far, in order."""
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self.fd, 4096):
                pass
        taken = []
        while True:
            try:
                taken.append(self._frames.get_nowait())
            except queue.Empty:
                return taken

    def close(self) -> None:
        for fd in (self.fd, self._wake):
            with contextlib.suppress(OSError):
                os.close(fd)
