"""A session's worktrees with real git: making them, merging subtasks into the result, landing the result."""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agentproxy.errors import WorkspaceError
from agentproxy.workspace import Workspace
from agentproxy.worktrees import CONFLICT, SessionWorktrees, session_branches

SESSION = "ab12cd34"
RESULT_BRANCH = f"agentproxy/{SESSION}/result"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def project(tmp_path: Path, git_env: None) -> Path:
    """The user's repository on main: a.txt and b.txt of three lines each, and sub/c.txt, committed."""
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (project / "a.txt").write_text("a1\na2\na3\n")
    (project / "b.txt").write_text("b1\nb2\nb3\n")
    (project / "sub" / "c.txt").write_text("c\n")
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "base")
    return project


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "data" / "worktrees" / SESSION


@pytest.fixture
def trees(project: Path, root: Path) -> SessionWorktrees:
    return SessionWorktrees(project, root, SESSION)


def commit_file(directory: Path, name: str, text: str) -> str:
    (directory / name).write_text(text)
    sha = Workspace(directory).commit_all(f"write {name}")
    assert sha is not None
    return sha


def registered_worktrees(project: Path) -> list[Path]:
    lines = git(project, "worktree", "list", "--porcelain").splitlines()
    return [Path(line.split(" ", 1)[1]) for line in lines if line.startswith("worktree ")]


def merging(directory: Path) -> bool:
    return subprocess.run(["git", "rev-parse", "-q", "--verify", "MERGE_HEAD"], cwd=directory).returncode == 0


# --- making worktrees --------------------------------------------------------------------------------


def test_create_checks_out_a_session_branch_under_the_root(project: Path, root: Path, trees: SessionWorktrees) -> None:
    base = Workspace(project).head()

    path = trees.create("t1", "main")

    assert path == root.resolve() / "t1"
    assert (path / "a.txt").read_text() == "a1\na2\na3\n"
    assert trees.branch("t1") == f"agentproxy/{SESSION}/t1"
    assert trees.head("t1") == base
    assert path in registered_worktrees(project)
    assert trees.listed() == {"t1": path}
    assert git(project, "status", "--porcelain") == ""  # the user's tree is left alone


def test_create_again_returns_the_worktree_untouched(trees: SessionWorktrees) -> None:
    path = trees.create("t1", "main")
    (path / "a.txt").write_text("work in progress\n")

    assert trees.create("t1", "main") == path
    assert (path / "a.txt").read_text() == "work in progress\n"


def test_create_resumes_a_branch_whose_directory_is_gone(project: Path, trees: SessionWorktrees) -> None:
    path = trees.create("t1", "main")
    done = commit_file(path, "a.txt", "done\n")
    shutil.rmtree(path)

    assert trees.create("t1", "main") == path

    assert trees.head("t1") == done
    assert (path / "a.txt").read_text() == "done\n"
    assert registered_worktrees(project).count(path) == 1


def test_a_new_worktree_gets_the_post_checkout_hook_as_git_worktree_add_runs_it(
    project: Path, trees: SessionWorktrees
) -> None:
    hook = project / ".git" / "hooks" / "post-checkout"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text('#!/bin/sh\necho "$@" >> "$(git rev-parse --git-common-dir)/../hook.log"\nls > seen.txt\n')
    hook.chmod(0o755)
    base = Workspace(project).head()

    path = trees.create("t1", base)

    assert (project / "hook.log").read_text().split() == ["0" * 40, base, "1"]
    assert "a.txt" in (path / "seen.txt").read_text().split()  # it ran in the filled worktree


def test_trees_made_and_removed_from_many_threads_at_once_all_succeed(project: Path, trees: SessionWorktrees) -> None:
    """Git fails a command that reads its list of worktrees while `worktree add` writes an entry."""
    base = Workspace(project).head()
    kept: list[str] = []
    with ThreadPoolExecutor(8) as pool:
        for round_ in range(3):  # rounds of makes beside removes: a race shows in one of them
            made, gone = [f"r{round_}k{number}" for number in range(8)], [f"r{round_}g{number}" for number in range(8)]
            list(pool.map(lambda name: trees.create(name, base, new=True), gone))
            making = pool.map(lambda name: trees.create(name, base, new=True), made)
            removing = pool.map(trees.remove, gone)
            assert all((path / "a.txt").is_file() for path in making)
            list(removing)
            kept += made

    assert sorted(trees.listed()) == sorted(kept)
    assert session_branches(project, SESSION) == sorted(trees.branch(name) for name in kept)


def test_a_worktree_left_unfilled_is_filled_when_the_run_resumes(project: Path, trees: SessionWorktrees) -> None:
    path = trees.root / "t1"
    trees.root.mkdir(parents=True)
    git(project, "worktree", "add", "-q", "--no-checkout", "-b", trees.branch("t1"), str(path), "main")

    assert trees.create("t1", "main") == path

    assert (path / "a.txt").read_text() == "a1\na2\na3\n"
    assert git(path, "status", "--porcelain") == ""


def test_from_a_subdirectory_every_path_is_that_subdirectory(project: Path, root: Path) -> None:
    trees = SessionWorktrees(project / "sub", root, SESSION)

    path = trees.create("t1", "main")

    assert path == root.resolve() / "t1" / "sub"
    assert (path / "c.txt").read_text() == "c\n"
    assert trees.path("t1") == path
    assert trees.listed() == {"t1": path}


def test_names_that_cannot_be_branch_components_are_refused(trees: SessionWorktrees) -> None:
    for name in ("../escape", "a/b", "", "x..y"):
        with pytest.raises(WorkspaceError, match="cannot name a branch"):
            trees.create(name, "main")


# --- merging ---------------------------------------------------------------------------------------


def test_branches_editing_different_files_merge_cleanly(trees: SessionWorktrees) -> None:
    result = trees.create("result", "main")
    commit_file(trees.create("t1", "main"), "a.txt", "a from t1\n")
    commit_file(trees.create("t2", "main"), "b.txt", "b from t2\n")

    first = trees.merge("result", trees.branch("t1"), "merge t1")
    second = trees.merge("result", trees.branch("t2"), "merge t2")

    assert first.conflicted == [] and second.conflicted == []
    assert second.commit == trees.head("result") != first.commit
    assert (result / "a.txt").read_text() == "a from t1\n"
    assert (result / "b.txt").read_text() == "b from t2\n"
    assert git(result, "log", "-1", "--format=%P").split()[1] == trees.head("t2")  # a real merge commit
    assert trees.merge("result", trees.branch("t1"), "again") == second  # already contained: nothing happens


def conflicting_merge(trees: SessionWorktrees) -> Path:
    """t1 and t2 rewrite the same line of a.txt; t1 is merged into the result, t2 conflicts."""
    result = trees.create("result", "main")
    commit_file(trees.create("t1", "main"), "a.txt", "a1\nt1\na3\n")
    commit_file(trees.create("t2", "main"), "a.txt", "a1\nt2\na3\n")
    assert trees.merge("result", trees.branch("t1"), "merge t1").conflicted == []
    return result


def test_a_conflict_is_left_in_progress_and_concluded_once_fixed(trees: SessionWorktrees) -> None:
    result = conflicting_merge(trees)
    before = trees.head("result")

    outcome = trees.merge("result", trees.branch("t2"), "merge t2")

    assert outcome.commit is None
    assert outcome.conflicted == ["a.txt"]
    assert merging(result)
    assert trees.markers_left("result") == ["a.txt"]
    with pytest.raises(WorkspaceError, match="a merge is already in progress"):
        trees.merge("result", trees.branch("t2"), "merge t2 again")
    with pytest.raises(WorkspaceError, match=r"conflict markers are left in a\.txt"):
        trees.conclude_merge("result", "merge t2")

    (result / "a.txt").write_text("a1\nt1 and t2\na3\n")
    assert trees.markers_left("result") == []
    sha = trees.conclude_merge("result", "merge t2")

    assert sha == trees.head("result")
    assert git(result, "log", "-1", "--format=%P %s").split() == [before, trees.head("t2"), "merge", "t2"]
    assert not merging(result)
    assert git(result, "status", "--porcelain") == ""


def test_abort_gives_the_merge_up(trees: SessionWorktrees) -> None:
    result = conflicting_merge(trees)
    before = trees.head("result")
    trees.merge("result", trees.branch("t2"), "merge t2")

    trees.abort_merge("result")
    trees.abort_merge("result")  # nothing left to abort: fine

    assert not merging(result)
    assert trees.head("result") == before
    assert (result / "a.txt").read_text() == "a1\nt1\na3\n"


def test_conclude_without_a_merge_in_progress_is_an_error(trees: SessionWorktrees) -> None:
    trees.create("result", "main")

    with pytest.raises(WorkspaceError, match="no merge is in progress"):
        trees.conclude_merge("result", "nothing")


# --- removing ----------------------------------------------------------------------------------------


def test_remove_and_remove_all_leave_no_branch_and_no_worktree(
    project: Path, root: Path, trees: SessionWorktrees
) -> None:
    for name in ("t1", "t2", "result"):
        trees.create(name, "main")
    commit_file(trees.path("t2"), "b.txt", "unmerged work\n")
    (trees.path("t1") / "scratch.txt").write_text("uncommitted\n")

    trees.remove("t1")
    trees.remove("t1")  # already gone: fine
    assert session_branches(project, SESSION) == [trees.branch("result"), trees.branch("t2")]

    trees.remove_all(keep=["result"])
    assert session_branches(project, SESSION) == [trees.branch("result")]
    assert sorted(trees.listed()) == ["result"]

    trees.remove_all()
    assert session_branches(project, SESSION) == []
    assert registered_worktrees(project) == [project.resolve()]
    assert not root.exists()


def test_remove_keep_branch_keeps_the_work(project: Path, trees: SessionWorktrees) -> None:
    done = commit_file(trees.create("t1", "main"), "a.txt", "done\n")

    trees.remove("t1", keep_branch=True)

    assert not trees.path("t1").exists()
    assert trees.head("t1") == done


# --- landing -------------------------------------------------------------------------------------------


def test_land_fast_forwards_a_branch_that_did_not_move(project: Path, trees: SessionWorktrees) -> None:
    base = Workspace(project).head()
    done = commit_file(trees.create("result", base), "a.txt", "result\n")

    landing = trees.land("main", base)

    assert (landing.how, landing.commit) == ("fast-forward", done)
    assert Workspace(project).head() == done
    assert (project / "a.txt").read_text() == "result\n"
    assert trees.land("main", base).commit == done  # landed already: nothing more


def test_land_merges_a_branch_that_moved(project: Path, trees: SessionWorktrees) -> None:
    base = Workspace(project).head()
    commit_file(trees.create("result", base), "a.txt", "result\n")
    user_commit = commit_file(project, "b.txt", "the user's\n")

    landing = trees.land("main", base)

    assert landing.how == "merge"
    assert landing.commit == Workspace(project).head() == trees.head("result")
    assert user_commit in git(project, "log", "-1", "--format=%P").split()
    assert (project / "a.txt").read_text() == "result\n"
    assert (project / "b.txt").read_text() == "the user's\n"


def test_land_leaves_a_conflict_with_the_moved_branch_in_the_result(project: Path, trees: SessionWorktrees) -> None:
    base = Workspace(project).head()
    result = trees.create("result", base)
    commit_file(result, "a.txt", "a1\nresult\na3\n")
    user_commit = commit_file(project, "a.txt", "a1\nuser\na3\n")

    landing = trees.land("main", base)

    assert (landing.how, landing.commit, landing.reason) == ("kept", None, CONFLICT)
    assert landing.command == f"git merge {RESULT_BRANCH}"
    assert Workspace(project).head() == user_commit
    assert merging(result)
    assert trees.markers_left("result") == ["a.txt"]

    (result / "a.txt").write_text("a1\nresult and user\na3\n")
    trees.conclude_merge("result", "merge main")
    again = trees.land("main", base)

    assert again.how == "merge"
    assert again.commit == Workspace(project).head() == trees.head("result")
    assert (project / "a.txt").read_text() == "a1\nresult and user\na3\n"


def test_land_keeps_the_result_when_the_user_has_changes(project: Path, trees: SessionWorktrees) -> None:
    base = Workspace(project).head()
    commit_file(trees.create("result", base), "b.txt", "result\n")
    (project / "a.txt").write_text("being edited\n")

    landing = trees.land("main", base)

    assert landing == trees.land("main", base)
    assert (landing.how, landing.commit) == ("kept", None)
    assert landing.reason == "your working tree has changes"
    assert landing.command == f"git merge {RESULT_BRANCH}"
    assert Workspace(project).head() == base
    assert (project / "b.txt").read_text() == "b1\nb2\nb3\n"


def test_land_keeps_the_result_when_the_user_switched_branch(project: Path, trees: SessionWorktrees) -> None:
    base = Workspace(project).head()
    commit_file(trees.create("result", base), "a.txt", "result\n")
    git(project, "switch", "-q", "-c", "elsewhere")

    landing = trees.land("main", base)

    assert landing.how == "kept"
    assert "elsewhere is checked out" in landing.reason
    assert landing.command == f"git merge {RESULT_BRANCH}"
    assert git(project, "rev-parse", "main").strip() == base


def test_land_keeps_the_result_when_a_new_file_of_the_user_is_in_the_way(
    project: Path, trees: SessionWorktrees
) -> None:
    base = Workspace(project).head()
    commit_file(trees.create("result", base), "new.txt", "from the result\n")
    (project / "new.txt").write_text("the user's own\n")

    landing = trees.land("main", base)

    assert (landing.how, landing.commit) == ("kept", None)
    assert "untracked working tree files would be overwritten" in landing.reason
    assert "new.txt" in landing.reason
    assert landing.command == f"git merge {RESULT_BRANCH}"
    assert Workspace(project).head() == base
    assert (project / "new.txt").read_text() == "the user's own\n"
