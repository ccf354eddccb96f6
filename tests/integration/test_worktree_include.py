""".worktreeinclude with real git: which ignored files a new worktree gets, copied or linked."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from agentproxy.worktree_include import Included, copy_included
from agentproxy.worktrees import SessionWorktrees

IGNORES = ".env\n.env.*\nnode_modules/\n*.local\nbuild/\n*.link\n"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


@pytest.fixture
def project(tmp_path: Path, git_env: None) -> Path:
    """A repository ignoring IGNORES, with ignored files, an untracked one, and a tracked settings.local."""
    project = tmp_path / "project"
    project.mkdir()
    write(project, {".gitignore": IGNORES, "app.py": "print()\n", "settings.local": "tracked\n"})
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "add", "-f", "settings.local")
    git(project, "commit", "-q", "-m", "base")
    write(
        project,
        {
            "run.local": "#!/bin/sh\n",
            "config/db.local": "db\n",
            "node_modules/pkg/index.js": "module.exports = 1\n",
            ".env": "TOKEN=1\n",
            ".env.production": "TOKEN=2\n",
            "build/keep.txt": "keep\n",
            "build/skip.txt": "skip\n",
            "notes.txt": "untracked, not ignored\n",
        },
    )
    (project / "run.local").chmod(0o755)
    return project


@pytest.fixture
def worktree(project: Path, tmp_path: Path) -> Path:
    top = tmp_path / "worktree"
    git(project, "worktree", "add", "-q", "-b", "wt", str(top))
    return top


def include(project: Path, worktree: Path, lines: str) -> list[Included]:
    (project / ".worktreeinclude").write_text(lines)
    return sorted(copy_included(project, worktree), key=lambda item: item.path)


def test_ignored_files_are_copied_with_their_modes(project: Path, worktree: Path) -> None:
    included = include(project, worktree, "# local settings\n\n*.local\n")

    assert included == [Included("config/db.local", "copied"), Included("run.local", "copied")]
    assert (worktree / "config" / "db.local").read_text() == "db\n"
    assert os.access(worktree / "run.local", os.X_OK)
    assert (worktree / "settings.local").read_text() == "tracked\n"  # tracked: the checkout's, left alone


def test_a_link_line_symlinks_the_directory(project: Path, worktree: Path) -> None:
    included = include(project, worktree, "link:node_modules/\n")

    assert included == [Included("node_modules", "linked")]
    assert (worktree / "node_modules").is_symlink()
    assert (worktree / "node_modules").resolve() == (project / "node_modules").resolve()
    assert (worktree / "node_modules" / "pkg" / "index.js").read_text() == "module.exports = 1\n"


def test_negation_and_anchoring_follow_gitignore(project: Path, worktree: Path) -> None:
    included = include(project, worktree, "/build/*\n!build/skip.txt\n/db.local\n")

    assert included == [Included("build/keep.txt", "copied")]


def test_an_untracked_file_that_is_not_ignored_is_not_copied(project: Path, worktree: Path) -> None:
    included = include(project, worktree, "*.txt\n")

    assert included == [Included("build/keep.txt", "copied"), Included("build/skip.txt", "copied")]
    assert not (worktree / "notes.txt").exists()


def test_secrets_come_only_when_named_exactly(project: Path, worktree: Path) -> None:
    assert [item.path for item in include(project, worktree, "*\n")] == [
        "build/keep.txt",
        "build/skip.txt",
        "config/db.local",
        "node_modules/pkg/index.js",
        "run.local",
    ]
    assert include(project, worktree, ".env*\n") == []
    assert include(project, worktree, "/.env\n.env.*\n") == [Included(".env", "copied")]
    assert (worktree / ".env").read_text() == "TOKEN=1\n"
    assert not (worktree / ".env.production").exists()


def test_a_link_leading_outside_is_copied_as_a_link(project: Path, worktree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("outside\n")
    (project / "shared.link").symlink_to(outside)

    assert include(project, worktree, "*.link\n") == [Included("shared.link", "copied")]
    assert os.readlink(worktree / "shared.link") == str(outside)


def test_a_nested_repository_is_copied_whole_but_its_secrets(project: Path, worktree: Path) -> None:
    write(project, {"build/vendored/lib.py": "x = 1\n", "build/vendored/.env": "TOKEN=3\n"})
    git(project / "build" / "vendored", "init", "-q")

    included = include(project, worktree, "build/vendored/\n")

    assert Included("build/vendored/lib.py", "copied") in included
    assert all(
        item.path.startswith("build/vendored/.git/") for item in included if item.path != "build/vendored/lib.py"
    )
    assert (worktree / "build" / "vendored" / "lib.py").read_text() == "x = 1\n"
    assert not (worktree / "build" / "vendored" / ".env").exists()


def test_without_a_worktreeinclude_nothing_is_copied(project: Path, worktree: Path) -> None:
    assert copy_included(project, worktree) == []
    assert not (worktree / "run.local").exists()


def test_a_new_session_worktree_gets_the_included_files(project: Path, tmp_path: Path) -> None:
    (project / ".worktreeinclude").write_text("*.local\nlink:node_modules/\n")
    trees = SessionWorktrees(project, tmp_path / "worktrees", "ab12cd34")

    path = trees.create("t1", "main")

    assert sorted(item.path for item in trees.included["t1"]) == ["config/db.local", "node_modules", "run.local"]
    assert (path / "run.local").read_text() == "#!/bin/sh\n"
    assert (path / "node_modules").is_symlink()
    assert git(path, "status", "--porcelain") == ""  # all of it ignored there too
