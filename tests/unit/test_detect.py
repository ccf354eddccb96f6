"""Detecting what a project's developers run: the command, and the evidence named in its reason.

The repositories are small synthetic ones shaped like real kinds (agentproxy.testing.fixture_repos),
or written here for one rule. Tools are made present or absent with PATH, never by patching.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agentproxy.detect import CMAKE_CHECK, detect_checks
from agentproxy.messages import DetectedCheck
from agentproxy.testing.fixture_repos import REPOSITORIES, make_repository

PYTHON = "python" if shutil.which("python") else "python3"
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def _write(root: Path, files: dict[str, str]) -> Path:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return root


def _hide(monkeypatch: pytest.MonkeyPatch, *tools: str) -> None:
    """PATH without the directories that hold these tools."""
    kept = [
        directory
        for directory in os.environ.get("PATH", "").split(os.pathsep)
        if not any((Path(directory) / tool).exists() for tool in tools)
    ]
    monkeypatch.setenv("PATH", os.pathsep.join(kept))


def _install_fake(monkeypatch: pytest.MonkeyPatch, bin_dir: Path, tool: str) -> None:
    """An executable named tool first on PATH: what shutil.which sees when the tool is installed."""
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / tool).write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        path.relative_to(root).as_posix(): (path.stat().st_size, path.stat().st_mtime_ns) for path in root.rglob("*")
    }


# --- the fixture repositories ----------------------------------------------------------------------

# fixture -> (command, words its reason must contain: the evidence)
EXPECTED: dict[str, tuple[str, tuple[str, ...]]] = {
    "src-layout-tox": ("pytest tests", ("tox is not installed", "tox.ini [testenv]")),
    "unittest-makefile": ("make test", ("makefile target `test`",)),
    "unittest-suite": (
        f"{PYTHON} -m unittest discover -s tests -t .",
        ("unittest suite", "tests/ imports unittest", "does not use pytest"),
    ),
    "make-check-only": ("make check", ("Makefile target `check`", "no `test` target")),
    "make-test-variable": ("make check", ("Makefile target `check`", "no `test` target")),
    "pnpm-workspace": ("pnpm -r test", ("packages/core", "root package.json none", "pnpm-lock.yaml")),
    "autotools": (
        "autoreconf -fi && ./configure && make check",
        ("autotools", "configure.ac and Makefile.am", "autoreconf"),
    ),
    "cmake": (CMAKE_CHECK, ("CMake", "CMakeLists.txt calls enable_testing()")),
    "ci-markers-tox": ('pytest -m "not online" tests/', ("CI workflow .github/workflows/ci.yml", "step 'Test'")),
    "noxfile": ("pytest -x tests", ("nox is not installed", "noxfile.py", "session 'tests'")),
    "go": ("go test ./...", ("go.mod",)),
    "rust-workspace": ("cargo test --workspace", ("Cargo.toml", "[workspace]")),
    "pytest-plain": (f"{PYTHON} -m pytest tests", ("pytest", "tests/test_app.py has test functions")),
}


def test_every_fixture_repository_has_an_expectation() -> None:
    assert set(EXPECTED) | {"npm-placeholder"} == set(REPOSITORIES)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_fixture_gets_its_developers_command_and_the_evidence(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hide(monkeypatch, "tox", "nox")
    command, evidence = EXPECTED[name]

    [check] = detect_checks(make_repository(name, tmp_path))

    assert check.command == command
    for words in evidence:
        assert words in check.reason, (words, check.reason)


def test_the_npm_placeholder_test_script_is_not_a_check(tmp_path: Path) -> None:
    assert detect_checks(make_repository("npm-placeholder", tmp_path)) == []


@pytest.mark.parametrize("name", sorted(REPOSITORIES))
def test_detection_creates_and_changes_nothing(name: str, tmp_path: Path) -> None:
    root = make_repository(name, tmp_path)
    before = _snapshot(root)
    detect_checks(root)
    assert _snapshot(root) == before


def test_the_detected_unittest_command_runs_the_suite(tmp_path: Path) -> None:
    root = make_repository("unittest-suite", tmp_path)
    [check] = detect_checks(root)
    command = check.command.replace(PYTHON, sys.executable, 1)

    done = subprocess.run(command, shell=True, cwd=root, capture_output=True, text=True, timeout=60, check=False)

    assert done.returncode == 0, done.stderr
    assert "Ran 1 test" in done.stderr


# --- tox and nox ---------------------------------------------------------------------------------


def test_installed_tox_runs_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_fake(monkeypatch, tmp_path / "bin", "tox")
    [check] = detect_checks(make_repository("src-layout-tox", tmp_path))
    assert check == DetectedCheck(command="tox", reason="tox.ini [testenv] configures tox, which is installed")


def test_installed_nox_runs_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _install_fake(monkeypatch, tmp_path / "bin", "nox")
    [check] = detect_checks(make_repository("noxfile", tmp_path))
    assert check == DetectedCheck(command="nox", reason="noxfile.py configures nox, which is installed")


def test_tox_commands_skip_lint_environments_and_fill_in_posargs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hide(monkeypatch, "tox")
    tox_ini = (
        "[tox]\nenvlist = lint, py\n\n[testenv:lint]\ncommands = ruff check .\n\n"
        "[testenv:py]\ncommands =\n    py38: pip install old\n    - {envpython} -m pytest {posargs} -q\n"
    )
    [check] = detect_checks(_write(tmp_path, {"tox.ini": tox_ini}))
    assert check.command == "python -m pytest -q"
    assert "tox.ini [testenv:py]" in check.reason


def test_tox_configured_in_pyproject_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "tox")
    pyproject = (
        '[tool.tox]\nenv_list = ["3.12"]\n\n[tool.tox.env_run_base]\n'
        'commands = [["pytest", { replace = "posargs", default = ["tests"], extend = true }]]\n'
    )
    [check] = detect_checks(_write(tmp_path, {"pyproject.toml": pyproject}))
    assert check.command == "pytest tests"
    assert "pyproject.toml [tool.tox.env_run_base]" in check.reason


# --- make ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", ["asked", "missing"])
@pytest.mark.parametrize(
    "makefile",
    [
        "test := x\n",
        "test = x\n",
        "test ::= x\n",
        "test ?= x\n",
        "test += x\n",
        "test: VAR = 1\n",
        ".PHONY: test\n",
        "# test: commented out\n",
        "testing:\n\t@echo not the test target\n",
    ],
    ids=["simple", "recursive", "posix", "conditional", "append", "target-variable", "phony-only", "comment", "prefix"],
)
def test_a_variable_or_a_declaration_named_test_is_not_a_target(
    makefile: str, make: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if make == "missing":
        _hide(monkeypatch, "make")
    elif shutil.which("make") is None:
        pytest.skip("needs GNU make")
    _write(tmp_path, {"Makefile": makefile + "\ncheck:\n\t@echo checking\n"})

    [check] = detect_checks(tmp_path)

    assert check.command == "make check"
    assert ("rules were read as text" in check.reason) == (make == "missing")


@pytest.mark.parametrize(
    ("targets", "command", "reason"),
    [
        (("tests", "check", "test"), "make test", "Makefile target `test`"),
        (("tests", "check"), "make check", "Makefile target `check` (no `test` target)"),
        (("tests",), "make tests", "Makefile target `tests` (no `test` or `check` target)"),
    ],
)
def test_make_targets_are_preferred_test_then_check_then_tests(
    targets: tuple[str, ...], command: str, reason: str, tmp_path: Path
) -> None:
    _write(tmp_path, {"Makefile": "".join(f"{target}:\n\t@echo {target}\n" for target in targets)})
    assert detect_checks(tmp_path) == [DetectedCheck(command=command, reason=reason)]


def test_a_makefile_that_make_does_not_read_by_default_is_named(tmp_path: Path) -> None:
    # make reads GNUmakefile first: the Makefile's target needs -f.
    _write(tmp_path, {"GNUmakefile": "all:\n\t@echo all\n", "Makefile": "check:\n\t@echo check\n"})
    [check] = detect_checks(tmp_path)
    assert check.command == "make -f Makefile check"


def test_the_makefile_test_target_wins_over_every_ecosystem(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "Makefile": "build:\n\techo build\n\ntest: build\n\tpytest\n",
            "pytest.ini": "[pytest]\n",
            "Cargo.toml": "[package]\nname = 'x'\n",
            "go.mod": "module x\n",
            "package.json": json.dumps({"scripts": {"test": "jest"}}),
        },
    )
    assert [check.command for check in detect_checks(tmp_path)] == ["make test"]


def test_a_makefile_without_a_test_target_leaves_it_to_the_ecosystems(tmp_path: Path) -> None:
    _write(tmp_path, {"Makefile": "build:\n\techo build\nlint:\n\truff .\n", "go.mod": "module x\n"})
    assert [check.command for check in detect_checks(tmp_path)] == ["go test ./..."]


@needs_make
def test_a_target_from_an_included_makefile_is_found_by_asking_make(tmp_path: Path) -> None:
    _write(tmp_path, {"Makefile": "include mk/common.mk\n", "mk/common.mk": "check:\n\t@echo check\n"})
    [check] = detect_checks(tmp_path)
    assert check.command == "make check"
    assert "read as text" not in check.reason


@needs_make
def test_asking_make_never_remakes_a_makefile(tmp_path: Path) -> None:
    makefile = (
        "Makefile: Makefile.in\n\ttouch REMADE\n\ncheck:\n\t@echo check\n\n"
        "include generated.mk\ngenerated.mk:\n\ttouch GENERATED\n"
    )
    _write(tmp_path, {"Makefile": makefile})
    _write(tmp_path, {"Makefile.in": makefile})
    os.utime(tmp_path / "Makefile", (0, 0))  # older than Makefile.in: make wants to remake it
    before = _snapshot(tmp_path)

    [check] = detect_checks(tmp_path)

    assert check.command == "make check"
    assert _snapshot(tmp_path) == before


# --- autotools and CMake -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "command"),
    [
        ("configure", "./configure && make check"),
        ("autogen.sh", "./autogen.sh && ./configure && make check"),
    ],
)
def test_autotools_runs_the_projects_own_scripts(script: str, command: str, tmp_path: Path) -> None:
    root = make_repository("autotools", tmp_path)
    _write(root, {script: "#!/bin/sh\n"})
    [check] = detect_checks(root)
    assert check.command == command
    assert "Makefile.am" in check.reason


def test_cmake_without_tests_is_not_a_check(tmp_path: Path) -> None:
    _write(tmp_path, {"CMakeLists.txt": "project(x C)\nadd_executable(x x.c)\n"})
    assert detect_checks(tmp_path) == []


def test_cmake_tests_declared_in_a_subdirectory_are_found(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {"CMakeLists.txt": "project(x C)\nadd_subdirectory(tests)\n", "tests/CMakeLists.txt": "include(CTest)\n"},
    )
    [check] = detect_checks(tmp_path)
    assert check.command == CMAKE_CHECK
    assert "tests/CMakeLists.txt calls include(CTest)" in check.reason


# --- the CI workflow -------------------------------------------------------------------------------


def _workflow(steps: str, on: str = "[push, pull_request]", runs_on: str = "ubuntu-latest") -> str:
    return f"on: {on}\njobs:\n  test:\n    runs-on: {runs_on}\n    steps:\n{steps}"


def test_ci_expressions_are_dropped_with_the_option_they_fill_and_named(tmp_path: Path) -> None:
    steps = "      - name: Tests\n        run: python -m pytest -n ${{ matrix.workers }} --cov=pkg tests\n"
    _write(tmp_path, {".github/workflows/test.yaml": _workflow(steps), "go.mod": "module x\n"})

    [check] = detect_checks(tmp_path)

    assert check.command == "python -m pytest --cov=pkg tests"
    assert "${{ matrix.workers }}" in check.reason
    assert "only GitHub Actions can evaluate" in check.reason


def test_ci_lines_keep_their_cd_and_drop_their_setup(tmp_path: Path) -> None:
    steps = (
        "      - run: pip install -e .\n"
        "      - name: Lint\n        run: tox -e lint\n"
        "      - name: Unit\n        working-directory: backend\n        run: |\n"
        "          pip install -r requirements.txt && uv run --extra test pytest -q\n"
        "          cd web && npm ci && npm run test:unit\n"
    )
    _write(tmp_path, {".github/workflows/ci.yml": _workflow(steps)})

    checks = detect_checks(tmp_path)

    assert [check.command for check in checks] == [
        "cd backend && uv run --extra test pytest -q",
        "cd backend && cd web && npm run test:unit",
    ]
    assert all("step 'Unit'" in check.reason for check in checks)


def test_workflows_that_do_not_run_on_changes_and_windows_jobs_are_ignored(tmp_path: Path) -> None:
    nightly = _workflow("      - run: pytest --slow\n", on="{schedule: [{cron: '0 3 * * *'}]}")
    windows = _workflow("      - run: pytest\n", runs_on="windows-latest")
    _write(tmp_path, {".github/workflows/nightly.yml": nightly, ".github/workflows/win.yml": windows})
    _write(tmp_path, {"go.mod": "module x\n"})
    assert [check.command for check in detect_checks(tmp_path)] == ["go test ./..."]


def test_ci_ctest_needs_its_build_so_cmake_builds_it(tmp_path: Path) -> None:
    root = make_repository("cmake", tmp_path)
    _write(root, {".github/workflows/ci.yml": _workflow("      - run: ctest --test-dir build\n")})
    assert [check.command for check in detect_checks(root)] == [CMAKE_CHECK]


def test_a_malformed_workflow_is_ignored(tmp_path: Path) -> None:
    _write(tmp_path, {".github/workflows/ci.yml": "jobs: [unclosed\n", "go.mod": "module x\n"})
    assert [check.command for check in detect_checks(tmp_path)] == ["go test ./..."]


# --- unittest and pytest -------------------------------------------------------------------------

_UNITTEST = "import unittest\n\n\nclass T(unittest.TestCase):\n    def test_it(self):\n        self.assertTrue(True)\n"


@pytest.mark.parametrize(
    ("files", "arguments"),
    [
        ({"tests/test_a.py": _UNITTEST}, "discover -s tests"),
        ({"test/__init__.py": "", "test/test_a.py": _UNITTEST}, "discover -s test -t ."),
        (
            {
                "src/pkg/__init__.py": "",
                "src/pkg/tests/__init__.py": "",
                "src/pkg/tests/test_a.py": _UNITTEST,
            },
            "discover -s src/pkg/tests -t src",
        ),
        ({"test_a.py": _UNITTEST}, "discover"),
        ({"tests/a_test.py": _UNITTEST}, "discover -s tests -p '*_test.py'"),
    ],
    ids=["tests-not-a-package", "test-package", "src-layout", "root", "suffix-pattern"],
)
def test_unittest_discovers_from_the_directory_it_needs(files: dict[str, str], arguments: str, tmp_path: Path) -> None:
    _write(tmp_path, files)
    [check] = detect_checks(tmp_path)
    assert check.command == f"{PYTHON} -m unittest {arguments}"

    done = subprocess.run(
        check.command.replace(PYTHON, sys.executable, 1),
        shell=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Ran 1 test" in done.stderr


@pytest.mark.parametrize(
    ("extra", "evidence"),
    [
        ({"tests/test_b.py": "def test_b():\n    assert True\n"}, "tests/test_b.py has test functions"),
        ({"tests/test_b.py": "import pytest\n"}, "tests/test_b.py imports pytest"),
        ({"tests/conftest.py": ""}, "tests/conftest.py holds its fixtures"),
        ({"requirements-dev.txt": "pytest>=8\n"}, "requirements-dev.txt depends on it"),
    ],
)
def test_a_unittest_suite_with_any_sign_of_pytest_runs_under_pytest(
    extra: dict[str, str], evidence: str, tmp_path: Path
) -> None:
    _write(tmp_path, {"tests/test_a.py": _UNITTEST, **extra})
    [check] = detect_checks(tmp_path)
    assert check.command == f"{PYTHON} -m pytest tests"
    assert evidence in check.reason


@pytest.mark.parametrize(
    ("files", "command", "evidence"),
    [
        (
            {"pyproject.toml": "[tool.pytest.ini_options]\naddopts = '-q'\n", "tests/test_a.py": ""},
            f"{PYTHON} -m pytest",
            "pyproject.toml [tool.pytest] configures it",
        ),
        (
            {"setup.cfg": "[tool:pytest]\ntestpaths = src\n", "src/test_a.py": ""},
            f"{PYTHON} -m pytest",
            "setup.cfg [tool:pytest] configures it",
        ),
        ({"pytest.ini": "[pytest]\n", "tests/test_a.py": ""}, f"{PYTHON} -m pytest tests", "pytest.ini [pytest]"),
        ({"conftest.py": ""}, f"{PYTHON} -m pytest", "conftest.py holds its fixtures"),
    ],
)
def test_pytest_options_come_from_the_configuration(
    files: dict[str, str], command: str, evidence: str, tmp_path: Path
) -> None:
    _write(tmp_path, files)
    [check] = detect_checks(tmp_path)
    assert check.command == command
    assert evidence in check.reason


@pytest.mark.parametrize(
    "pyproject",
    ["[project]\nname = 'x'\n", "[project]\nname = 'x'\n[project.optional-dependencies]\ntest = ['pytest']\n"],
    ids=["no-pytest", "pytest-without-tests"],
)
def test_a_pyproject_without_tests_is_not_a_check(pyproject: str, tmp_path: Path) -> None:
    _write(tmp_path, {"pyproject.toml": pyproject})
    assert detect_checks(tmp_path) == []


def test_test_files_in_dependencies_and_hidden_directories_do_not_count(tmp_path: Path) -> None:
    _write(tmp_path, {".venv/lib/test_x.py": "", "node_modules/p/test_y.py": "", "build/test_z.py": ""})
    assert detect_checks(tmp_path) == []


# --- Node, Rust, Go ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "command", "evidence"),
    [
        ({"package-lock.json": "{}"}, "npm test", "package-lock.json"),
        ({}, "npm test", "no lockfile"),
        ({"yarn.lock": ""}, "yarn test", "yarn.lock: the project uses yarn"),
        ({"pnpm-lock.yaml": ""}, "pnpm test", "pnpm-lock.yaml"),
        ({"bun.lock": ""}, "bun run test", "bun.lock"),
    ],
)
def test_the_package_manager_comes_from_the_lockfile(
    files: dict[str, str], command: str, evidence: str, tmp_path: Path
) -> None:
    _write(tmp_path, {"package.json": json.dumps({"scripts": {"test": "vitest run"}}), **files})
    [check] = detect_checks(tmp_path)
    assert check.command == command
    assert evidence in check.reason
    assert "`vitest run`" in check.reason


def test_package_manager_field_wins_over_lockfiles(tmp_path: Path) -> None:
    package = {"packageManager": "pnpm@9.1.0", "scripts": {"test": "jest"}}
    _write(tmp_path, {"package.json": json.dumps(package), "package-lock.json": "{}"})
    [check] = detect_checks(tmp_path)
    assert check.command == "pnpm test"
    assert "packageManager is pnpm" in check.reason


def test_npm_workspaces_run_every_members_tests(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "package.json": json.dumps({"workspaces": ["packages/*"]}),
            "packages/a/package.json": json.dumps({"scripts": {"test": "jest"}}),
        },
    )
    [check] = detect_checks(tmp_path)
    assert check.command == "npm test --workspaces --if-present"
    assert "packages/a" in check.reason


@pytest.mark.parametrize(
    "package",
    ['{"scripts": {"build": "tsc"}}', '{"name": "x"}', "{not json", '["a list"]'],
    ids=["no-test-script", "no-scripts", "broken", "not-an-object"],
)
def test_a_package_without_a_test_script_gives_nothing(package: str, tmp_path: Path) -> None:
    _write(tmp_path, {"package.json": package})
    assert detect_checks(tmp_path) == []


def test_a_single_rust_crate_runs_cargo_test(tmp_path: Path) -> None:
    _write(tmp_path, {"Cargo.toml": "[package]\nname = 'x'\nversion = '0.1.0'\n"})
    assert [check.command for check in detect_checks(tmp_path)] == ["cargo test"]


def test_several_ecosystems_give_one_command_each(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "conftest.py": "",
            "package.json": json.dumps({"scripts": {"test": "vitest"}}),
            "Cargo.toml": "",
            "go.mod": "",
        },
    )
    commands = [check.command for check in detect_checks(tmp_path)]
    assert commands == [f"{PYTHON} -m pytest", "npm test", "cargo test", "go test ./..."]


def test_an_empty_directory_has_no_checks(tmp_path: Path) -> None:
    assert detect_checks(tmp_path) == []
