"""The working directory as a git repository: baseline, changes, commits. Git is run as a subprocess."""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agentproxy import config, procs
from agentproxy.errors import WorkdirError, WorkspaceError

GIT_TIMEOUT_S = 60.0
BASELINE_MESSAGE = "agentproxy: baseline"
MAX_NEW_FILES_SHOWN = 50
# Used only when the user has no git identity, so that a commit never fails on a fresh machine.
FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "agentproxy",
    "GIT_AUTHOR_EMAIL": "agentproxy@localhost",
    "GIT_COMMITTER_NAME": "agentproxy",
    "GIT_COMMITTER_EMAIL": "agentproxy@localhost",
}


def prepare_workdir(path: Path) -> Path:
    """The absolute directory to work in, created if missing; never the home directory or a root."""
    resolved = Path(os.path.expanduser(str(path))).resolve()
    if resolved == Path.home().resolve() or resolved.parent == resolved:
        raise WorkdirError(f"refusing to work in {resolved}: pick a project directory (-d DIR)")
    if resolved.exists() and not resolved.is_dir():
        raise WorkdirError(f"working directory {resolved} is a file, not a directory")
    try:
        resolved.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkdirError(f"cannot create working directory {resolved}: {exc.strerror or exc}") from exc
    if not os.access(resolved, os.W_OK | os.X_OK):
        raise WorkdirError(f"working directory {resolved} is not writable")
    return resolved


@contextmanager
def exclusive(directory: Path) -> Iterator[None]:
    """One pa at a time per working directory: a second would edit and commit under the first.

    The lock is the kernel's (flock): it goes away with the process, however pa ends.
    """
    locks = config.data_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(str(Path(directory).resolve()).encode()).hexdigest()[:16]
    with open(locks / f"{name}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkdirError(f"another pa is working in {directory}; wait for it to finish") from None
        yield


class Workspace:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def ensure_repo(self) -> bool:
        """Make the directory a git repository with a baseline commit, if it is not one; True if it did."""
        inside = self._git("rev-parse", "--is-inside-work-tree", check=False)
        if inside.strip() == "true":
            return False
        self._git("init", "-q")
        self._git("add", "-A")
        self._git("commit", "-q", "--allow-empty", "--no-verify", "-m", BASELINE_MESSAGE)
        return True

    def head(self) -> str:
        return self._git("rev-parse", "HEAD").strip()

    def has_changes(self) -> bool:
        return bool(self._git("status", "--porcelain", "--", ".").strip())

    def commit_all(self, message: str) -> str | None:
        """Commit every change under the directory (new files included); the sha, or None if nothing changed.

        Limited to the directory: in a subdirectory of a bigger repo, the user's other changes stay theirs.
        """
        if not self.has_changes():
            return None
        self._git("add", "-A", "--", ".")
        self._git("commit", "-q", "--no-verify", "-m", message, "--", ".")
        return self.head()

    def diff_since(self, rev: str, max_chars: int) -> str:
        """What changed since rev, working tree and new files included, bounded by max_chars."""
        diff = self._git("diff", rev, "--stat", "--patch", "--", ".")
        untracked = self._git("ls-files", "--others", "--exclude-standard", "--", ".").splitlines()
        for name in untracked[:MAX_NEW_FILES_SHOWN]:
            if len(diff) >= max_chars:
                break
            # --no-index exits 1 when the files differ, which they always do here.
            diff += self._git("diff", "--no-index", "--", os.devnull, name, check=False)
        if len(untracked) > MAX_NEW_FILES_SHOWN:
            diff += f"\n… and {len(untracked) - MAX_NEW_FILES_SHOWN} more new files"
        return diff if len(diff) <= max_chars else diff[:max_chars] + "\n… (diff truncated)"

    def _git(self, *args: str, check: bool = True) -> str:
        env = {**os.environ, **self._identity()} if args[0] == "commit" else None
        try:
            code, output, timed_out = procs.run_bounded(
                ["git", *args], cwd=self.directory, timeout_s=GIT_TIMEOUT_S, env=env
            )
        except OSError as exc:
            raise WorkspaceError(f"cannot run git in {self.directory}: {exc.strerror or exc}") from exc
        text = output.decode("utf-8", errors="replace")
        if check and (timed_out or code != 0):
            detail = "timed out" if timed_out else (text.strip().splitlines() or [f"exit {code}"])[-1]
            raise WorkspaceError(f"git {args[0]} failed in {self.directory}: {detail}")
        return text

    def _identity(self) -> dict[str, str]:
        email = self._git("config", "user.email", check=False).strip()
        return {} if email else FALLBACK_IDENTITY
