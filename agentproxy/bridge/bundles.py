"""Commits between hosts without a shared filesystem: git bundles, sent in chunks (docs/bridge.md, issue 9).

The supervisor bundles a subtask's base commit, leaving out what the worker's cached clone already holds
(its heads, announced in Hello); the worker keeps one bare clone per repository id, works in a worktree of
it, and bundles the subtask's branch back. A bundle travels in chunks that are written at their offsets
as they come, so no host holds a whole bundle in memory.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from agentproxy.bridge.protocol import CHUNK_BYTES
from agentproxy.errors import WorkspaceError
from agentproxy.workspace import Workspace
from agentproxy.worktrees import run_git

MAX_HEADS = 50  # the haves a worker announces per repository: its newest refs
# A commit hash (SHA-1 or SHA-256); a repository id is one, and names a directory on the worker.
_HASH = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")


# --- supervisor side -------------------------------------------------------------------------------


def repo_id(workdir: Path) -> str:
    """The repository's id, the same on every host: its root commit (the smallest, when there are several)."""
    return min(run_git(Path(workdir), "rev-list", "--max-parents=0", "HEAD").split())


def write_base_bundle(workdir: Path, commit: str, ref: str, dest: Path, haves: Iterable[str]) -> Path | None:
    """A bundle of refs/heads/<ref> at commit without what the haves reach; None when a have already holds it."""
    workdir = Path(workdir)
    commit = _commit(workdir, commit)
    # A have this repository lacks excludes nothing.
    known = [found for found in (_resolve(workdir, have) for have in haves) if found is not None]
    if any(_is_ancestor(workdir, commit, have) for have in known):
        return None  # git refuses an empty bundle, and the worker needs none
    objects = Path(workdir, run_git(workdir, "rev-parse", "--git-path", "objects").strip()).resolve()
    dest = Path(dest).resolve()
    # A scratch repository borrowing workdir's objects names the ref, so the user's refs are never touched.
    with tempfile.TemporaryDirectory(prefix="agentproxy-bundle-") as scratch:
        run_git(Path(scratch), "init", "-q", "--bare", ".")
        Path(scratch, "objects", "info", "alternates").write_text(f"{objects}\n")
        run_git(Path(scratch), "update-ref", f"refs/heads/{ref}", commit)
        run_git(Path(scratch), "bundle", "create", "-q", str(dest), f"refs/heads/{ref}", *(f"^{c}" for c in known))
    return dest


def fetch_result(workdir: Path, bundle: Path, head: str, branch: str) -> None:
    """Put a worker's result on refs/heads/<branch>: head must be one of the bundle's refs."""
    workdir, bundle = Path(workdir), Path(bundle).resolve()
    run_git(workdir, "bundle", "verify", "-q", str(bundle))
    tips = {line.split()[0] for line in run_git(workdir, "bundle", "list-heads", str(bundle)).splitlines() if line}
    if head not in tips:
        raise WorkspaceError(f"the bundle {bundle.name} does not hold {head}")
    run_git(workdir, "fetch", "-q", "--no-tags", "--no-write-fetch-head", str(bundle), f"+{head}:refs/heads/{branch}")
    if _commit(workdir, f"refs/heads/{branch}") != head:
        raise WorkspaceError(f"the branch {branch} is not at {head} after fetching the bundle {bundle.name}")


# --- transfer --------------------------------------------------------------------------------------


def chunks(path: Path, size: int = CHUNK_BYTES) -> Iterator[tuple[int, int, bytes]]:
    """The file as (index, count, data) parts of at most size bytes; an empty file is one empty part."""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        count = max(1, -(-handle.tell() // size))
        handle.seek(0)
        for index in range(count):
            yield index, count, handle.read(size)


class Reassembly:
    """A file made of chunks arriving in any order, each written at its offset as it comes."""

    def __init__(self, dest: Path, size: int = CHUNK_BYTES) -> None:
        self.dest = Path(dest)
        self.size = size
        self.count: int | None = None
        self._digests: dict[int, bytes] = {}  # index -> digest of its data: duplicates are told apart by it

    @property
    def complete(self) -> bool:
        return self.count is not None and len(self._digests) == self.count

    def add(self, index: int, count: int, data: bytes) -> bool:
        """Write one chunk; True once every chunk is in. ValueError for a chunk that contradicts the others."""
        self._check(index, count, data)
        digest = hashlib.sha256(data).digest()
        if index in self._digests:
            if self._digests[index] != digest:
                raise ValueError(f"chunk {index} of {self.dest.name} came twice with different data")
            return self.complete
        if self.count is None:
            self.dest.write_bytes(b"")  # whatever an earlier transfer left there goes
            self.count = count
        with open(self.dest, "r+b") as handle:
            handle.seek(index * self.size)
            handle.write(data)
        self._digests[index] = digest
        return self.complete

    def _check(self, index: int, count: int, data: bytes) -> None:
        if count < 1 or count != (self.count or count):
            raise ValueError(f"chunk {index} of {self.dest.name} says {count} chunks, not {self.count or 'at least 1'}")
        if not 0 <= index < count:
            raise ValueError(f"chunk {index} of {self.dest.name} is out of range (0..{count - 1})")
        # Every chunk but the last is full, or the offsets after it would be wrong.
        if len(data) > self.size or (index < count - 1 and len(data) != self.size):
            raise ValueError(f"chunk {index} of {self.dest.name} has {len(data)} bytes, chunks have {self.size}")


# --- worker side -----------------------------------------------------------------------------------


class WorkerRepos:
    """A worker's cached bare clones, one per repository id under root/repos, and worktrees of them.

    Several assignments of one repository set up at once (one per slot): what changes a clone (making
    it, fetching into it, adding a worktree) happens one at a time per clone.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.repos = self.root / "repos"
        self.worktrees = self.root / "worktrees"  # where the worker puts its worktrees
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def lock(self, repo_id: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(repo_id, threading.Lock())

    def clone(self, repo_id: str) -> Path:
        """The repository's cached bare clone, made empty if missing."""
        path = self._clone_path(repo_id)
        with self.lock(repo_id):
            if not (path / "HEAD").is_file():
                path.mkdir(parents=True, exist_ok=True)
                run_git(path, "init", "-q", "--bare", ".")
        return path

    def heads(self, repo_id: str) -> list[str]:
        """The commits the clone's newest refs point at: the haves announced for incremental bundles."""
        clone = self._clone_path(repo_id)
        if not (clone / "HEAD").is_file():
            return []
        newest = ("--sort=-committerdate", f"--count={MAX_HEADS}", "--format=%(objectname)")
        return list(dict.fromkeys(run_git(clone, "for-each-ref", *newest).split()))

    def all_heads(self) -> dict[str, list[str]]:
        """Repository id -> its heads, for every cached clone (Hello's repos)."""
        if not self.repos.is_dir():
            return {}
        ids = sorted(path.name.removesuffix(".git") for path in self.repos.glob("*.git"))
        return {repo_id: self.heads(repo_id) for repo_id in ids if _HASH.fullmatch(repo_id)}

    def take_bundle(self, repo_id: str, bundle: Path, ref: str) -> None:
        """Fetch a base bundle's refs/heads/<ref> into refs/agentproxy/bases/<ref>, where it stays a have."""
        refspec = f"+refs/heads/{ref}:refs/agentproxy/bases/{ref}"
        fetch = ("fetch", "-q", "--no-tags", "--no-write-fetch-head")
        clone = self.clone(repo_id)
        with self.lock(repo_id):
            run_git(clone, *fetch, str(Path(bundle).resolve()), refspec)

    def make_worktree(self, repo_id: str, branch: str, base: str, path: Path) -> Path:
        """A fresh worktree at path on branch, (re)set to base; whatever was at path before goes."""
        clone = self.clone(repo_id)
        start = _resolve(clone, base)
        if start is None:
            raise WorkspaceError(f"the worker's clone of {repo_id[:12]} lacks the base commit {base}: no bundle for it")
        path = Path(path).resolve()
        with self.lock(repo_id):
            self._clear(clone, path)
            path.parent.mkdir(parents=True, exist_ok=True)
            run_git(clone, "worktree", "add", "-q", "-B", branch, str(path), start)
        return path

    def commit_work(self, path: Path, message: str) -> str:
        """Commit everything in the worktree (secrets kept out); its HEAD, new commit or not."""
        workspace = Workspace(Path(path))
        workspace.commit_all(message)
        return workspace.head()

    def write_result_bundle(self, repo_id: str, branch: str, base: str, dest: Path) -> Path | None:
        """A bundle of refs/heads/<branch> without base's history; None when the branch is still at base."""
        clone = self.clone(repo_id)
        start = _commit(clone, base)
        if _commit(clone, f"refs/heads/{branch}") == start:
            return None
        dest = Path(dest).resolve()
        run_git(clone, "bundle", "create", "-q", str(dest), f"refs/heads/{branch}", f"^{start}")
        return dest

    def remove_worktree(self, path: Path) -> None:
        """Remove a worktree and what is left of it; its branch stays in the clone, a have for later bundles."""
        path = Path(path).resolve()
        clones = [self._clone_of(path)] if (path / ".git").is_file() else []
        for clone in clones or sorted(self.repos.glob("*.git")):  # gone already: any clone may list it
            self._clear(clone, path)

    def _clear(self, clone: Path, path: Path) -> None:
        """Nothing at path and no registration of it in clone, however an earlier worktree was left."""
        run_git(clone, "worktree", "remove", "--force", "--force", str(path), check=False)
        if path.exists():
            try:
                shutil.rmtree(path)
            except OSError as exc:
                raise WorkspaceError(f"cannot remove {path}: {exc.strerror or exc}") from exc
        run_git(clone, "worktree", "prune")

    def _clone_path(self, repo_id: str) -> Path:
        if not _HASH.fullmatch(repo_id):
            raise WorkspaceError(f"{repo_id!r} is not a repository id (a root commit's hash)")
        return self.repos / f"{repo_id}.git"

    def _clone_of(self, path: Path) -> Path:
        """The clone a worktree belongs to (its common git directory)."""
        return Path(path, run_git(path, "rev-parse", "--git-common-dir").strip()).resolve()


# --- git's view ------------------------------------------------------------------------------------


def _resolve(directory: Path, rev: str) -> str | None:
    """The commit rev names in directory's repository, or None (options and non-commits never pass)."""
    try:
        found = run_git(directory, "rev-parse", "-q", "--verify", "--end-of-options", f"{rev}^{{commit}}")
    except WorkspaceError:
        return None
    last = found.strip().splitlines()[-1:]  # after any warning git printed on stderr
    return last[0] if last and _HASH.fullmatch(last[0]) else None


def _commit(directory: Path, rev: str) -> str:
    """The commit rev names in directory's repository; WorkspaceError when there is none."""
    found = _resolve(directory, rev)
    if found is None:
        raise WorkspaceError(f"there is no commit {rev} in {directory}")
    return found


def _is_ancestor(directory: Path, commit: str, descendant: str) -> bool:
    try:
        run_git(directory, "merge-base", "--is-ancestor", commit, descendant)
    except WorkspaceError:
        return False
    return True
