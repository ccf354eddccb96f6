"""Which shell commands run a project's tests: the known runners, found behind `uv run`, `env` and the like."""

from __future__ import annotations

import os
import re
import shlex
from itertools import pairwise

from agentproxy.shell import unwrap

MAKEFILES = ("GNUmakefile", "makefile", "Makefile")  # the order make looks for them in
MAKE_TARGETS = ("test", "check", "tests")  # in order of preference

# Steps, tox environments and nox sessions with these names set up, lint or publish: not tests.
_NOT_TESTS = re.compile(r"lint|format|style|typ(e|ing)|mypy|pyright|docs?\b|build|publish|release|deploy|install|setup")
_RUN_WRAPPERS = frozenset({"uv", "poetry", "pdm", "pipenv", "hatch"})  # `X run [options] CMD`
_VALUED_OPTIONS = frozenset({"--with", "--extra", "--group", "--python", "-p", "--package", "--env-file"})
_PYTHON = re.compile(r"python[\d.]*")
_ASSIGNMENT = re.compile(r"[A-Za-z_]\w*=.*", re.DOTALL)


def split_words(text: str) -> list[str]:
    """The words of a simple command; [] when it cannot be taken apart (an unbalanced quote)."""
    try:
        return shlex.split(text, comments=True)
    except ValueError:
        return []


def runs_tests(argv: list[str]) -> bool:
    """Whether a simple command runs a known test runner (rather than setting up, installing or linting)."""
    argv = _unwrapped(argv)
    if not argv:
        return False
    name, rest = os.path.basename(argv[0]), argv[1:]
    if _PYTHON.fullmatch(name) and rest[:1] == ["-m"] and len(rest) > 1:
        name, rest = rest[1], rest[2:]
    words = [word for word in rest if not word.startswith("-")]
    if name in ("pytest", "py.test", "unittest", "ctest"):
        return True
    if name in ("tox", "nox"):
        chosen = [value for option, value in pairwise(rest) if option in ("-e", "-s", "--session")]
        return not any(names_non_tests(value) for value in chosen)
    if name == "make":
        return any(word in MAKE_TARGETS for word in words)
    if name in ("npm", "pnpm", "yarn", "bun"):
        return any(word in ("test", "t") for word in words[:3]) or any(
            first in ("run", "run-script") and second.startswith("test") for first, second in pairwise(words)
        )
    if name in ("go", "cargo"):
        return words[:1] == ["test"] or words[:2] == ["nextest", "run"]
    return False


def names_non_tests(name: str) -> bool:
    """A step, environment or session named for linting, docs, building or setting up, and not for tests."""
    lowered = name.lower()
    return bool(_NOT_TESTS.search(lowered)) and "test" not in lowered and "check" not in lowered


def _unwrapped(argv: list[str]) -> list[str]:
    """The command inside `VAR=x`, `env`, `timeout`, `uv run`, `poetry run`, `coverage run -m`, `xvfb-run`."""
    while argv:
        head = os.path.basename(argv[0])
        if _ASSIGNMENT.fullmatch(argv[0]):
            argv = argv[1:]
        elif head in _RUN_WRAPPERS and argv[1:2] == ["run"]:
            argv = _after_options(argv[2:])
        elif head == "xvfb-run":
            argv = _after_options(argv[1:])
        elif "run" in argv[:4] and "coverage" in argv[: argv.index("run")] and "-m" in argv[argv.index("run") :]:
            command = argv[argv.index("run") :]
            argv = ["python", *command[command.index("-m") :]]
        else:
            wrappers, inner = unwrap(tuple(argv))
            if not wrappers:
                return argv
            argv = list(inner)
    return argv


def _after_options(argv: list[str]) -> list[str]:
    while argv and argv[0].startswith("-"):
        argv = argv[2:] if argv[0] in _VALUED_OPTIONS else argv[1:]
    return argv
