"""Bring the ignored files a project needs (.env, local settings, node_modules) into a new worktree.

A checkout carries only tracked files. ``.worktreeinclude`` at the repository's top lists, in
gitignore syntax, which of the files the repository ignores a worktree gets too: copied, or, for
a line starting with ``link:`` (meant for big directories such as node_modules or .venv),
symlinked to the user's own. Git matches the patterns, with its own gitignore semantics.
Secret-looking files come along only when a line names them exactly.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from agentproxy.errors import WorkspaceError
from agentproxy.secret_files import looks_like_secret_file
from agentproxy.workspace import Workspace
from agentproxy.worktrees import run_git

INCLUDE_FILE = ".worktreeinclude"
LINK_PREFIX = "link:"
_GLOB_CHARACTERS = frozenset("*?[\\")


@dataclass(frozen=True)
class Included:
    path: str  # from the repository's top
    how: str  # "copied" | "linked"


@dataclass(frozen=True)
class IncludeRules:
    copy: list[str]  # gitignore lines of the files to copy
    link: list[str]  # gitignore lines of what to symlink
    named: frozenset[str]  # paths a line names exactly: only these may be secrets


def parse_rules(text: str) -> IncludeRules:
    copy: list[str] = []
    link: list[str] = []
    named = set()
    for raw in text.splitlines():
        linking = raw.startswith(LINK_PREFIX)
        line = raw[len(LINK_PREFIX) :].lstrip() if linking else raw
        (link if linking else copy).append(line)
        name = line.strip().lstrip("/").rstrip("/")
        if name and not line.startswith(("#", "!")) and not _GLOB_CHARACTERS & set(name):
            named.add(name)
    return IncludeRules(copy, link, frozenset(named))


def copy_included(source_top: Path, worktree_top: Path) -> list[Included]:
    """Copy or link into worktree_top the ignored files of source_top that its .worktreeinclude names.

    No .worktreeinclude: nothing. Symlinks are copied as links (never followed), modes kept; nothing
    already in the worktree is replaced, and nothing is written through a link leading out of it.
    """
    try:
        text = (source_top / INCLUDE_FILE).read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise WorkspaceError(f"cannot read {source_top / INCLUDE_FILE}: {exc.strerror or exc}") from exc
    rules = parse_rules(text)
    ignored = _ignored_by_repository(source_top)
    linked = [
        path.rstrip("/")
        for path in _outermost(_matching(source_top, rules.link, directories=True))
        if _is_ignored(path, ignored) and _may_take(path, rules.named)
    ]
    copied = [
        path
        for path in _matching(source_top, rules.copy, directories=False)
        if _is_ignored(path, ignored) and _may_take(path, rules.named) and not _under_any(path, linked)
    ]
    done = [Included(path, "linked") for path in linked if _link(source_top, worktree_top, path)]
    _keep_out_of_git(worktree_top, [item.path for item in done])
    for path in copied:
        done += [Included(name, "copied") for name in _copy(source_top, worktree_top, path, rules.named)]
    return done


def _ignored_by_repository(top: Path) -> frozenset[str]:
    """What the repository ignores, a wholly ignored directory as one entry ending in '/'."""
    output = run_git(top, "ls-files", "--others", "--ignored", "--exclude-standard", "--directory", "-z")
    return frozenset(path for path in output.split("\0") if path)


def _matching(top: Path, lines: list[str], directories: bool) -> list[str]:
    """Untracked paths the gitignore lines match, as git matches them: files, or also whole directories ('x/')."""
    if not any(line.strip() and not line.startswith("#") for line in lines):
        return []
    listing = ["--directory"] if directories else []
    with tempfile.NamedTemporaryFile(
        "w", prefix="agentproxy-include-", encoding="utf-8", errors="surrogateescape"
    ) as patterns:
        patterns.write("\n".join(lines) + "\n")
        patterns.flush()
        output = run_git(top, "ls-files", "--others", "--ignored", f"--exclude-from={patterns.name}", *listing, "-z")
    return [path for path in output.split("\0") if path]


def _outermost(paths: list[str]) -> list[str]:
    """Drop directories listed along with something under them.

    With --directory, git also lists a directory whose contents all match though the directory
    itself does not: its matched contents are listed too, and they are what the lines meant.
    """
    return [path for path in paths if not (path.endswith("/") and any(o.startswith(path) for o in paths if o != path))]


def _is_ignored(path: str, ignored: frozenset[str]) -> bool:
    parts = path.rstrip("/").split("/")
    prefixes = ("/".join(parts[:depth]) for depth in range(1, len(parts) + 1))
    return any(prefix in ignored or f"{prefix}/" in ignored for prefix in prefixes)


def _may_take(path: str, named: frozenset[str]) -> bool:
    return not looks_like_secret_file(path.rstrip("/")) or path.rstrip("/") in named


def _under_any(path: str, directories: list[str]) -> bool:
    return any(path == directory or path.startswith(f"{directory}/") for directory in directories)


def _link(source_top: Path, worktree_top: Path, path: str) -> bool:
    target = worktree_top / path
    if os.path.lexists(target) or not _inside(target.parent, worktree_top):
        return False
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(source_top / path)
    except OSError as exc:
        raise WorkspaceError(f"cannot link {path} into the worktree {worktree_top}: {exc.strerror or exc}") from exc
    return True


def _keep_out_of_git(worktree_top: Path, links: list[str]) -> None:
    """Have git ignore the links too: `node_modules/` matches only directories, and a link is none to git.

    Without this, committing everything in the worktree would commit the links.
    """
    if not links:
        return
    # Exit 1 when none is ignored; an error's text names no path, so all count as not ignored.
    ignored = set(run_git(worktree_top, "check-ignore", "-z", "--", *links, check=False).split("\0"))
    Workspace(worktree_top).exclude([path for path in links if path not in ignored], "linked into agentproxy worktrees")


def _copy(source_top: Path, worktree_top: Path, path: str, named: frozenset[str]) -> list[str]:
    """Copy one listed path (a file, a link, or a directory git would not enter, such as a nested repository)."""
    if not path.endswith("/"):
        return [path] if _copy_entry(source_top, worktree_top, path) else []
    copied = []
    for directory, subdirectories, files in os.walk(source_top / path):  # os.walk does not follow links
        for name in [*files, *(d for d in subdirectories if (Path(directory) / d).is_symlink())]:
            relative = (Path(directory) / name).relative_to(source_top).as_posix()
            if _may_take(relative, named) and _copy_entry(source_top, worktree_top, relative):
                copied.append(relative)
    return copied


def _copy_entry(source_top: Path, worktree_top: Path, path: str) -> bool:
    """Copy one file or link, modes kept; False when something is there already, the place leads outside,
    or it is neither a file nor a link (a fifo would block the copy)."""
    source, target = source_top / path, worktree_top / path
    if not (source.is_symlink() or source.is_file()):
        return False
    if os.path.lexists(target) or not _inside(target.parent, worktree_top):
        return False
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    except OSError as exc:
        raise WorkspaceError(f"cannot copy {path} into the worktree {worktree_top}: {exc.strerror or exc}") from exc
    return True


def _inside(directory: Path, top: Path) -> bool:
    """Whether directory, once links are followed, is within top: a link in the checkout may lead anywhere."""
    resolved = directory.resolve()
    return resolved == top.resolve() or resolved.is_relative_to(top.resolve())
