"""Integrator: the one owner of the run's git work, off the Dispatcher's thread.

In place (one subtask at a time in the user's tree) it sets the user's uncommitted changes apart at
the start and commits the run's work at the end. Isolated (subtasks side by side) it gives each
subtask a worktree on ``agentproxy/<session>/<subtask>`` under the data directory, merges each
verified branch into ``agentproxy/<session>/result`` in an integration worktree, one merge at a
time (while an agent resolves a conflict there, the next merges wait), and lands the verified
result on the user's branch. Worktrees of merged work are removed; a failed subtask's are kept.
The work on one subtask's own tree (making it, committing its work, removing it once merged) runs
on a few threads beside the others': a big checkout must not hold up the merges or the other
subtasks' starts. The merges stay on the actor's own thread, one at a time.
What git knows (a merge in progress, a merge commit) it asks git, so that a restarted instance
knows it too.
"""

from __future__ import annotations

import collections
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from agentproxy.actors.base import BRIDGE, DISPATCHER, Directory, SupervisedActor, tell_quietly

from agentproxy import config
from agentproxy.errors import WorkspaceError
from agentproxy.messages import (
    BeginRun,
    Committed,
    Discard,
    FetchResult,
    Integrate,
    Integrated,
    Land,
    LandDone,
    Landed,
    MakeTree,
    MergeConflicted,
    Merged,
    Notice,
    Release,
    ResultFetched,
    RunBase,
    TreeReady,
    WorktreeCreated,
    WorktreeRemoved,
)
from agentproxy.secret_files import exclusion_warning
from agentproxy.workspace import Workspace
from agentproxy.worktrees import CONFLICT, RESULT, SessionWorktrees, run_git

_UNSAFE_IN_BRANCH = re.compile(r"[^A-Za-z0-9._-]+")
# At the run's end, how long the work on trees still going on is waited for: within the Dispatcher's wait for Release.
TREE_WORK_WAIT_S = 5.0


class Integrator(SupervisedActor):
    def __init__(self, name: str, directory: Directory, working_dir: Path) -> None:
        super().__init__(name, directory)
        self.working_dir = working_dir
        self.session_id = ""
        self.task = ""
        self.base = ""  # the run's base: merges since it are this run's
        self.resumed = False
        self.worktrees: SessionWorktrees | None = None  # None: in place
        self.user_branch = ""
        self.landed_on_branch = False  # the result is on the user's branch: its own branch can go
        self.merged_users_branch = False  # the user's branch moved, and was merged into the result
        self.waiting: collections.deque[Integrate] = collections.deque()
        self.merged_trees: list[tuple[str, str]] = []  # (worktree name, subtask id): merged, to remove
        self.tree_slots = threading.BoundedSemaphore(max(2, os.cpu_count() or 1))
        self.aside: list[threading.Thread] = []  # work on trees: waited for before the run's trees go

    def on_receive(self, message: Any) -> Any:
        match message:
            case BeginRun(base=""):
                self.reply(self.begin(message))
            case BeginRun():
                self.begin_again(message)
            case MakeTree():
                self.tree_work(self.answer_make_tree, message)
            case FetchResult():
                self.directory.tell(BRIDGE, self.fetch_result(message))
            case Integrate(conclude=False, integration=False, committed=False) if self.worktrees is not None:
                self.tree_work(self.commit_aside, message)
            case Integrate():
                self.on_integrate(message)
            case Land(task=task):
                self.reply(self.land(task))
            case Discard(subtask_id=subtask_id):
                self.discard(subtask_id)
            case Release(status=status, merged=merged):
                return self.release_run(status, merged)
            case Exception():
                raise message  # from a thread working on a tree: a crash of this actor's work
        return None

    def reply(self, message: Any) -> None:
        self.directory.tell(DISPATCHER, message)

    # -- the start -------------------------------------------------------------------------

    def begin(self, begin: BeginRun) -> RunBase:
        self.session_id, self.task = begin.session_id, begin.task
        workspace = Workspace(self.working_dir)
        try:
            self.set_apart(workspace, begin.task)
            base, self.user_branch = workspace.head(), workspace.branch()
            self.base, self.resumed = base, begin.resumed
            if begin.isolated:
                self.worktrees = SessionWorktrees(
                    self.working_dir, config.worktrees_dir(begin.session_id), begin.session_id
                )
                self.create(RESULT, base)
                if begin.resumed:
                    self.worktrees.abort_merge(RESULT)  # a conflict pa was stopped in is resolved afresh
            return RunBase(commit=base, branch=self.user_branch, tree=workspace.tree_of(base))
        except WorkspaceError as exc:
            return RunBase(commit="", branch="", error=str(exc))

    def begin_again(self, begin: BeginRun) -> None:
        """A restarted instance takes the run up where the crashed one was: same base, same worktrees."""
        self.session_id, self.task, self.base, self.user_branch = begin.session_id, begin.task, begin.base, begin.branch
        self.resumed = True  # merges the crashed instance made may not have been answered
        if begin.isolated:
            root = config.worktrees_dir(begin.session_id)
            self.worktrees = SessionWorktrees(self.working_dir, root, begin.session_id)

    def set_apart(self, workspace: Workspace, task: str) -> None:
        """Commit what the user left uncommitted, so the agents' diffs, reviews and commits are their own."""
        try:
            commit = workspace.commit_all(f"agentproxy: uncommitted changes found before: {commit_subject(task)}")
        except WorkspaceError as exc:
            self.record(Notice(level="warning", text=f"could not set your uncommitted changes apart: {exc}"))
            return
        finally:
            self.warn_excluded(workspace)
        if commit:
            self.record(Notice(text=f"your uncommitted changes were committed first, as {commit[:10]}"))

    # -- trees -----------------------------------------------------------------------------

    def wait_for_tree_work(self) -> None:
        deadline = time.monotonic() + TREE_WORK_WAIT_S
        for thread in self.aside:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def release(self) -> None:
        """Stopped or crashed: the work on trees ends first, so that a fresh instance finds them whole."""
        self.wait_for_tree_work()

    def tree_work(self, handler: Callable[[Any], None], request: Any) -> None:
        """Work on one subtask's own tree, on a thread beside the others' (the merges stay on this one)."""
        self.aside = [thread for thread in self.aside if thread.is_alive()]
        self.aside.append(self.run_aside(handler, request, self.tree_slots))

    def answer_make_tree(self, make: MakeTree) -> None:
        self.reply(self.make_tree(make))

    def make_tree(self, make: MakeTree) -> TreeReady:
        try:
            if self.worktrees is None:
                return TreeReady(
                    subtask_id=make.subtask_id,
                    cwd=str(self.working_dir),
                    base_commit=Workspace(self.working_dir).head(),
                )
            if make.integration:
                return TreeReady(
                    subtask_id=make.subtask_id,
                    cwd=str(self.worktrees.path(RESULT)),
                    base_commit=self.worktrees.head(RESULT),
                )
            if merged := self.merge_commit_of(make.subtask_id):
                return TreeReady(subtask_id=make.subtask_id, merged=merged)
            name = branch_name(make.subtask_id)
            if make.remote:
                start = self.worktrees.head(RESULT)
                branch = self.worktrees.start_branch(name, start)
                return TreeReady(subtask_id=make.subtask_id, base_commit=start, branch=branch)
            start = self.worktrees.head(RESULT)
            fresh = not self.resumed and not self.worktrees.path(name).is_dir()
            cwd = self.create(name, start, subtask_id=make.subtask_id)
            base = start if fresh else self.worktrees.head(name)  # an older branch may have gone on from its start
            return TreeReady(subtask_id=make.subtask_id, cwd=str(cwd), base_commit=base)
        except WorkspaceError as exc:
            return TreeReady(subtask_id=make.subtask_id, error=str(exc))

    def fetch_result(self, fetch: FetchResult) -> ResultFetched:
        """A remote subtask's verified work onto its branch here, from the bundle its worker sent."""
        from agentproxy.bridge.bundles import fetch_result  # lazy: only runs with remote workers

        assert self.worktrees is not None
        branch = self.worktrees.branch(branch_name(fetch.subtask_id))
        try:
            if fetch.bundle:
                fetch_result(self.working_dir, Path(fetch.bundle), fetch.head, branch)
            elif fetch.head != self.worktrees.head(branch_name(fetch.subtask_id)):
                raise WorkspaceError(f"the worker sent no bundle of {fetch.head[:10]}")
        except WorkspaceError as exc:
            return ResultFetched(subtask_id=fetch.subtask_id, error=str(exc))
        return ResultFetched(subtask_id=fetch.subtask_id)

    def create(self, name: str, start: str, subtask_id: str = RESULT) -> Path:
        assert self.worktrees is not None
        existed = self.worktrees.path(name).is_dir()
        cwd = self.worktrees.create(name, start, new=not existed and not self.resumed)
        if not existed:
            self.record(
                WorktreeCreated(subtask_id=subtask_id, branch=self.worktrees.branch(name), path=str(cwd), start=start)
            )
            if included := self.worktrees.included.get(name):
                listing = ", ".join(f"{item.path} ({item.how})" for item in included)
                self.record(Notice(text=f"[{subtask_id}] from .worktreeinclude: {listing}"))
        return cwd

    # -- merging ---------------------------------------------------------------------------

    def commit_aside(self, integrate: Integrate) -> None:
        """Commit a subtask's work in its own worktree, beside the others' commits; then merge it, in turn."""
        assert self.worktrees is not None
        tree = self.worktrees.path(branch_name(integrate.subtask_id))
        if tree.is_dir():  # not when it ran remotely: its branch came committed
            try:
                self.commit(tree, integrate.title)
            except WorkspaceError as exc:
                self.reply(Integrated(subtask_id=integrate.subtask_id, error=str(exc)))
                return
        tell_quietly(self.actor_ref, msgspec.structs.replace(integrate, committed=True))

    def on_integrate(self, integrate: Integrate) -> None:
        # A merge finds a merge in progress itself (and fails); other work there asks first.
        if not integrate.conclude and (self.waiting or (integrate.integration and self.conflict_open())):
            self.waiting.append(integrate)  # the integration worktree is busy with a conflict
            return
        done = self.integrate(integrate)
        if done.error and not integrate.conclude and self.conflict_open():
            self.waiting.append(integrate)
            return
        self.reply(done)
        while self.waiting and not self.conflict_open():
            self.reply(self.integrate(self.waiting.popleft()))
        if self.merged_trees:
            self.tree_work(self.remove_merged, list(self.merged_trees))
            self.merged_trees.clear()

    def conflict_open(self) -> bool:
        """An agent is resolving a merge in the integration worktree."""
        try:
            return self.worktrees is not None and self.worktrees.merge_in_progress(RESULT)
        except WorkspaceError:
            return False  # the merge itself will say what is wrong

    def integrate(self, integrate: Integrate) -> Integrated:
        sid = integrate.subtask_id
        try:
            if self.worktrees is None:
                return Integrated(subtask_id=sid)  # in place: the run's work is committed once, when it lands
            if integrate.conclude:
                return self.conclude(integrate)
            if integrate.integration:
                return Integrated(subtask_id=sid, commit=self.commit(self.worktrees.path(RESULT), integrate.title))
            return self.merge(integrate)
        except WorkspaceError as exc:
            return Integrated(subtask_id=sid, error=str(exc))

    def merge(self, integrate: Integrate) -> Integrated:
        assert self.worktrees is not None
        if merged := self.merge_commit_of(integrate.subtask_id):
            return Integrated(subtask_id=integrate.subtask_id, commit=merged)  # before pa stopped: not again
        branch = self.worktrees.branch(branch_name(integrate.subtask_id))
        outcome = self.worktrees.merge(RESULT, branch, merge_subject(integrate.subtask_id, integrate.title))
        if outcome.conflicted:
            self.record(MergeConflicted(subtask_id=integrate.subtask_id, files=outcome.conflicted))
            return Integrated(subtask_id=integrate.subtask_id, conflicted=outcome.conflicted)
        return self.merged(integrate.subtask_id, outcome.commit or self.worktrees.head(RESULT))

    def merge_commit_of(self, subtask_id: str) -> str:
        """The commit that merged the subtask into the result since the run's base; "" if none did.

        Only a resumed run can find one: pa may have stopped between a merge and its record."""
        assert self.worktrees is not None
        if not self.resumed:
            return ""
        subject = merge_subject(subtask_id, "")
        log = run_git(self.worktrees.path(RESULT), "log", "--format=%H%x09%s", f"{self.base}..HEAD")
        return next((line.split("\t", 1)[0] for line in log.splitlines() if f"\t{subject}" in line), "")

    def conclude(self, integrate: Integrate) -> Integrated:
        """An agent resolved the conflicts in the integration worktree: commit the merge."""
        assert self.worktrees is not None
        if left := self.worktrees.markers_left(RESULT):
            return Integrated(subtask_id=integrate.subtask_id, conflicted=left, error="conflict markers are left")
        commit = self.worktrees.conclude_merge(RESULT, merge_subject(integrate.subtask_id, integrate.title))
        if integrate.subtask_id == RESULT:
            self.merged_users_branch = True
            return Integrated(subtask_id=RESULT, commit=commit)  # the user's branch, merged in before landing
        return self.merged(integrate.subtask_id, commit)

    def merged(self, subtask_id: str, commit: str) -> Integrated:
        assert self.worktrees is not None
        name = branch_name(subtask_id)
        self.record(Merged(subtask_id=subtask_id, branch=self.worktrees.branch(name), commit=commit))
        self.merged_trees.append((name, subtask_id))
        return Integrated(subtask_id=subtask_id, commit=commit)

    def remove_merged(self, merged_trees: list[tuple[str, str]]) -> None:
        """The worktrees of what was merged go aside, once the merges are answered: no merge waits for them."""
        for name, subtask_id in merged_trees:
            try:
                self.remove(name, subtask_id)
            except WorkspaceError as exc:
                warning = f"could not remove the merged worktree of {subtask_id}: {exc}"
                self.record(Notice(level="warning", text=warning))

    def commit(self, cwd: Path, title: str) -> str:
        workspace = Workspace(cwd, identity=self.worktrees.identity if self.worktrees else None)
        try:
            return workspace.commit_all(f"agentproxy: {commit_subject(title)}") or ""
        finally:
            self.warn_excluded(workspace)

    # -- the end ---------------------------------------------------------------------------

    def land(self, task: str) -> LandDone:
        try:
            if self.worktrees is None:
                return LandDone(landed=self.commit_in_place(task))
            result = self.worktrees.branch(RESULT)
            # Where the user's branch and the result parted: the run's base, unless the branch moved since.
            base = run_git(self.working_dir, "merge-base", self.user_branch, result).strip()
            landing = self.worktrees.land(self.user_branch, base)
            if landing.how == "kept" and landing.reason == CONFLICT:
                conflicted = self.worktrees.conflicted(RESULT)
                self.record(MergeConflicted(subtask_id=RESULT, files=conflicted))
                return LandDone(conflicted=conflicted)
        except WorkspaceError as exc:
            return LandDone(error=str(exc))
        self.landed_on_branch = landing.how != "kept"
        # After an agent merged the user's moved branch into the result, landing it is a fast-forward.
        how = "merge" if self.merged_users_branch and landing.how == "fast-forward" else landing.how
        landed = Landed(
            how=how,  # type: ignore[arg-type]
            branch=self.user_branch,
            commit=landing.commit or "",
            reason=landing.reason,
            command=landing.command,
        )
        self.record(landed)
        return LandDone(landed=landed)

    def commit_in_place(self, task: str) -> Landed:
        workspace = Workspace(self.working_dir)
        message = f"agentproxy: {commit_subject(task)}\n\nSession {self.session_id}.\n"
        try:
            commit = workspace.commit_all(message)
        finally:
            self.warn_excluded(workspace)
        if commit:
            self.record(Committed(commit=commit, message=message.splitlines()[0]))
        return Landed(how="committed", branch=self.user_branch, commit=commit or "")

    def release_run(self, status: str, merged: list[str]) -> list[str]:
        """Remove what is merged or landed; keep the rest, listed. The kept worktrees' paths."""
        if self.worktrees is None:
            if status != "done" and Workspace(self.working_dir).has_changes():
                self.record(
                    Notice(level="warning", text=f"changes left uncommitted in {self.working_dir} for inspection")
                )
            return []
        landed = status == "done" and self.landed_on_branch
        self.wait_for_tree_work()  # a tree still being made is listed too, not left behind unlisted
        try:
            kept = self.worktrees.listed()
            for subtask_id in merged:  # left behind when pa stopped between a merge and its clean-up
                if kept.pop(branch_name(subtask_id), None) is not None:
                    self.remove(branch_name(subtask_id), subtask_id)
            if kept.pop(RESULT, None) is not None:
                self.worktrees.remove(RESULT, keep_branch=not landed)  # the verified work, not yet yours
            if landed and not kept:
                self.worktrees.remove_all()
        except WorkspaceError as exc:
            self.record(Notice(level="warning", text=f"could not clean the worktrees up: {exc}"))
            return []
        if kept:
            listing = "\n".join(f"  {name}: {path}" for name, path in sorted(kept.items()))
            hint = f"pa -s {self.session_id} resumes them, pa -s {self.session_id} --discard removes them"
            self.record(Notice(level="warning", text=f"worktrees kept for inspection ({hint}):\n{listing}"))
        return [str(path) for path in kept.values()]

    def discard(self, subtask_id: str) -> None:
        """A losing best-of attempt: its worktree and branch go (its work is not wanted)."""
        if self.worktrees is None or branch_name(subtask_id) not in self.worktrees.listed():
            return
        try:
            self.remove(branch_name(subtask_id), subtask_id)
        except WorkspaceError as exc:
            self.record(Notice(level="warning", text=f"could not remove the discarded attempt {subtask_id}: {exc}"))

    def remove(self, name: str, subtask_id: str) -> None:
        assert self.worktrees is not None
        self.worktrees.remove(name)
        self.record(WorktreeRemoved(subtask_id=subtask_id))

    def warn_excluded(self, workspace: Workspace) -> None:
        if workspace.excluded:
            self.record(Notice(level="warning", text=exclusion_warning(workspace.excluded)))


def merge_subject(subtask_id: str, title: str) -> str:
    """The first line of the commit merging a subtask: how a resumed run knows it merged already."""
    return f"agentproxy: merge {subtask_id}: {title}"


def branch_name(subtask_id: str) -> str:
    """A subtask id as the last part of a branch name (git refuses spaces, `..`, `~`, `:` and more)."""
    return _UNSAFE_IN_BRANCH.sub("-", subtask_id).strip(".-") or "subtask"


def commit_subject(task: str, limit: int = 60) -> str:
    first = " ".join(task.split())
    return first if len(first) <= limit else first[: limit - 1] + "…"
