"""Child processes in their own process group, so that one kill takes every descendant with it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

# How long a group gets between SIGTERM and SIGKILL.
TERM_GRACE_S = 2.0
# The kernel kills the child when the thread that started it dies (PR_SET_PDEATHSIG).
_SETPRIV = shutil.which("setpriv")
# By full path: a child may be given a PATH without /usr/bin.
_DIE_WITH_PARENT = (_SETPRIV, "--pdeathsig", "KILL", "--") if _SETPRIV else ()
# What run_bounded is waiting on, so that an ending pa can kill it rather than wait.
_running: dict[subprocess.Popen[bytes], Path] = {}  # each command run_bounded waits on, and its directory
_running_lock = threading.Lock()


def spawn(
    argv: Sequence[str],
    *,
    cwd: str | Path,
    env: Mapping[str, str] | None = None,
    stdin: int | None = subprocess.DEVNULL,
    stdout: int | None = subprocess.PIPE,
    stderr: int | None = subprocess.PIPE,
) -> subprocess.Popen[bytes]:
    """Start argv as the leader of a new session (and so of a new process group).

    Where util-linux's setpriv exists, the child also dies with pa: a new session escapes the
    terminal's signals, so without it a SIGKILLed pa would leave its agents running.
    """
    return subprocess.Popen(
        [*_DIE_WITH_PARENT, *argv],
        cwd=str(cwd),
        env=dict(env) if env is not None else None,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )


def kill_group(proc: subprocess.Popen[bytes], grace_s: float = TERM_GRACE_S) -> int | None:
    """SIGTERM the process group, give the leader grace_s, then SIGKILL whatever is left. Idempotent."""
    _signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    # Descendants that ignored SIGTERM (or outlived the leader) still hold the group id.
    _signal_group(proc.pid, signal.SIGKILL)
    try:
        return proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        return None


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def run_bounded(
    argv: Sequence[str] | str,
    *,
    cwd: str | Path,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    brief: bool = False,
) -> tuple[int | None, bytes, bool]:
    """Run to completion in its own group with a timeout; returns (exit code, combined output, timed out).

    A str is a shell command line. On timeout the whole group is killed and the output gathered so
    far is returned. brief: a command that ends by itself in moments (a git query, no hooks) is not
    made to die with pa, which spares it starting setpriv: one git query in two's CPU.
    """
    command = ["/bin/sh", "-c", argv] if isinstance(argv, str) else list(argv)
    proc = subprocess.Popen(
        [*(() if brief else _DIE_WITH_PARENT), *command],
        cwd=str(cwd),
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    with _running_lock:
        _running[proc] = Path(cwd).resolve()
    try:
        out, _ = proc.communicate(timeout=timeout_s)
        return proc.returncode, out, False
    except subprocess.TimeoutExpired:
        kill_group(proc)
        try:
            out, _ = proc.communicate(timeout=TERM_GRACE_S)
        except subprocess.TimeoutExpired:
            out = b""
        return proc.returncode, out or b"", True
    finally:
        with _running_lock:
            _running.pop(proc, None)


def kill_running(within: Sequence[Path] = ()) -> None:
    """Kill the group of every command run_bounded is waiting on (a check, a setup step) in one of the
    directories within (all of them if none is given): their run is ending.

    Their waits then return at once, so that the actors blocked in them can stop. Another run in the same
    process (the server's) works in other directories, and its commands go on.
    """
    places = [Path(place).resolve() for place in within]
    with _running_lock:
        running = [proc for proc, cwd in _running.items() if not places or any(cwd.is_relative_to(p) for p in places)]
    for proc in running:
        _signal_group(proc.pid, signal.SIGKILL)
