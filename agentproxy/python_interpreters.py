"""Which Python on PATH a project asks for (requires-python, .python-version); never a virtualenv's own.

A virtualenv's interpreter (agentproxy's included) carries that environment's site-packages, so
only base interpreters are candidates, each known by its real binary, not by a shim.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from agentproxy import procs

_NAME = re.compile(r"python3(?:\.\d+)?")
_PROBE = (
    "import sys; print('%d.%d.%d' % sys.version_info[:3]); print(sys.executable); print(sys.prefix != sys.base_prefix)"
)
_PROBE_TIMEOUT_S = 10.0
_VERSION_FILE_ENTRY = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")
# The minor versions a "no such interpreter" message may suggest.
_MINORS = range(30)


@dataclass(frozen=True)
class Interpreter:
    name: str  # as found on PATH, e.g. python3.12
    path: Path  # the real binary: a shim may pick another version in another directory
    version: Version

    def describe(self) -> str:
        return f"{self.name} {self.version}"


@dataclass(frozen=True)
class PythonRequirement:
    specifier: SpecifierSet
    source: str  # how the project said it, e.g. "requires-python >=3.13 (pyproject.toml)"


def requirement(spec: str, source: str) -> PythonRequirement | None:
    """A requirement from a PEP 440 specifier; None for one that is not (e.g. Poetry's "^3.9")."""
    try:
        return PythonRequirement(SpecifierSet(spec.strip()), source)
    except InvalidSpecifier:
        return None


def python_version_file(project: Path) -> PythonRequirement | None:
    """.python-version's first entry ("3.12", "3.12.1", "pypy3.10", "cpython@3.12"); None for "system"."""
    try:
        lines = (project / ".python-version").read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    entry = next((line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")), "")
    match = _VERSION_FILE_ENTRY.search(entry)
    if match is None:
        return None
    major, minor, patch = match.groups()
    spec = f"=={major}.{minor}.{patch}" if patch else f"=={major}.{minor}.*"
    return requirement(spec, f".python-version {entry}")


def choose_interpreter(requirements: list[PythonRequirement]) -> tuple[Interpreter | None, str]:
    """The interpreter to build the project's environment with, or None and the problem naming why.

    The plain `python3` wins when it satisfies every requirement (it is what the developers have);
    otherwise the newest `python3.X` that does.
    """
    found = interpreters_on_path()
    fitting = [one for one in found if _satisfies(one.version, requirements)]
    if fitting:
        plain = [one for one in fitting if one.name == "python3"]
        return (plain or sorted(fitting, key=lambda one: one.version, reverse=True))[0], ""
    seen = ", ".join(one.describe() for one in found) or "none"
    if not requirements:
        return None, f"no python3 on PATH (found: {seen})"
    said = " and ".join(need.source for need in requirements)
    return None, f"{said} but no {_suggested_name(requirements)} on PATH (found: {seen})"


def interpreters_on_path() -> list[Interpreter]:
    """Every distinct base python3 / python3.X on PATH, then pyenv's installed versions, in that order."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    on_path = [
        python
        for entry in os.environ.get("PATH", "").split(os.pathsep)
        if entry
        for python in _named_pythons(Path(entry), only_plain=Path(entry) == pyenv_root / "shims")
    ]
    # pyenv's shims run only the selected version (one slow probe each); the others are installed here.
    installed = [
        python for directory in sorted(pyenv_root.glob("versions/*/bin")) for python in _named_pythons(directory)
    ]
    found: list[Interpreter] = []
    probed: set[Path] = set()
    executables: set[Path] = set()
    for candidate in [*on_path, *installed]:
        real = candidate.resolve()
        if real in probed:
            continue
        probed.add(real)
        probe = _probe(str(real), real.stat().st_mtime_ns)
        if probe is None or probe[1] in executables:
            continue
        version, executable = probe
        executables.add(executable)
        found.append(Interpreter(candidate.name if candidate in on_path else executable.name, executable, version))
    return found


def _named_pythons(directory: Path, only_plain: bool = False) -> list[Path]:
    """python3 and python3.X in directory, unless it is a virtualenv's."""
    if (directory.parent / "pyvenv.cfg").is_file():
        return []
    try:
        names = sorted(entry.name for entry in directory.iterdir() if _NAME.fullmatch(entry.name))
    except OSError:
        return []
    names = [name for name in names if name == "python3"] if only_plain else names
    return [directory / name for name in names if os.access(directory / name, os.X_OK)]


@functools.lru_cache(maxsize=64)
def _probe(executable: str, mtime_ns: int) -> tuple[Version, Path] | None:
    """(version, the real binary) of a base interpreter; None for a virtualenv's or a shim that fails.

    Cached per file (mtime_ns makes a reinstalled one probed again).
    """
    try:
        code, output, timed_out = procs.run_bounded([executable, "-c", _PROBE], cwd="/", timeout_s=_PROBE_TIMEOUT_S)
    except OSError:
        return None
    lines = output.decode(errors="replace").split("\n")
    if code != 0 or timed_out or len(lines) < 3 or lines[2].strip() != "False":
        return None
    try:
        return Version(lines[0].strip()), Path(lines[1].strip()).resolve()
    except InvalidVersion:
        return None


def _suggested_name(requirements: list[PythonRequirement]) -> str:
    """python3.X for the oldest minor version that satisfies every requirement, to name in a problem."""
    for minor in _MINORS:
        versions = [Version(f"3.{minor}.{patch}") for patch in range(30)]
        if any(_satisfies(version, requirements) for version in versions):
            return f"python3.{minor}"
    return "interpreter that satisfies it"


def _satisfies(version: Version, requirements: list[PythonRequirement]) -> bool:
    # A release candidate interpreter is still an interpreter of that version.
    return all(need.specifier.contains(version, prereleases=True) for need in requirements)
