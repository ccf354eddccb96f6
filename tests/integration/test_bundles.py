"""Commits between hosts without a shared filesystem, with real git: base bundles down, result bundles up, chunks."""

from __future__ import annotations

import os
import random
import subprocess
import threading
from pathlib import Path

import pytest

from agentproxy.bridge.bundles import (
    Reassembly,
    WorkerRepos,
    chunks,
    fetch_result,
    repo_id,
    write_base_bundle,
)
from agentproxy.errors import WorkspaceError
from agentproxy.workspace import Workspace

BRANCH = "agentproxy/ab12cd34/t1"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def commit_file(directory: Path, name: str, data: bytes) -> str:
    (directory / name).write_bytes(data)
    sha = Workspace(directory).commit_all(f"write {name}")
    assert sha is not None
    return sha


@pytest.fixture
def project(tmp_path: Path, git_env: None) -> Path:
    """The supervisor's repository on main: a.txt, and big.bin of 200 KB that does not compress."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "a.txt").write_text("a\n")
    (project / "big.bin").write_bytes(os.urandom(200_000))
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "base")
    return project


@pytest.fixture
def worker(tmp_path: Path) -> WorkerRepos:
    return WorkerRepos(tmp_path / "worker")


def send_base(project: Path, worker: WorkerRepos, dest: Path) -> Path | None:
    """What an assignment does before the agent starts: bundle main's head for the worker's haves, take it."""
    identity = repo_id(project)
    bundle = write_base_bundle(project, git(project, "rev-parse", "HEAD").strip(), BRANCH, dest, worker.heads(identity))
    if bundle is not None:
        worker.take_bundle(identity, bundle, BRANCH)
    return bundle


# --- the round trip ----------------------------------------------------------------------------------


def test_a_subtask_goes_to_the_worker_and_its_result_comes_back(
    project: Path, worker: WorkerRepos, tmp_path: Path
) -> None:
    identity, base = repo_id(project), Workspace(project).head()
    git(project, "branch", BRANCH, base)  # the supervisor's subtask branch, checked out nowhere

    assert send_base(project, worker, tmp_path / "base.bundle") is not None
    tree = worker.make_worktree(identity, BRANCH, base, worker.worktrees / "t1")
    assert (tree / "a.txt").read_text() == "a\n"
    (tree / "new.txt").write_text("the agent's work\n")
    head = worker.commit_work(tree, "subtask t1")
    result = worker.write_result_bundle(identity, BRANCH, base, tmp_path / "result.bundle")
    assert result is not None
    fetch_result(project, result, head, BRANCH)

    assert git(project, "rev-parse", f"refs/heads/{BRANCH}").strip() == head
    assert git(project, "show", f"{BRANCH}:new.txt") == "the agent's work\n"
    assert git(project, "status", "--porcelain") == ""  # the user's tree is left alone
    assert git(project, "rev-parse", "main").strip() == base


def test_the_repository_id_is_its_root_commit(project: Path) -> None:
    root = git(project, "rev-list", "--max-parents=0", "HEAD").strip()
    commit_file(project, "b.txt", b"b\n")

    assert repo_id(project) == root


def test_a_worker_announces_the_base_it_took(project: Path, worker: WorkerRepos, tmp_path: Path) -> None:
    send_base(project, worker, tmp_path / "base.bundle")

    assert worker.all_heads() == {repo_id(project): [Workspace(project).head()]}


def test_a_worktree_made_again_at_the_same_path_starts_afresh(
    project: Path, worker: WorkerRepos, tmp_path: Path
) -> None:
    identity, base = repo_id(project), Workspace(project).head()
    send_base(project, worker, tmp_path / "base.bundle")
    first = worker.make_worktree(identity, BRANCH, base, worker.worktrees / "t1")
    commit_file(first, "junk.txt", b"committed by an earlier attempt\n")
    (first / "loose.txt").write_text("left uncommitted\n")

    again = worker.make_worktree(identity, BRANCH, base, worker.worktrees / "t1")

    assert again == first
    assert not (again / "junk.txt").exists() and not (again / "loose.txt").exists()
    assert Workspace(again).head() == base


def test_removing_a_worktree_keeps_its_branch(project: Path, worker: WorkerRepos, tmp_path: Path) -> None:
    identity, base = repo_id(project), Workspace(project).head()
    send_base(project, worker, tmp_path / "base.bundle")
    tree = worker.make_worktree(identity, BRANCH, base, worker.worktrees / "t1")
    head = commit_file(tree, "c.txt", b"c\n")

    worker.remove_worktree(tree)

    assert not tree.exists()
    clone = worker.clone(identity)
    assert git(clone, "rev-parse", f"refs/heads/{BRANCH}").strip() == head
    assert str(tree) not in git(clone, "worktree", "list")
    assert head in worker.heads(identity)


def test_nothing_changed_means_no_result_bundle(project: Path, worker: WorkerRepos, tmp_path: Path) -> None:
    identity, base = repo_id(project), Workspace(project).head()
    send_base(project, worker, tmp_path / "base.bundle")
    tree = worker.make_worktree(identity, BRANCH, base, worker.worktrees / "t1")

    assert worker.commit_work(tree, "nothing") == base
    assert worker.write_result_bundle(identity, BRANCH, base, tmp_path / "result.bundle") is None


def test_a_worktree_needs_its_base_in_the_clone(project: Path, worker: WorkerRepos) -> None:
    with pytest.raises(WorkspaceError, match="lacks the base commit"):
        worker.make_worktree(repo_id(project), BRANCH, Workspace(project).head(), worker.worktrees / "t1")


def test_a_repository_id_that_is_not_a_hash_is_refused(worker: WorkerRepos) -> None:
    with pytest.raises(WorkspaceError, match="not a repository id"):
        worker.clone("../../elsewhere")


# --- incremental base bundles ------------------------------------------------------------------------


def test_a_second_base_bundle_holds_only_what_the_worker_lacks(
    project: Path, worker: WorkerRepos, tmp_path: Path
) -> None:
    identity = repo_id(project)
    first = send_base(project, worker, tmp_path / "first.bundle")
    head = commit_file(project, "b.txt", b"b\n")

    second = send_base(project, worker, tmp_path / "second.bundle")
    full = write_base_bundle(project, head, BRANCH, tmp_path / "full.bundle", [])

    assert first is not None and second is not None and full is not None
    assert second.stat().st_size * 20 < full.stat().st_size  # big.bin is not sent again
    tree = worker.make_worktree(identity, BRANCH, head, worker.worktrees / "t1")
    assert (tree / "b.txt").read_text() == "b\n"


def test_no_base_bundle_when_the_worker_holds_the_commit(project: Path, worker: WorkerRepos, tmp_path: Path) -> None:
    send_base(project, worker, tmp_path / "first.bundle")

    assert send_base(project, worker, tmp_path / "again.bundle") is None
    assert not (tmp_path / "again.bundle").exists()


def test_haves_unknown_to_the_supervisor_are_ignored(project: Path, tmp_path: Path) -> None:
    head = Workspace(project).head()
    unknown = ["0" * 40, "not-a-commit", "--all"]

    bundle = write_base_bundle(project, head, BRANCH, tmp_path / "base.bundle", unknown)

    assert bundle is not None
    assert git(project, "bundle", "list-heads", str(bundle)).split() == [head, f"refs/heads/{BRANCH}"]


def test_a_base_bundle_leaves_the_users_refs_alone(project: Path, tmp_path: Path) -> None:
    refs = git(project, "for-each-ref")

    write_base_bundle(project, Workspace(project).head(), BRANCH, tmp_path / "base.bundle", [])

    assert git(project, "for-each-ref") == refs


# --- fetching results --------------------------------------------------------------------------------


def test_fetch_result_refuses_a_head_the_bundle_does_not_hold(
    project: Path, worker: WorkerRepos, tmp_path: Path
) -> None:
    identity, base = repo_id(project), Workspace(project).head()
    send_base(project, worker, tmp_path / "base.bundle")
    tree = worker.make_worktree(identity, BRANCH, base, worker.worktrees / "t1")
    commit_file(tree, "c.txt", b"c\n")
    result = worker.write_result_bundle(identity, BRANCH, base, tmp_path / "result.bundle")
    assert result is not None

    with pytest.raises(WorkspaceError, match="does not hold"):
        fetch_result(project, result, base, BRANCH)
    assert git(project, "branch", "--list", BRANCH) == ""


def test_fetch_result_refuses_a_bundle_whose_base_it_lacks(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    commit_file(other, "x.txt", b"x\n")
    head = commit_file(other, "y.txt", b"y\n")
    git(other, "bundle", "create", "-q", str(tmp_path / "thin.bundle"), "main", "^main~1")

    with pytest.raises(WorkspaceError, match="bundle failed"):
        fetch_result(project, tmp_path / "thin.bundle", head, BRANCH)


# --- chunks ------------------------------------------------------------------------------------------


def test_chunks_reassemble_in_any_order(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(10_000))
    parts = list(chunks(source, size=1024))
    random.Random(7).shuffle(parts)
    reassembly = Reassembly(tmp_path / "copy.bin", size=1024)

    done = [reassembly.add(*part) for part in parts]

    assert len(parts) == 10 and {count for _, count, _ in parts} == {10}
    assert done == [False] * 9 + [True]
    assert (tmp_path / "copy.bin").read_bytes() == source.read_bytes()


def test_an_empty_file_is_one_chunk(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")

    assert list(chunks(tmp_path / "empty")) == [(0, 1, b"")]
    assert Reassembly(tmp_path / "copy").add(0, 1, b"")
    assert (tmp_path / "copy").read_bytes() == b""


def test_an_exact_duplicate_chunk_is_ignored(tmp_path: Path) -> None:
    reassembly = Reassembly(tmp_path / "copy.bin", size=4)

    assert not reassembly.add(0, 2, b"abcd")
    assert not reassembly.add(0, 2, b"abcd")
    assert reassembly.add(1, 2, b"ef")
    assert reassembly.add(1, 2, b"ef")
    assert (tmp_path / "copy.bin").read_bytes() == b"abcdef"


@pytest.mark.parametrize(
    ("index", "count", "data", "complaint"),
    [
        (1, 3, b"efgh", "says 3 chunks, not 2"),
        (2, 2, b"ef", "out of range"),
        (-1, 2, b"ef", "out of range"),
        (0, 2, b"abcX", "different data"),
        (1, 2, b"efghi", "has 5 bytes"),
    ],
)
def test_a_chunk_that_contradicts_the_others_is_refused(
    tmp_path: Path, index: int, count: int, data: bytes, complaint: str
) -> None:
    reassembly = Reassembly(tmp_path / "copy.bin", size=4)
    reassembly.add(0, 2, b"abcd")

    with pytest.raises(ValueError, match=complaint):
        reassembly.add(index, count, data)
    assert reassembly.add(1, 2, b"ef")  # the refused chunk left nothing behind
    assert (tmp_path / "copy.bin").read_bytes() == b"abcdef"


@pytest.mark.parametrize(
    ("count", "data", "complaint"), [(2, b"ab", "has 2 bytes"), (0, b"", "says 0 chunks, not at least 1")]
)
def test_a_first_chunk_that_cannot_be_right_is_refused(tmp_path: Path, count: int, data: bytes, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        Reassembly(tmp_path / "copy.bin", size=4).add(0, count, data)
    assert not (tmp_path / "copy.bin").exists()


def test_assignments_of_one_repository_set_up_at_once_on_one_worker(
    project: Path, worker: WorkerRepos, tmp_path: Path
) -> None:
    """One slot per thread, as a worker with --slots 4 sets its assignments up: none trips over another."""
    identity, base = repo_id(project), Workspace(project).head()
    bundle = write_base_bundle(project, base, BRANCH, tmp_path / "base.bundle", [])
    assert bundle is not None
    errors: list[BaseException] = []

    def set_up(slot: int) -> None:
        try:
            worker.take_bundle(identity, bundle, BRANCH)
            worker.make_worktree(identity, f"{BRANCH}-{slot}", base, worker.worktrees / f"slot{slot}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=set_up, args=(slot,)) for slot in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert all((worker.worktrees / f"slot{slot}" / "a.txt").read_text() == "a\n" for slot in range(4))
