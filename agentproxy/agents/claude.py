"""One Claude Code CLI process, driven headless over stream-json with the control protocol.

The process runs in its own process group. A reader thread hands every stdout line to a callback
(the ClaudeWorker turns it into a message to itself); a second thread keeps a bounded tail of
stderr for error reports. ``close()`` ends the session politely (stdin closed) and then kills the
group if it lingers.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shlex
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from agentproxy import procs
from agentproxy.child_env import child_environment
from agentproxy.errors import AgentError, AgentNotFoundError, UsageError

# Session variables a parent Claude Code session leaks into its children; configuration
# variables (CLAUDE_CODE_MAX_RETRIES, CLAUDE_CODE_USE_BEDROCK, ...) are the user's intent and pass.
_SESSION_VARS = ("CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT", "CLAUDE_CODE_SSE_PORT", "CLAUDE_CODE_SESSION_ID")
_SESSION_PREFIXES = ("CLAUDE_CODE_SESSION_", "CLAUDE_CODE_IPC_", "CLAUDE_CODE_REMOTE_")

EXIT_WAIT_S = 5.0
READER_JOIN_S = 5.0
READ_BYTES = 1 << 16


def resolve_agent_command(claude_bin: str | None) -> list[str]:
    """The argv prefix that starts the agent: --claude-bin / CLAUDE_BIN (may hold arguments), else `claude`."""
    spec = claude_bin or os.environ.get("CLAUDE_BIN") or "claude"
    try:
        argv = shlex.split(spec)
    except ValueError as exc:  # an unclosed quote or a trailing backslash
        raise UsageError(f"the Claude Code command (--claude-bin / CLAUDE_BIN) cannot be parsed: {exc}") from exc
    if not argv:
        raise AgentNotFoundError("the Claude Code command is empty: set --claude-bin or CLAUDE_BIN")
    found = shutil.which(argv[0])
    if found is None:
        raise AgentNotFoundError(
            f"Claude Code CLI not found: {argv[0]!r} is not an executable on PATH;"
            " install it (npm i -g @anthropic-ai/claude-code) or pass --claude-bin / set CLAUDE_BIN"
        )
    return [found, *argv[1:]]


def agent_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The user's environment minus a parent Claude Code session's own variables and the supervisor's keys.

    The agent's own credentials (ANTHROPIC_*) pass.
    """
    env = child_environment(base)
    for key in list(env):
        if key in _SESSION_VARS or key.startswith(_SESSION_PREFIXES):
            del env[key]
    return env


def headless_argv(command: Sequence[str], *, resume: str | None = None, model: str | None = None) -> list[str]:
    argv = [
        *command,
        "-p",
        "--input-format",
        "stream-json",
        "--output-format",
        "stream-json",
        "--verbose",
        "--permission-prompt-tool",
        "stdio",
    ]
    if resume:
        argv.append(f"--resume={resume}")
    if model:
        argv += ["--model", model]
    return argv


class ClaudeProcess:
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
    ) -> None:
        try:
            self._proc = procs.spawn(argv, cwd=cwd, env=env, stdin=subprocess.PIPE)
        except OSError as exc:  # e.g. the binary vanished since the command was resolved
            raise AgentError(f"cannot start the agent {argv[0]!r}: {exc.strerror or exc}") from exc
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=stderr_lines)
        self._write_lock = threading.Lock()
        self._on_lines = on_lines
        self._on_exit = on_exit
        self._stdout_reader = threading.Thread(target=self._read_stdout, name=f"claude-out-{self.pid}", daemon=True)
        self._stderr_reader = threading.Thread(target=self._read_stderr, name=f"claude-err-{self.pid}", daemon=True)
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
