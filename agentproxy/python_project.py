"""What a Python project declares about installing it: extras, dependency groups, requirement files, Python.

Read from pyproject.toml, setup.cfg and setup.py (literal arguments of its setup() call only:
running it to find out would execute the project's code).
"""

from __future__ import annotations

import ast
import configparser
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentproxy.project_files import ini, read_text, toml_value
from agentproxy.python_interpreters import PythonRequirement, python_version_file, requirement

MARKERS = ("pyproject.toml", "setup.py", "setup.cfg")
# The extras and groups the tests may need, by the names projects give them.
TEST_NAMES = ("test", "tests", "testing", "dev", "develop", "development")
# Extra requirement files that developers install next to the project to run its tests.
DEV_REQUIREMENT_FILES = (
    "requirements-dev.txt",
    "requirements-test.txt",
    "requirements-tests.txt",
    "requirements_dev.txt",
    "requirements_test.txt",
    "dev-requirements.txt",
    "test-requirements.txt",
    "requirements/dev.txt",
    "requirements/test.txt",
    "requirements/tests.txt",
)
_PYTEST_CONFIGS = ("pytest.ini", "conftest.py", "tests/conftest.py")
_PYTEST_SECTIONS = (("setup.cfg", "[tool:pytest]"), ("tox.ini", "[pytest]"))
_TEST_MODULES = ("test_*.py", "*_test.py", "test*/**/test_*.py", "test*/**/*_test.py")
_TEST_MODULES_READ = 50  # enough to tell; a large suite need not be read whole
# unittest needs a TestCase class; a module-level test function is only ever collected by pytest.
_BARE_TEST_FUNCTION = re.compile(r"^(?:async )?def test\w*\(", re.MULTILINE)
_IMPORTS_PYTEST = re.compile(r"^\s*(?:import|from)\s+pytest\b", re.MULTILINE)


@dataclass(frozen=True)
class PythonProject:
    root: Path
    installable: bool  # pip can install the tree itself (setup.py, or pyproject with [project]/[build-system])
    extras: list[str]  # the test/dev extras it declares
    groups: list[str]  # the test/dev PEP 735 dependency groups it declares
    group_requirements: list[str]  # those groups' requirements, include-group expanded
    poetry_groups: list[str]  # the test/dev groups of [tool.poetry.group.*]
    requirement_files: list[str]  # relative to root: requirements.txt when not installable, and dev/test ones
    python: list[PythonRequirement]
    uses_pytest: bool  # configures pytest, so pytest belongs in its environment even when undeclared


def is_python_project(project: Path) -> bool:
    return any((project / name).is_file() for name in MARKERS) or any(project.glob("requirements*.txt"))


def read_project(root: Path) -> PythonProject:
    pyproject = _as_table(toml_value(root / "pyproject.toml"))
    setup_cfg = ini(read_text(root / "setup.cfg")) or configparser.ConfigParser()
    setup_py = _setup_call_literals(root / "setup.py")
    table = _table(pyproject, "project")
    installable = (root / "setup.py").is_file() or bool(table) or "build-system" in pyproject
    declared_extras = {
        *_table(table, "optional-dependencies"),
        *_section(setup_cfg, "options.extras_require"),
        *_table(setup_py, "extras_require"),
    }
    groups = _table(pyproject, "dependency-groups")
    test_groups = _pick(TEST_NAMES, groups)
    requirement_files = [name for name in DEV_REQUIREMENT_FILES if (root / name).is_file()]
    if not installable and (root / "requirements.txt").is_file():
        requirement_files.insert(0, "requirements.txt")
    return PythonProject(
        root=root,
        installable=installable,
        extras=_pick(TEST_NAMES, declared_extras),
        groups=test_groups,
        group_requirements=_group_requirements(groups, test_groups),
        poetry_groups=_pick(TEST_NAMES, _table(_table(_table(pyproject, "tool"), "poetry"), "group")),
        requirement_files=requirement_files,
        python=_python_requirements(root, table, setup_cfg, setup_py),
        uses_pytest=_uses_pytest(root, pyproject),
    )


def dependency_files(root: Path) -> list[Path]:
    """The files whose change means the environment must be installed again."""
    fixed = [root / name for name in (*MARKERS, "uv.lock", "poetry.lock", ".python-version")]
    return sorted({*fixed, *root.glob("*requirements*.txt"), *root.glob("requirements/*.txt")})


def _python_requirements(
    root: Path, table: dict[str, Any], setup_cfg: configparser.ConfigParser, setup_py: dict[str, Any]
) -> list[PythonRequirement]:
    said = [
        (table.get("requires-python"), "pyproject.toml"),
        (_section(setup_cfg, "options").get("python_requires"), "setup.cfg"),
        (setup_py.get("python_requires"), "setup.py"),
    ]
    found = [requirement(spec, f"requires-python {spec} ({where})") for spec, where in said if isinstance(spec, str)]
    found.append(python_version_file(root))
    return [need for need in found if need is not None]


def _group_requirements(groups: dict[str, Any], wanted: list[str]) -> list[str]:
    """PEP 735: a group lists requirement strings and {include-group = "name"} tables."""
    requirements: list[str] = []
    pending, seen = list(wanted), set()
    while pending:
        name = pending.pop(0)
        if name in seen:
            continue
        seen.add(name)
        for entry in groups.get(name) or []:
            if isinstance(entry, str):
                requirements.append(entry)
            elif isinstance(entry, dict) and isinstance(entry.get("include-group"), str):
                pending.append(entry["include-group"])
    return list(dict.fromkeys(requirements))


def _uses_pytest(root: Path, pyproject: dict[str, Any]) -> bool:
    """pytest configured, or imported by a test module, or test modules written for it (bare test functions)."""
    if _table(_table(pyproject, "tool"), "pytest"):
        return True
    if any((root / name).is_file() for name in _PYTEST_CONFIGS):
        return True
    if any(header in read_text(root / name) for name, header in _PYTEST_SECTIONS):
        return True
    modules = (path for pattern in _TEST_MODULES for path in root.glob(pattern))
    texts = [read_text(path) for path in itertools.islice(modules, _TEST_MODULES_READ)]
    return any(_IMPORTS_PYTEST.search(text) or _BARE_TEST_FUNCTION.search(text) for text in texts)


def _setup_call_literals(path: Path) -> dict[str, Any]:
    """The literal keyword arguments of setup.py's setup(...) call, following module-level names once."""
    try:
        tree = ast.parse(read_text(path))
    except (SyntaxError, ValueError):
        return {}
    names = {
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _called_name(node.func) == "setup":
            return {
                kw.arg: value for kw in node.keywords if kw.arg and (value := _literal(kw.value, names)) is not None
            }
    return {}


def _called_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


def _literal(node: ast.expr, names: dict[str, ast.expr]) -> Any:
    if isinstance(node, ast.Name) and node.id in names:
        node = names[node.id]
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _section(parser: configparser.ConfigParser, name: str) -> dict[str, str]:
    return dict(parser[name]) if parser.has_section(name) else {}


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    return _as_table(data.get(key))


def _as_table(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _pick(wanted: tuple[str, ...], declared: Any) -> list[str]:
    """The wanted names the project declares, in the project's spelling (names compare normalized)."""
    by_normal = {_normal(name): name for name in declared}
    return [by_normal[_normal(name)] for name in wanted if _normal(name) in by_normal]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
