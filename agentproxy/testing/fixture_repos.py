"""Small synthetic repositories shaped like the kinds of real projects the checks must work on.

Each is a few files in the layout its kind uses (a src layout with tox, a unittest suite behind a
lowercase makefile, a pnpm workspace, autotools, CMake, a CI workflow with pytest markers, ...).
Tests of detection, setup and the baseline build them with make_repository and assert on the result.
"""

from __future__ import annotations

import json
from pathlib import Path

_PACKAGE = "def answer() -> int:\n    return 42\n"
_PYTEST_TEST = "from pkg import answer\n\n\ndef test_answer():\n    assert answer() == 42\n"
_UNITTEST_TEST = (
    "import unittest\n\nfrom calc import add\n\n\n"
    "class AddTest(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\n\n"
    'if __name__ == "__main__":\n    unittest.main()\n'
)
_PYPROJECT = (
    '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
    '[project]\nname = "pkg"\nversion = "0.1.0"\nrequires-python = ">=3.10"\n\n'
    '[project.optional-dependencies]\ntest = ["pytest>=8"]\n'
)
_TOX_INI = (
    "[tox]\nenvlist = py3, lint\n\n[testenv]\nextras = test\ncommands = pytest {posargs:tests}\n\n"
    "[testenv:lint]\nskip_install = true\ndeps = ruff\ncommands = ruff check src tests\n"
)
_CI_WORKFLOW = """\
name: CI
on:
  push:
    branches: [main]
  pull_request:
jobs:
  test:
    runs-on: ubuntu-latest
    strategy:
      matrix:
        python: ["3.10", "3.12"]
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: ${{ matrix.python }}
      - name: Install
        run: |
          python -m pip install --upgrade pip
          pip install -e ".[test]"
      - name: Lint
        run: ruff check .
      - name: Test
        run: pytest -m "not online" tests/
"""
_NOXFILE = """\
import nox


@nox.session(python=["3.11", "3.12"])
def tests(session):
    session.install("-e", ".[test]")
    session.run("pytest", "-x", "tests", *session.posargs)


@nox.session
def lint(session):
    session.install("ruff")
    session.run("ruff", "check", ".")
"""
_HELLO_C = '#include <stdio.h>\n\nint main(void) {\n    puts("hello");\n    return 0;\n}\n'


def _json(data: object) -> str:
    return json.dumps(data, indent=2) + "\n"


REPOSITORIES: dict[str, dict[str, str]] = {
    "src-layout-tox": {
        "pyproject.toml": _PYPROJECT,
        "src/pkg/__init__.py": _PACKAGE,
        "tests/test_pkg.py": _PYTEST_TEST,
        "tox.ini": _TOX_INI,
    },
    "unittest-makefile": {
        "makefile": "PYTHON ?= python3\n\n.PHONY: test\ntest:\n\t$(PYTHON) -m unittest discover -s tests -t .\n",
        "calc/__init__.py": "def add(a, b):\n    return a + b\n",
        "tests/__init__.py": "",
        "tests/test_calc.py": _UNITTEST_TEST,
    },
    "unittest-suite": {
        "setup.cfg": "[metadata]\nname = calc\n",
        "calc/__init__.py": "def add(a, b):\n    return a + b\n",
        "tests/__init__.py": "",
        "tests/test_calc.py": _UNITTEST_TEST,
    },
    "make-check-only": {
        "Makefile": "all: hello\n\nhello: hello.c\n\tcc -o hello hello.c\n\ncheck: all\n\t./hello | grep -q hello\n",
        "hello.c": _HELLO_C,
    },
    "make-test-variable": {
        "Makefile": (
            "test := unit\ntest_dirs = tests/$(test)\n\nbuild:\n\t@echo build\n\n"
            "check: build\n\t@echo running $(test_dirs)\n"
        ),
    },
    "pnpm-workspace": {
        "package.json": _json({"name": "mono", "private": True, "scripts": {"build": "pnpm -r build"}}),
        "pnpm-lock.yaml": "lockfileVersion: '9.0'\n",
        "pnpm-workspace.yaml": "packages:\n  - 'packages/*'\n",
        "packages/core/package.json": _json(
            {"name": "@mono/core", "scripts": {"build": "tsc -p .", "test": "node --test dist/"}}
        ),
        "packages/docs/package.json": _json({"name": "@mono/docs", "scripts": {"build": "echo docs"}}),
    },
    "autotools": {
        "configure.ac": (
            "AC_INIT([hello], [1.0])\nAM_INIT_AUTOMAKE([foreign])\nAC_PROG_CC\nAC_CONFIG_FILES([Makefile])\nAC_OUTPUT\n"
        ),
        "Makefile.am": "bin_PROGRAMS = hello\nhello_SOURCES = hello.c\nTESTS = test.sh\n",
        "hello.c": _HELLO_C,
        "test.sh": "#!/bin/sh\n./hello | grep -q hello\n",
    },
    "cmake": {
        "CMakeLists.txt": (
            "cmake_minimum_required(VERSION 3.20)\nproject(hello C)\nenable_testing()\n"
            "add_executable(hello hello.c)\nadd_test(NAME hello COMMAND hello)\n"
        ),
        "hello.c": _HELLO_C,
    },
    "ci-markers-tox": {
        ".github/workflows/ci.yml": _CI_WORKFLOW,
        "pyproject.toml": _PYPROJECT + '\n[tool.pytest.ini_options]\nmarkers = ["online: needs the network"]\n',
        "src/pkg/__init__.py": _PACKAGE,
        "tests/test_pkg.py": _PYTEST_TEST
        + "\n\nimport pytest\n\n\n@pytest.mark.online\ndef test_fetch():\n    assert False, 'no network'\n",
        "tox.ini": _TOX_INI,
    },
    "noxfile": {
        "noxfile.py": _NOXFILE,
        "pyproject.toml": _PYPROJECT,
        "src/pkg/__init__.py": _PACKAGE,
        "tests/test_pkg.py": _PYTEST_TEST,
    },
    "go": {
        "go.mod": "module example.com/hello\n\ngo 1.22\n",
        "hello.go": 'package hello\n\nfunc Hello() string { return "hello" }\n',
        "hello_test.go": (
            'package hello\n\nimport "testing"\n\n'
            'func TestHello(t *testing.T) {\n\tif Hello() != "hello" {\n\t\tt.Fatal("wrong")\n\t}\n}\n'
        ),
    },
    "rust-workspace": {
        "Cargo.toml": '[workspace]\nmembers = ["crates/*"]\nresolver = "2"\n',
        "crates/core/Cargo.toml": '[package]\nname = "core-lib"\nversion = "0.1.0"\nedition = "2021"\n',
        "crates/core/src/lib.rs": (
            "pub fn answer() -> u32 { 42 }\n\n#[cfg(test)]\nmod tests {\n"
            "    #[test]\n    fn answers() { assert_eq!(super::answer(), 42); }\n}\n"
        ),
    },
    "pytest-plain": {
        "pyproject.toml": '[project]\nname = "app"\nversion = "0.1.0"\n',
        "app.py": "def double(x):\n    return 2 * x\n",
        "tests/test_app.py": "from app import double\n\n\ndef test_double():\n    assert double(2) == 4\n",
    },
    "npm-placeholder": {
        "package.json": _json(
            {"name": "x", "version": "1.0.0", "scripts": {"test": 'echo "Error: no test specified" && exit 1'}}
        ),
        "package-lock.json": _json({"name": "x", "lockfileVersion": 3}),
        "index.js": "module.exports = 1;\n",
    },
}

# Scripts a developer runs by path.
_EXECUTABLES = frozenset({"test.sh", "configure", "autogen.sh"})


def make_repository(name: str, parent: Path) -> Path:
    """Write the repository called name (a key of REPOSITORIES) into parent/name and return its path."""
    root = parent / name
    for relative, content in REPOSITORIES[name].items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        if path.name in _EXECUTABLES:
            path.chmod(0o755)
    return root
