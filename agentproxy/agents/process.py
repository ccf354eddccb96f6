"""One agent CLI process, whatever its vendor: its own process group, its stdout lines handed on.

A reader thread hands every stdout line to a callback (the worker actor turns it into a message to
itself); a second thread keeps a bounded tail of stderr for error reports. ``close()`` ends the
session politely (stdin closed) and then kills the group if it lingers.
"""

from __future__ import annotations

import collections
import contextlib
import os
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from agentproxy import procs
from agentproxy.errors import AgentError

EXIT_WAIT_S = 5.0
READER_JOIN_S = 5.0
READ_BYTES = 1 << 16


class AgentProcess:
    """A running CLI. Methods are called from the owning actor's thread; callbacks run on reader threads."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        on_lines: Callable[[list[bytes]], None],
        on_exit: Callable[[int | None], None],
        stderr_lines: int = 40,
        stdin: bool = True,
    ) -> None:
        """stdin False: the agent reads nothing from its host (its input is /dev/null, never a pipe it waits on)."""
        try:
            self._proc = procs.spawn(argv, cwd=cwd, env=env, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)
        except OSError as exc:  # e.g. the binary vanished since the command was resolved
            raise AgentError(f"cannot start the agent {argv[0]!r}: {exc.strerror or exc}") from exc
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=stderr_lines)
        self._write_lock = threading.Lock()
        self._on_lines = on_lines
        self._on_exit = on_exit
        self._stdout_reader = threading.Thread(target=self._read_stdout, name=f"agent-out-{self.pid}", daemon=True)
        self._stderr_reader = threading.Thread(target=self._read_stderr, name=f"agent-err-{self.pid}", daemon=True)
        self._stdout_reader.start()
        self._stderr_reader.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def stderr_tail(self) -> str:
        return "\n".join(self._stderr_tail)

    def send(self, line: bytes) -> bool:
        """Write one stream-json line; False when the process no longer reads its stdin."""
        stdin = self._proc.stdin
        if stdin is None:
            return False
        try:
            with self._write_lock:
                stdin.write(line)
                stdin.flush()
            return True
        except (BrokenPipeError, ValueError, OSError):
            return False

    def close(self) -> int | None:
        """End the session: close stdin, wait briefly, then kill the whole group. Idempotent."""
        with contextlib.suppress(OSError):
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=EXIT_WAIT_S)
        return self.kill()

    def kill(self) -> int | None:
        """Kill the process group now and join the reader threads (bounded)."""
        code = procs.kill_group(self._proc)
        for reader in (self._stdout_reader, self._stderr_reader):
            if reader is not threading.current_thread():
                reader.join(timeout=READER_JOIN_S)
        return code

    def _read_stdout(self) -> None:
        """Hand on every complete line read at once: a flood costs one message per read, not per line."""
        assert self._proc.stdout is not None
        fd, partial = self._proc.stdout.fileno(), b""
        while chunk := _read(fd):
            *lines, partial = (partial + chunk).split(b"\n")
            if lines := [line for line in lines if line.strip()]:
                self._on_lines(lines)
        if partial.strip():
            self._on_lines([partial])
        try:
            code = self._proc.wait(timeout=EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            code = None  # stdout closed but the leader lingers: the watchdog will kill it
        self._on_exit(code)

    def _read_stderr(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self._stderr_tail.append(line.decode("utf-8", "replace").rstrip())


def _read(fd: int) -> bytes:
    """What the pipe holds now (up to READ_BYTES), waiting for something; b"" at its end."""
    try:
        return os.read(fd, READ_BYTES)
    except OSError:  # closed under us by kill: the end
        return b""
