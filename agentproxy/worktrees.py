"""A session's git worktrees: one branch and one directory per subtask, merged into a result branch, then landed.

Branches are ``agentproxy/<session>/<name>``; the worktrees live under a root of agentproxy's own
(never inside the user's tree), one directory per name. Plain synchronous calls to the git CLI,
each bounded, for one owner: several threads may work at once, each on a worktree of its own
(what touches git's list of worktrees takes turns).
"""

from __future__ import annotations

import functools
import re
import shutil
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agentproxy import procs
from agentproxy.child_env import child_environment
from agentproxy.errors import WorkspaceError
from agentproxy.workspace import (
    COMMIT_TIMEOUT_S,
    GIT_TIMEOUT_S,
    MAY_RUN_HOOKS,
    NO_HOUSEKEEPING,
    Workspace,
    repo_toplevel,
)

if TYPE_CHECKING:
    from agentproxy.worktree_include import Included

BRANCH_PREFIX = "agentproxy"
RESULT = "result"
CONFLICT = "conflict"
# A subtask id or session id becomes one component of a branch name and one directory name.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
# A full commit id (SHA-1 or SHA-256): a start given as one needs no lookup.
_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
# Git's conflict markers open and close with seven signs and a label (or nothing) at the start of a line.
_MARKER = re.compile(rb"^(?:<{7}|>{7})(?: |\r?$)", re.MULTILINE)
# Commands that make commits: they run the user's hooks and need an identity.
_COMMITTING = ("commit", "merge")


@dataclass(frozen=True)
class GitRun:
    output: str  # stdout and stderr together
    error: str  # when git failed, its complaint in one line; "" when it succeeded


@dataclass(frozen=True)
class MergeOutcome:
    commit: str | None  # the merge commit (or the head, when already contained); None on conflict
    conflicted: list[str]  # files with conflicts, from the repository's top; empty when merged


@dataclass(frozen=True)
class Landing:
    how: str  # "fast-forward" | "merge" | "kept"
    commit: str | None  # the user's branch head after landing; None when kept
    reason: str = ""  # why kept, shown to the user; CONFLICT when the result worktree holds a merge to resolve
    command: str = ""  # when kept: the one command that merges the result


def run_git(directory: Path, *args: str, check: bool = True, identity: Mapping[str, str] | None = None) -> str:
    """Git's output (stdout and stderr together) in directory, bounded in time.

    WorkspaceError naming git's complaint in one line when it fails and check is set. Commands that
    commit get a fallback identity when the user has none (identity: what the caller knows of it), and
    a longer timeout for the user's hooks.
    """
    run = git_run(directory, *args, identity=identity)
    if check and run.error:
        raise WorkspaceError(f"git {args[0]} failed in {directory}: {run.error}")
    return run.output


def git_run(directory: Path, *args: str, identity: Mapping[str, str] | None = None) -> GitRun:
    """Git's output in directory, and its complaint if it failed; bounded in time (see run_git)."""
    committing = args[0] in _COMMITTING
    if committing and identity is None:
        identity = Workspace(directory).commit_identity()
    env = {**child_environment(), **(identity if committing and identity else {})}
    try:
        code, output, timed_out = procs.run_bounded(
            ["git", *NO_HOUSEKEEPING, *args],
            cwd=directory,
            timeout_s=COMMIT_TIMEOUT_S if committing else GIT_TIMEOUT_S,
            env=env,
            brief=args[0] not in MAY_RUN_HOOKS,
        )
    except OSError as exc:
        raise WorkspaceError(f"cannot run git in {directory}: {exc.strerror or exc}") from exc
    # surrogateescape: file names that are not UTF-8 survive the round trip to the filesystem.
    text = output.decode("utf-8", errors="surrogateescape")
    if timed_out:
        return GitRun(text, "timed out")
    return GitRun(text, (git_complaint(text) or f"exit {code}") if code != 0 else "")


def git_complaint(output: str) -> str:
    """Git's error in one line: its error/fatal line with the files it lists, else its last line."""
    lines = output.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace").splitlines()
    for index, line in enumerate(lines):
        if line.startswith(("error: ", "fatal: ")):
            listed = [item.strip() for item in lines[index + 1 :] if item.startswith("\t")]
            message = line.split(": ", 1)[1].strip()
            return f"{message} {', '.join(listed[:10])}".strip() + (" …" if len(listed) > 10 else "")
    return next((line.strip() for line in reversed(lines) if line.strip()), "")


def session_branches(workdir: Path, session_id: str) -> list[str]:
    """The branches a session made in workdir's repository, by full name."""
    refs = run_git(
        Path(workdir), "for-each-ref", "--format=%(refname:short)", f"refs/heads/{BRANCH_PREFIX}/{session_id}/"
    )
    return refs.split()


class SessionWorktrees:
    """The worktrees of one session in the repository holding workdir, each under root/<name>.

    workdir may be a subdirectory of its repository: every path returned is then that same
    subdirectory inside the worktree, so that agents and checks work at the same relative place.
    ``included`` records, per worktree, the files .worktreeinclude brought in when it was made.
    """

    def __init__(self, workdir: Path, root: Path, session_id: str) -> None:
        self.workdir = Path(workdir).resolve()
        top = repo_toplevel(self.workdir)
        if top is None:
            raise WorkspaceError(f"{self.workdir} is not inside a git repository")
        self.top = top
        self.relative = self.workdir.relative_to(top)
        self.root = Path(root).resolve()
        self.session_id = _checked(session_id, "session id")
        self.included: dict[str, list[Included]] = {}
        # Git's list of worktrees: `worktree add` writes an entry in steps, and a git command that reads
        # the list meanwhile (add, remove, prune, list, branch -D/-f) fails. One at a time, then.
        self._registry = threading.RLock()

    # --- names and places ------------------------------------------------------------------------

    def branch(self, name: str) -> str:
        return f"{BRANCH_PREFIX}/{self.session_id}/{_checked(name, 'worktree name')}"

    def path(self, name: str) -> Path:
        """The workdir inside that worktree."""
        return self._top(name) / self.relative

    def head(self, name: str) -> str:
        found = run_git(
            self.top, "rev-parse", "-q", "--verify", f"refs/heads/{self.branch(name)}^{{commit}}", check=False
        )
        if not found.strip():
            raise WorkspaceError(f"there is no branch {self.branch(name)}")
        return found.strip()

    def listed(self) -> dict[str, Path]:
        """name -> workdir inside it, for this session's worktrees that exist."""
        prefix = f"refs/heads/{self.branch_prefix()}"
        found = {}
        for entry in self._registered():
            branch, top = entry.get("branch", ""), Path(entry["worktree"])
            if branch.startswith(prefix) and "prunable" not in entry and top.is_dir():
                found[branch[len(prefix) :]] = top / self.relative
        return found

    @functools.cached_property
    def identity(self) -> dict[str, str]:
        """Who commits in this session's worktrees (see Workspace.commit_identity): looked up once."""
        return Workspace(self.top).commit_identity()

    def branch_prefix(self) -> str:
        return f"{BRANCH_PREFIX}/{self.session_id}/"

    # --- making and removing ---------------------------------------------------------------------

    def create(self, name: str, start: str, new: bool = False) -> Path:
        """The worktree of that name, on its branch started at start; made if missing (resumes reuse it).

        An existing worktree is returned untouched. A branch whose directory is gone gets a new worktree
        on the branch as it is. A new worktree gets the files .worktreeinclude names. new: the caller
        knows neither exists (a fresh run's name), so none of that is looked for.
        """
        from agentproxy.worktree_include import copy_included  # lazy: worktree_include uses run_git from here

        top, branch = self._top(name), self.branch(name)
        apart = _checks_out_apart()
        with self._registry:
            if not new:
                run_git(self.top, "worktree", "prune")
                if any(Path(entry["worktree"]) == top for entry in self._registered()) and top.is_dir():
                    if apart and not _checked_out(top):  # pa stopped between making it and filling it
                        _check_out(top)
                    return self.path(name)
            self.root.mkdir(parents=True, exist_ok=True)
            on_branch = not new and self._branch_exists(branch)
            where = [str(top), branch] if on_branch else ["-b", branch, str(top), start]
            run_git(self.top, "worktree", "add", "-q", *(["--no-checkout"] if apart else []), *where)
        if apart:  # outside the lock: the slow part for a big tree, beside the other trees' checkouts
            _check_out(top, start if _SHA.fullmatch(start) and not on_branch else None)
        self.included[name] = copy_included(self.top, top)
        # The subdirectory may hold only untracked files in the user's tree, and so be missing from the checkout.
        self.path(name).mkdir(parents=True, exist_ok=True)
        return self.path(name)

    def start_branch(self, name: str, start: str) -> str:
        """The branch of that name at start, without a worktree (its work happens elsewhere); reset if it exists."""
        branch = self.branch(name)
        with self._registry:
            run_git(self.top, "branch", "-f", branch, start)
        return branch

    def remove(self, name: str, keep_branch: bool = False) -> None:
        """Remove the worktree (whatever it holds) and, unless kept, its branch; what is already gone is fine."""
        top, branch = self._top(name), self.branch(name)
        with self._registry:
            run_git(self.top, "worktree", "remove", "--force", "--force", str(top), check=False)
            if top.exists():  # not a registered worktree: what an interrupted `worktree add` left
                try:
                    shutil.rmtree(top)
                except OSError as exc:
                    raise WorkspaceError(f"cannot remove {top}: {exc.strerror or exc}") from exc
                run_git(self.top, "worktree", "prune")
            if keep_branch:
                return
            deleted = git_run(self.top, "branch", "-D", branch)
            if deleted.error and self._branch_exists(branch):
                raise WorkspaceError(f"git branch failed in {self.top}: {deleted.error}")

    def remove_all(self, keep: Iterable[str] = ()) -> None:
        """Every worktree and branch of this session but those named in keep; the root too once empty."""
        names = set(self.listed())
        names.update(branch.rsplit("/", 1)[1] for branch in session_branches(self.top, self.session_id))
        if self.root.is_dir():
            names.update(entry.name for entry in self.root.iterdir() if _valid_name(entry.name))
        for name in sorted(names - set(keep)):
            self.remove(name)
        if self.root.is_dir() and not any(self.root.iterdir()):
            self.root.rmdir()

    # --- merging ---------------------------------------------------------------------------------

    def merge(self, into: str, branch_or_commit: str, message: str) -> MergeOutcome:
        """Merge into the worktree `into` with a merge commit; a conflict leaves the merge in progress there.

        Merging what is already contained changes nothing and returns the head.
        """
        top = self._top(into)
        if self._merging(top):
            raise WorkspaceError(f"a merge is already in progress in {top}: conclude or abort it first")
        merge = git_run(top, "merge", "--no-ff", "--no-edit", "-m", message, branch_or_commit, identity=self.identity)
        if merge.error and self._merging(top):
            conflicted = self.conflicted(into)
            if conflicted:
                return MergeOutcome(None, conflicted)
            raise WorkspaceError(f"git merge of {branch_or_commit} stopped in {top}: {merge.error}")
        if merge.error and not self._contains(top, branch_or_commit):
            raise WorkspaceError(f"git merge of {branch_or_commit} failed in {top}: {merge.error}")
        return MergeOutcome(Workspace(top).head(), [])

    def merge_in_progress(self, name: str) -> bool:
        return self._merging(self._top(name))

    def conflicted(self, name: str) -> list[str]:
        """Files git still counts as conflicted in that worktree, from the repository's top."""
        return _paths(run_git(self._top(name), "diff", "--name-only", "--diff-filter=U", "-z"))

    def markers_left(self, name: str) -> list[str]:
        """Files in that worktree, among the conflicted and changed ones, that still hold conflict markers."""
        top = self._top(name)
        candidates = set(self.conflicted(name)) | set(_paths(run_git(top, "diff", "--name-only", "-z", "HEAD")))
        return sorted(path for path in candidates if _has_markers(top / path))

    def conclude_merge(self, name: str, message: str) -> str:
        """Commit the merge in progress in that worktree, everything in it included; the commit's sha.

        WorkspaceError when no merge is in progress or a file still holds conflict markers.
        New files that look like secrets are kept out, as in every agentproxy commit.
        """
        top = self._top(name)
        if not self._merging(top):
            raise WorkspaceError(f"no merge is in progress in {top}")
        markers = self.markers_left(name)
        if markers:
            raise WorkspaceError(f"conflict markers are left in {', '.join(markers)}")
        workspace = Workspace(top)
        workspace.exclude_secret_files()
        run_git(top, "add", "-A")
        run_git(top, "commit", "-q", "-m", message, identity=self.identity)
        return workspace.head()

    def abort_merge(self, name: str) -> None:
        """Give up the merge in progress in that worktree, if there is one."""
        top = self._top(name)
        if self._merging(top):
            run_git(top, "merge", "--abort")

    # --- landing ---------------------------------------------------------------------------------

    def land(self, user_branch: str, base: str, result: str = RESULT) -> Landing:
        """Put the result on the user's branch in the user's working directory, or say why it is kept apart.

        Kept when the user switched branches or has uncommitted changes to tracked files (new files
        are left to git, which refuses to overwrite one). A branch that moved since base is merged into
        the result first; a conflict there is left in progress in the result worktree (reason CONFLICT),
        and land is called again once it is concluded.
        """
        result_branch = self.branch(result)
        command = f"git merge {result_branch}"
        current = run_git(self.top, "symbolic-ref", "-q", "--short", "HEAD", check=False).strip()
        if current != user_branch:
            where = f"{current} is checked out" if current else "HEAD is detached"
            return Landing("kept", None, f"{where} in {self.top}, not {user_branch}", command)
        if run_git(self.top, "status", "--porcelain", "--untracked-files=no").strip():
            return Landing("kept", None, "your working tree has changes", command)
        user_head, result_head = Workspace(self.top).head(), self.head(result)
        if self._contains(self.top, result_head):  # landed already
            return Landing("fast-forward", user_head)
        how = "fast-forward"
        if user_head != base:
            message = f"Merge {user_branch} into the result of agentproxy session {self.session_id}"
            outcome = self.merge(result, user_branch, message)
            if outcome.conflicted:
                return Landing("kept", None, CONFLICT, command)
            how, result_head = "merge", outcome.commit or self.head(result)
        forward = git_run(self.top, "merge", "--ff-only", "-q", result_branch, identity=self.identity)
        if forward.error:
            return Landing("kept", None, forward.error, command)
        return Landing(how, result_head)

    # --- git's view ------------------------------------------------------------------------------

    def _top(self, name: str) -> Path:
        return self.root / _checked(name, "worktree name")

    def _registered(self) -> list[dict[str, str]]:
        """`git worktree list --porcelain` as one dict per worktree (attribute -> value, "" for bare flags)."""
        entries = []
        with self._registry:
            listing = run_git(self.top, "worktree", "list", "--porcelain")
        for block in listing.split("\n\n"):
            fields = dict(line.partition(" ")[::2] for line in block.splitlines() if line)
            if "worktree" in fields:
                entries.append(fields)
        return entries

    def _branch_exists(self, branch: str) -> bool:
        return bool(run_git(self.top, "rev-parse", "-q", "--verify", f"refs/heads/{branch}", check=False).strip())

    @staticmethod
    def _contains(directory: Path, rev: str) -> bool:
        """Whether HEAD in directory already holds rev."""
        return _succeeds(directory, "merge-base", "--is-ancestor", rev, "HEAD")

    @staticmethod
    def _merging(directory: Path) -> bool:
        return _succeeds(directory, "rev-parse", "-q", "--verify", "MERGE_HEAD")


@functools.cache
def _checks_out_apart() -> bool:
    """Whether this git can fill a new worktree apart from `worktree add`: `git hook run` (2.36) runs its hook."""
    found = re.search(r"(\d+)\.(\d+)", run_git(Path("/"), "version", check=False))
    return found is not None and (int(found[1]), int(found[2])) >= (2, 36)


def _check_out(top: Path, head: str | None = None) -> None:
    """Fill a worktree made with --no-checkout as `git worktree add` does: reset, then the post-checkout hook.

    head: the commit it is on, when the caller knows it."""
    run_git(top, "reset", "--hard", "--no-recurse-submodules", "-q")
    head = head or Workspace(top).head()
    no_commit = "0" * len(head)  # what the hook gets as a new worktree's previous head
    run_git(top, "hook", "run", "--ignore-missing", "post-checkout", "--", no_commit, head, "1")


def _checked_out(top: Path) -> bool:
    index = Path(run_git(top, "rev-parse", "--git-path", "index").strip())
    return (index if index.is_absolute() else top / index).is_file()


def _succeeds(directory: Path, *args: str) -> bool:
    try:
        run_git(directory, *args)
    except WorkspaceError:
        return False
    return True


def _valid_name(name: str) -> bool:
    return bool(_NAME.fullmatch(name)) and ".." not in name and not name.endswith(".lock")


def _checked(name: str, what: str) -> str:
    if not _valid_name(name):
        raise WorkspaceError(f"{what} {name!r} cannot name a branch: use letters, digits, '.', '_' and '-'")
    return name


def _paths(output: str) -> list[str]:
    return [path for path in output.split("\0") if path]


def _has_markers(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    try:
        return bool(_MARKER.search(path.read_bytes()))
    except OSError as exc:
        raise WorkspaceError(f"cannot read {path}: {exc.strerror or exc}") from exc
