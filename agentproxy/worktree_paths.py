"""Where a word of a command points, seen from the worktree: inside, outside, a secret, git's own files.

Words are expanded the way Bash would for the cases that matter to a policy (``~``, ``$HOME``,
``${HOME}``, ``$PWD``, variables set earlier on the line, ``{a,b}``), then resolved through
symlinks. A word that cannot be expanded (an unknown variable, ``$(...)``) is *unresolved*:
the rules treat it as pointing anywhere.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MAX_ALTERNATIVES = 32  # expansions of one word (brace and loop variables multiply)
SECRET_DIRS = (".ssh", ".aws", ".gnupg", ".config/gcloud", ".kube", ".docker/config.json", ".netrc")
HARMLESS_DEVICES = ("/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "/dev/zero")
_HARMLESS_PREFIXES = ("/dev/fd/", "/proc/self/fd/")
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_UNEXPANDABLE = re.compile(r"\$\(|`|\$\{[^}]*[^A-Za-z0-9_}]|\$[0-9@*#?$!-]|<\(|>\(")
_BRACES = re.compile(r"\{([^{}]*,[^{}]*)\}")
_GLOB = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Spot:
    """A resolved place; ``children`` when a glob names what lies *under* it, not the place itself."""

    path: Path
    children: bool = False
    written: str = ""  # the absolute path before symlinks were followed


class WorktreePaths:
    def __init__(self, root: Path, home: Path) -> None:
        self.root = _realpath(str(root))
        self.home_written = str(home)
        self.home = _realpath(str(home))

    # --- expansion ---------------------------------------------------------------------------

    def expand(self, word: str, variables: Mapping[str, tuple[str, ...]], cwd: Path) -> list[str] | None:
        """The strings a word may become, or None when the shell decides at run time."""
        if _UNEXPANDABLE.search(word):
            return None
        alternatives = [word]
        for _ in range(4):  # a variable's value may itself name variables
            expanded: list[str] = []
            for text in alternatives:
                choices = self._substitute(text, variables, cwd)
                if choices is None or any(_UNEXPANDABLE.search(choice) for choice in choices):
                    return None
                expanded += choices
                if len(expanded) > MAX_ALTERNATIVES:
                    return None
            if expanded == alternatives:
                break
            alternatives = expanded
        result: list[str] = []
        for text in alternatives:
            result += _braces(text)
            if len(result) > MAX_ALTERNATIVES:
                return None
        return [self._tilde(text, cwd) for text in result]

    def _substitute(self, text: str, variables: Mapping[str, tuple[str, ...]], cwd: Path) -> list[str] | None:
        names = [m.group(1) or m.group(2) for m in _VARIABLE.finditer(text)]
        if not names:
            return [text]
        values: list[tuple[str, ...]] = []
        for name in names:
            if name in variables:
                values.append(variables[name])
            elif name == "HOME":
                values.append((self.home_written,))
            elif name == "PWD":
                values.append((str(cwd),))
            else:
                return None
        pieces = _VARIABLE.split(text)[::3]  # split yields text, group1, group2, text, ...
        results = []
        for combination in itertools.islice(itertools.product(*values), MAX_ALTERNATIVES + 1):
            results.append("".join(p + v for p, v in zip(pieces, (*combination, ""), strict=True)))
        return results

    def _tilde(self, text: str, cwd: Path) -> str:
        if text == "~" or text.startswith("~/"):
            return self.home_written + text[1:]
        if text == "~+" or text.startswith("~+/"):
            return str(cwd) + text[2:]
        if text.startswith("~"):
            try:
                return os.path.expanduser(text)
            except (ValueError, KeyError, OSError):  # an odd user name: Bash leaves the word as it is
                return text
        return text

    # --- resolution --------------------------------------------------------------------------

    def cwd_for(self, cd: tuple[str, ...] | None, variables: Mapping[str, tuple[str, ...]]) -> Path | None:
        """The directory after a line's earlier `cd`s; None when that cannot be known."""
        if cd is None:
            return None
        cwd = self.root
        for argument in cd:
            expanded = self.expand(argument, variables, cwd)
            if expanded is None or len(expanded) != 1:
                return None
            cwd = _realpath(os.path.join(str(cwd), expanded[0]))
        return cwd

    def spots(self, word: str, variables: Mapping[str, tuple[str, ...]], cwd: Path | None) -> list[Spot] | None:
        """Where a word points, or None when that cannot be known."""
        if cwd is None and not word.startswith(("/", "~", "$")):
            return None
        expanded = self.expand(word, variables, cwd or self.root)
        if expanded is None:
            return None
        spots = []
        for text in expanded:
            if "\0" in text:
                return None
            absolute = os.path.normpath(os.path.join(str(cwd or self.root), text))
            if not os.path.isabs(text) and cwd is None:
                return None
            glob = _GLOB.search(absolute)
            if glob:
                base = absolute[: glob.start()].rsplit("/", 1)[0] or "/"
                spots.append(Spot(_realpath(base), children=True, written=absolute))
            else:
                spots.append(Spot(_realpath(absolute), written=absolute))
        return spots

    # --- classification ----------------------------------------------------------------------

    def inside(self, spot: Spot) -> bool:
        return spot.path == self.root or spot.path.is_relative_to(self.root)

    def strictly_inside(self, spot: Spot) -> bool:
        """Deleting it leaves the worktree standing (a glob under the root names only its contents)."""
        return self.inside(spot) and (spot.children or spot.path != self.root)

    def in_git_dir(self, spot: Spot) -> bool:
        return self.inside(spot) and ".git" in spot.path.relative_to(self.root).parts

    def secret(self, path: Path) -> bool:
        if ".ssh" in path.parts:
            return True
        for home in {self.home, Path(self.home_written)}:
            if path.is_relative_to(home):
                relative = path.relative_to(home).as_posix()
                if any(relative == d or relative.startswith(d + "/") for d in SECRET_DIRS):
                    return True
        return False

    def harmless_device(self, spot: Spot) -> bool:
        return spot.written in HARMLESS_DEVICES or spot.written.startswith(_HARMLESS_PREFIXES)

    def resolve(self, path: str) -> Path | None:
        """A tool's path argument, relative to the worktree; None when it cannot be a path."""
        spots = self.spots(path, {}, self.root) if "\0" not in path else None
        return spots[0].path if spots and len(spots) == 1 else None


def _realpath(path: str) -> Path:
    try:
        return Path(os.path.realpath(path))
    except (OSError, ValueError):  # a loop or an over-long name: judge the path as written
        return Path(os.path.normpath(path))


def _braces(text: str) -> list[str]:
    results = [text]
    for _ in range(8):
        expanded: list[str] = []
        changed = False
        for item in results:
            match = _BRACES.search(item)
            if match is None:
                expanded.append(item)
                continue
            changed = True
            expanded += [item[: match.start()] + choice + item[match.end() :] for choice in match.group(1).split(",")]
        results = expanded[: MAX_ALTERNATIVES + 1]
        if not changed:
            break
    return results
