"""The working directory as a git repository: baseline, changes, commits. Git is run as a subprocess."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from agentproxy import config, procs
from agentproxy.child_env import child_environment
from agentproxy.errors import WorkdirError, WorkspaceError
from agentproxy.secret_files import looks_like_secret_file

GIT_TIMEOUT_S = 60.0
_EXCLUDE_LOCK = threading.Lock()
# A commit runs the user's hooks, which may run linters and tests.
COMMIT_TIMEOUT_S = 600.0
COMMIT_HOOKS = ("pre-commit", "prepare-commit-msg", "commit-msg")
BASELINE_MESSAGE = "agentproxy: baseline"
MAX_NEW_FILES_SHOWN = 50
# A gc or maintenance one of pa's commits starts in the background would lock refs other worktrees' git needs.
NO_HOUSEKEEPING = ("-c", "gc.auto=0", "-c", "maintenance.auto=false")
# Git commands that may run a user's hook, which may take long: they die with pa, the others end by themselves.
MAY_RUN_HOOKS = frozenset({"commit", "merge", "hook", "worktree", "checkout", "rebase", "am", "push", "pull"})
# Used only when the user has no git identity, so that a commit never fails on a fresh machine.
FALLBACK_IDENTITY = {
    "GIT_AUTHOR_NAME": "agentproxy",
    "GIT_AUTHOR_EMAIL": "agentproxy@localhost",
    "GIT_COMMITTER_NAME": "agentproxy",
    "GIT_COMMITTER_EMAIL": "agentproxy@localhost",
}


# The system's own directories: a run would git init and commit there. Their subdirectories stay allowed.
SYSTEM_DIRECTORIES = frozenset(
    Path(p)
    for p in (
        "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/opt", "/proc", "/root", "/run",
        "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/Applications", "/Library", "/System", "/Users",
        "/Volumes", "/private", "/private/etc", "/private/tmp", "/private/var",
    )
)  # fmt: skip
# What git leaves in its directory while an operation waits for the user: (marker, operation, how to end it).
UNFINISHED_OPERATIONS = (
    ("rebase-merge", "rebase", "git rebase --continue, or git rebase --abort"),
    ("rebase-apply", "rebase or am", "git rebase --continue / git am --continue, or --abort"),
    ("MERGE_HEAD", "merge", "commit the merge, or git merge --abort"),
    ("CHERRY_PICK_HEAD", "cherry-pick", "git cherry-pick --continue, or git cherry-pick --abort"),
    ("REVERT_HEAD", "revert", "git revert --continue, or git revert --abort"),
    ("BISECT_LOG", "bisect", "git bisect reset"),
)


def prepare_workdir(path: Path) -> Path:
    """The absolute directory to work in, created if missing; never home, a root or a system directory."""
    absolute = Path(os.path.abspath(os.path.expanduser(str(path))))
    resolved = absolute.resolve()
    if resolved == Path.home().resolve() or resolved.parent == resolved:
        raise WorkdirError(f"refusing to work in {resolved}: pick a project directory (-d DIR)")
    # Both spellings: /bin is a link to /usr/bin on most systems, and a link to /usr is still /usr.
    if absolute in SYSTEM_DIRECTORIES or resolved in SYSTEM_DIRECTORIES:
        raise WorkdirError(f"refusing to work in {absolute}: a system directory; pick a project directory (-d DIR)")
    if resolved.exists() and not resolved.is_dir():
        raise WorkdirError(f"working directory {resolved} is a file, not a directory")
    try:
        resolved.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkdirError(f"cannot create working directory {resolved}: {exc.strerror or exc}") from exc
    if not os.access(resolved, os.W_OK | os.X_OK):
        raise WorkdirError(f"working directory {resolved} is not writable")
    return resolved


def repo_toplevel(directory: Path) -> Path | None:
    """The top of the git work tree directory is in; None outside one (or if directory does not exist)."""
    found = _git_query(directory, "rev-parse", "--show-toplevel")
    return Path(found).resolve() if found else None


def check_repo_state(directory: Path) -> None:
    """Refuse a repository that git is in the middle of something in, or whose HEAD is detached.

    Read-only; directory may not exist yet (then its nearest existing parent's repository counts).
    Raises WorkdirError naming the state and how to leave it.
    """
    directory = Path(os.path.abspath(os.path.expanduser(str(directory))))
    try:
        existing = next((p for p in (directory, *directory.parents) if p.exists()), None)
    except OSError as exc:  # a name longer than the filesystem allows
        raise WorkdirError(f"{str(directory)[:120]}: cannot be a working directory ({exc.strerror or exc})") from exc
    if existing is None or not existing.is_dir():
        return  # prepare_workdir says what is wrong with it
    found = _git_query(existing, "rev-parse", "--is-inside-git-dir", "--absolute-git-dir")
    if found is None:
        return  # not a repository yet: the run makes it one
    inside_git_dir, git_dir = found.splitlines()[:2]
    if inside_git_dir == "true":
        raise WorkdirError(f"{directory} is inside git's own directory {git_dir}; pick the work tree")
    top = repo_toplevel(existing) or existing
    for marker, operation, how in UNFINISHED_OPERATIONS:
        if (Path(git_dir) / marker).exists():
            raise WorkdirError(f"the repository {top} is in the middle of a {operation}; finish it first ({how})")
    if _git_query(existing, "symbolic-ref", "-q", "HEAD") is None:
        raise WorkdirError(f"HEAD is detached in {top}; pa commits onto a branch: create one (git switch -c NAME)")


def _git_query(directory: Path, *args: str) -> str | None:
    """Git's stripped output, or None if it failed (not a repository, say, or no such directory)."""
    if not directory.is_dir():
        return None
    try:
        code, output, timed_out = procs.run_bounded(["git", *args], cwd=directory, timeout_s=GIT_TIMEOUT_S, brief=True)
    except OSError as exc:
        raise WorkspaceError(f"cannot run git in {directory}: {exc.strerror or exc}") from exc
    if timed_out or code != 0:
        return None
    return output.decode("utf-8", errors="replace").strip()


@contextmanager
def exclusive(directory: Path) -> Iterator[None]:
    """One pa at a time per repository (per directory outside one): a second would edit and commit under the first.

    The whole repository, not the directory: a run in repo/sub commits under a run in repo.
    The lock is the kernel's (flock): it goes away with the process, however pa ends.
    """
    scope = repo_toplevel(Path(directory)) or Path(directory).resolve()
    locks = config.data_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(str(scope).encode()).hexdigest()[:16]
    with open(locks / f"{name}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkdirError(f"another pa is working in {scope}; wait for it to finish") from None
        yield


class Workspace:
    """Git in one directory. ``excluded`` collects the files its commits kept out as secrets, for a Notice."""

    def __init__(self, directory: Path, identity: Mapping[str, str] | None = None) -> None:
        self.directory = Path(directory)
        self.excluded: list[str] = []
        self.identity = identity  # who commits (see commit_identity), when the caller knows; else looked up

    def ensure_repo(self) -> bool:
        """Make the directory a git repository with a baseline commit, if it is not one; True if it did."""
        inside = self._git("rev-parse", "--is-inside-work-tree", check=False)
        if inside.strip() == "true":
            if not self._git("rev-parse", "-q", "--verify", "HEAD", check=False).strip():
                # `git init` and no commit yet: worktrees and diffs need a base; the files are set apart later.
                self._git("commit", "-q", "--allow-empty", "--no-verify", "-m", BASELINE_MESSAGE)
            return False
        self._git("init", "-q")
        self.exclude_secret_files()
        self._git("add", "-A")
        # A brand-new repository has no hooks yet.
        self._git("commit", "-q", "--allow-empty", "--no-verify", "-m", BASELINE_MESSAGE)
        return True

    def head(self) -> str:
        return self._git("rev-parse", "HEAD").strip()

    def branch(self) -> str:
        """The checked-out branch's short name ("" when HEAD is detached)."""
        return self._git("symbolic-ref", "-q", "--short", "HEAD", check=False).strip()

    def tree_of(self, rev: str) -> str:
        """Git's id of the files of a commit: what tree_id says of a clean checkout of it."""
        return self._git("rev-parse", f"{rev}^{{tree}}").strip()

    def has_changes(self) -> bool:
        return bool(self._git("status", "--porcelain", "--", ".").strip())

    def changed_since(self, rev: str) -> bool:
        """Whether anything under the directory differs from rev: new commits' files or uncommitted changes."""
        return self.has_changes() or bool(self._git("diff", "--name-only", rev, "HEAD", "--", ".").strip())

    def commit_all(self, message: str) -> str | None:
        """Commit every change under the directory (new files included); the sha, or None if nothing changed.

        Limited to the directory: in a subdirectory of a bigger repo, the user's other changes stay theirs.
        New files that look like secrets are excluded instead. The user's hooks run; WorkspaceError
        when one refuses the commit, or git cannot commit.
        """
        changes = self._git("status", "--porcelain", "-z", "--untracked-files=all", "--", ".")
        if not changes:
            return None
        new_files = [entry[3:] for entry in changes.split("\0") if entry.startswith("?? ")]
        if self.exclude_secret_files(new_files) and not self.has_changes():
            return None
        self._git("add", "-A", "--", ".")
        try:
            self._git("commit", "-q", "-m", message, "--", ".")
        except WorkspaceError as exc:
            hooks = self._commit_hooks()
            if hooks and "fatal:" not in str(exc):
                raise WorkspaceError(f"the commit was refused by a git hook ({', '.join(hooks)}): {exc}") from exc
            raise
        return self.head()

    def exclude_secret_files(self, untracked: list[str] | None = None) -> list[str]:
        """List untracked files that look like secrets in .git/info/exclude; returns them (also in ``excluded``).

        Tracked files stay tracked: committing those was the user's choice. untracked: the untracked
        files, when the caller has just listed them.
        """
        untracked = self.untracked() if untracked is None else untracked
        secrets = [path for path in untracked if looks_like_secret_file(path)]
        self.exclude(secrets, "looks like a secret")
        self.excluded += secrets
        return secrets

    def untracked(self) -> list[str]:
        """Untracked files under the directory that git would add (ignored ones not), from the repository's top."""
        untracked = self._git("ls-files", "--others", "--exclude-standard", "--full-name", "-z", "--", ".")
        return [path for path in untracked.split("\0") if path]

    def tracked(self) -> list[str]:
        """Every tracked file of the repository, from its top."""
        return [path for path in self._git("ls-files", "--full-name", "-z", ":/").split("\0") if path]

    def exclude(self, paths: list[str], why: str) -> None:
        """Keep these paths (from the repository's top) out of git's view, in .git/info/exclude, saying why."""
        if not paths:
            return
        exclude = Path(self._git("rev-parse", "--git-path", "info/exclude").strip())
        exclude = exclude if exclude.is_absolute() else self.directory / exclude
        with _EXCLUDE_LOCK:  # one file for every worktree of the repository, written from several threads
            self._append_exclude(exclude, paths, why)

    def _append_exclude(self, exclude: Path, paths: list[str], why: str) -> None:
        try:
            exclude.parent.mkdir(parents=True, exist_ok=True)
            existing = exclude.read_text(encoding="utf-8") if exclude.is_file() else ""
            lead = "" if not existing or existing.endswith("\n") else "\n"
            lines = "".join(f"{_exclude_pattern(path)}\n" for path in paths)
            exclude.write_text(f"{existing}{lead}# agentproxy: {why}\n{lines}", encoding="utf-8")
        except OSError as exc:
            raise WorkspaceError(f"cannot keep files out of git ({exclude}): {exc.strerror or exc}") from exc

    def tree_id(self) -> str:
        """Git's id of the files as they are now: uncommitted changes and new files count, ignored files do not.

        Built in a scratch copy of the index, so the user's staging is left as it was.
        """
        index = Path(self._git("rev-parse", "--git-path", "index").strip())
        index = index if index.is_absolute() else self.directory / index
        with tempfile.TemporaryDirectory(prefix="agentproxy-index-") as scratch:
            scratch_index = {"GIT_INDEX_FILE": str(Path(scratch, "index"))}
            if index.is_file():
                shutil.copyfile(index, scratch_index["GIT_INDEX_FILE"])  # its file stats spare hashing every file
            self._git("add", "-A", ":/", env=scratch_index)
            return self._git("write-tree", env=scratch_index).strip()

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

    def lines_changed_since(self, rev: str) -> int:
        """Lines added and removed since rev, new files' lines included (a binary file counts one)."""
        total = 0
        for row in self._git("diff", "--numstat", rev, "--", ".").splitlines():
            added, removed, _ = row.split("\t", 2)
            total += int(added) + int(removed) if added != "-" else 1
        for name in self._git("ls-files", "--others", "--exclude-standard", "--", ".").splitlines():
            try:
                total += max(1, (self.directory / name).read_bytes().count(b"\n"))
            except OSError:
                total += 1  # gone, or unreadable: it still changed
        return total

    def _git(self, *args: str, check: bool = True, env: Mapping[str, str] | None = None) -> str:
        # The user's hooks run under git: they get what a check gets, never the supervisor's keys.
        identity = (self.commit_identity() if self.identity is None else self.identity) if args[0] == "commit" else {}
        env = {**child_environment(), **identity, **(env or {})}
        timeout_s = COMMIT_TIMEOUT_S if args[0] == "commit" else GIT_TIMEOUT_S
        try:
            code, output, timed_out = procs.run_bounded(
                ["git", *NO_HOUSEKEEPING, *args],
                cwd=self.directory,
                timeout_s=timeout_s,
                env=env,
                brief=args[0] not in MAY_RUN_HOOKS,
            )
        except OSError as exc:
            raise WorkspaceError(f"cannot run git in {self.directory}: {exc.strerror or exc}") from exc
        text = output.decode("utf-8", errors="replace")
        if check and (timed_out or code != 0):
            detail = "timed out" if timed_out else (text.strip().splitlines() or [f"exit {code}"])[-1]
            raise WorkspaceError(f"git {args[0]} failed in {self.directory}: {detail}")
        return text

    def commit_identity(self) -> dict[str, str]:
        """The environment commits here get: none when the user has an identity, agentproxy's when not."""
        email = self._git("config", "user.email", check=False).strip()
        return {} if email else FALLBACK_IDENTITY

    def _commit_hooks(self) -> list[str]:
        """The hooks a commit runs here that are installed (core.hooksPath honoured)."""
        hooks = Path(self._git("rev-parse", "--git-path", "hooks", check=False).strip() or ".git/hooks")
        hooks = hooks if hooks.is_absolute() else self.directory / hooks
        return [name for name in COMMIT_HOOKS if os.access(hooks / name, os.X_OK)]


def _exclude_pattern(path: str) -> str:
    """A gitignore line matching exactly this path from the repository's top."""
    escaped = "".join(f"\\{char}" if char in "*?[\\" else char for char in path)
    return "/" + (escaped[:-1] + "\\ " if escaped.endswith(" ") else escaped)
