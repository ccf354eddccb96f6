"""What a Python project's developers run: tox or nox when configured, else its unittest or pytest suite.

tox and nox run when installed; otherwise the test commands their configuration names run directly.
A suite that imports unittest, and shows no sign of pytest anywhere, runs under unittest from the
directory discover needs; any other suite runs under pytest.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentproxy.messages import DetectedCheck
from agentproxy.project_files import ini, read_text, toml_value, walk_files
from agentproxy.runner_commands import names_non_tests, runs_tests, split_words

MAX_DEPTH = 4
MAX_TEST_FILES = 200
_TOX_SUBSTITUTIONS = {"{envpython}": "python", "{toxinidir}": ".", "{tox_root}": "."}
_POSARGS = re.compile(r"\{posargs(?::([^}]*))?\}")
_TOX_FACTOR = re.compile(r"[\w{},.!-]+:\s")  # `py38: pytest` runs only in some environments
_PYTEST_IMPORT = re.compile(r"^\s*(?:import pytest|from pytest |from _pytest)", re.MULTILINE)
_UNITTEST_IMPORT = re.compile(r"^\s*(?:import unittest|from unittest)", re.MULTILINE)
_MODULE_TEST_FUNCTION = re.compile(r"^(?:async )?def test", re.MULTILINE)  # pytest collects these, unittest not


def python_check(project: Path) -> DetectedCheck | None:
    """The Python project's test command and why; None when it has neither tox, nox nor Python tests."""
    for detector in (_tox_check, _nox_check, _unittest_or_pytest_check):
        check = detector(project)
        if check is not None:
            return check
    return None


def _tox_check(project: Path) -> DetectedCheck | None:
    found = _tox_config(project)
    if found is None:
        return None
    source, commands = found
    if shutil.which("tox"):
        return DetectedCheck(command="tox", reason=f"{source} configures tox, which is installed")
    if not commands:
        return None
    return DetectedCheck(command=" && ".join(commands), reason=f"tox is not installed: the test commands of {source}")


def _tox_config(project: Path) -> tuple[str, list[str]] | None:
    """Where tox is configured, and the test commands of its first test environment."""
    pyproject = toml_value(project / "pyproject.toml", "tool", "tox")
    candidates: list[tuple[str, str]] = [("tox.ini", read_text(project / "tox.ini"))]
    if isinstance(pyproject, dict) and isinstance(pyproject.get("legacy_tox_ini"), str):
        candidates.append(("pyproject.toml [tool.tox]", pyproject["legacy_tox_ini"]))
    setup_cfg = read_text(project / "setup.cfg")
    if "[tox:tox]" in setup_cfg:
        candidates.append(("setup.cfg", setup_cfg))
    for source, text in candidates:
        parser = ini(text)
        if parser is None or not any(section.startswith(("tox", "testenv")) for section in parser.sections()):
            continue
        sections = [name for name in parser.sections() if name == "testenv" or name.startswith("testenv:")]
        for section in sections:
            if section == "testenv" or not names_non_tests(section.split(":", 1)[1]):
                commands = _tox_test_commands(parser.get(section, "commands", fallback=""))
                if commands:
                    return f"{source} [{section}]", commands
        return source, []
    if isinstance(pyproject, dict):
        named = pyproject.get("env")
        envs = [("env_run_base", pyproject.get("env_run_base"))]
        envs += [(f"env.{name}", env) for name, env in (named if isinstance(named, dict) else {}).items()]
        for name, env in envs:
            commands = _toml_tox_commands(env.get("commands") if isinstance(env, dict) else None)
            if commands and not names_non_tests(name):
                return f"pyproject.toml [tool.tox.{name}]", commands
        return "pyproject.toml [tool.tox]", []
    return None


def _tox_test_commands(commands: str) -> list[str]:
    found = []
    for line in commands.replace("\\\n", " ").splitlines():
        line = _POSARGS.sub(lambda match: match.group(1) or "", line.strip()).lstrip("-").strip()
        for placeholder, value in _TOX_SUBSTITUTIONS.items():
            line = line.replace(placeholder, value)
        line = re.sub(r"  +", " ", line)  # where an empty {posargs} was
        # `{...}` left over is a substitution only tox can make.
        if _TOX_FACTOR.match(line) or "{" in line:
            continue
        argv = split_words(line)
        if argv and runs_tests(argv):
            found.append(line)
    return found


def _toml_tox_commands(commands: Any) -> list[str]:
    found = []
    for command in commands if isinstance(commands, list) else []:
        argv: list[str] = []
        for word in command if isinstance(command, list) else []:
            if isinstance(word, str):
                argv.append(word)
            elif isinstance(word, dict) and word.get("replace") == "posargs":
                argv += [str(default) for default in word.get("default") or []]
        if argv and runs_tests(argv):
            found.append(shlex.join(argv))
    return found


def _nox_check(project: Path) -> DetectedCheck | None:
    noxfile = project / "noxfile.py"
    if not noxfile.is_file():
        return None
    if shutil.which("nox"):
        return DetectedCheck(command="nox", reason="noxfile.py configures nox, which is installed")
    for session, command in _nox_test_runs(read_text(noxfile)):
        reason = f"nox is not installed: noxfile.py's session '{session}' runs it"
        return DetectedCheck(command=command, reason=reason)
    return None


def _nox_test_runs(source: str) -> Iterator[tuple[str, str]]:
    """(session, command) for each `session.run(...)` of literal words that runs tests."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return
    for function in tree.body:
        if not isinstance(function, ast.FunctionDef) or not function.args.args or names_non_tests(function.name):
            continue
        session = function.args.args[0].arg
        for node in ast.walk(function):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "run"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == session
            ):
                continue
            # `*session.posargs` is the command line's; other computed words cannot be known here.
            words = [arg.value for arg in node.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]
            if len(words) == len([arg for arg in node.args if not isinstance(arg, ast.Starred)]) and runs_tests(words):
                yield function.name, shlex.join(words)


def _unittest_or_pytest_check(project: Path) -> DetectedCheck | None:
    found = _python_test_files(project)
    tests = [path for path in found if path.name != "conftest.py"]
    configured = _pytest_configuration(project, [path for path in found if path.name == "conftest.py"])
    texts = {path: read_text(path)[:65536] for path in tests}
    imports_pytest = [path for path, text in texts.items() if _PYTEST_IMPORT.search(text)]
    test_functions = [path for path, text in texts.items() if _MODULE_TEST_FUNCTION.search(text)]
    depended_on = None if configured or not tests else _pytest_dependency(project)
    if configured is None and not tests:
        return None
    if configured:
        evidence = configured[1]
    elif depended_on:
        evidence = f"{depended_on} depends on it"
    elif imports_pytest:
        evidence = f"{imports_pytest[0].relative_to(project).as_posix()} imports pytest"
    elif test_functions:
        evidence = f"{test_functions[0].relative_to(project).as_posix()} has test functions, which only pytest runs"
    else:
        unittest_files = [path for path, text in texts.items() if _UNITTEST_IMPORT.search(text)]
        if unittest_files:
            return _unittest_check(project, tests, unittest_files)
        evidence = f"test files such as {tests[0].relative_to(project).as_posix()}"
    options = _pytest_options(project, tests, configured[0] if configured else {})
    return DetectedCheck(command=" ".join([_python(), "-m", "pytest", *options]), reason=f"pytest: {evidence}")


def _unittest_check(project: Path, tests: list[Path], unittest_files: list[Path]) -> DetectedCheck:
    start = Path(os.path.commonpath([path.parent for path in tests]))
    argv = [_python(), "-m", "unittest", "discover"]
    if start != project:
        argv += ["-s", start.relative_to(project).as_posix()]
        if (start / "__init__.py").is_file():  # a package: discover imports it from its top level
            top = start
            while top != project and (top / "__init__.py").is_file():
                top = top.parent
            argv += ["-t", top.relative_to(project).as_posix() if top != project else "."]
    if not any(path.name.startswith("test") for path in tests):
        argv += ["-p", "'*_test.py'"]
    where = unittest_files[0].parent.relative_to(project).as_posix()
    where = "the project root" if where == "." else f"{where}/"
    reason = f"unittest suite: {where} imports unittest and the project does not use pytest"
    return DetectedCheck(command=" ".join(argv), reason=reason)


def _pytest_configuration(project: Path, conftests: list[Path]) -> tuple[dict[str, Any], str] | None:
    """pytest's ini options and where they are set; ({}, where) for conftest.py files alone."""
    ini_files = (("pytest.ini", "pytest"), ("tox.ini", "pytest"), ("setup.cfg", "tool:pytest"))
    for name, section in ini_files:
        parser = ini(read_text(project / name))
        if parser is not None and parser.has_section(section):
            return dict(parser.items(section)), f"{name} [{section}] configures it"
    pytest_table = toml_value(project / "pyproject.toml", "tool", "pytest")
    if isinstance(pytest_table, dict):
        options = pytest_table.get("ini_options", pytest_table)
        return (options if isinstance(options, dict) else {}), "pyproject.toml [tool.pytest] configures it"
    if conftests:
        return {}, f"{conftests[0].relative_to(project).as_posix()} holds its fixtures"
    return None


def _pytest_dependency(project: Path) -> str:
    """The file that lists pytest among the project's dependencies, or ""."""
    requirements = sorted(project.glob("requirements*.txt")) + sorted(project.glob("requirements/*.txt"))
    for path in [project / "pyproject.toml", project / "setup.cfg", project / "setup.py", *requirements]:
        if re.search(r"\bpytest\b", read_text(path)):
            return path.relative_to(project).as_posix()
    return ""


def _pytest_options(project: Path, tests: list[Path], options: dict[str, Any]) -> list[str]:
    """The test directory, unless the project's configuration already says what to run."""
    if "addopts" in options or "testpaths" in options:
        return []
    for name in ("tests", "test"):
        if any(path.is_relative_to(project / name) for path in tests):
            return [name]
    return []


def _python_test_files(project: Path) -> list[Path]:
    """The files pytest collects by default, and the conftest.py files beside them."""

    def is_test(name: str) -> bool:
        return name == "conftest.py" or (name.endswith(".py") and name.startswith("test_")) or name.endswith("_test.py")

    return sorted(walk_files(project, is_test, max_depth=MAX_DEPTH))[:MAX_TEST_FILES]


def _python() -> str:
    return "python" if shutil.which("python") else "python3"
