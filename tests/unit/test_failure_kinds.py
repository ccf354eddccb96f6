"""Classifying failed checks from real runners' output: the environment's fault, or the code's."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import pytest

from agentproxy.checks import run_checks
from agentproxy.failure_kinds import classify
from agentproxy.messages import CheckResult

# Plugins of this venv (hypothesis, anyio) would triple the start-up time of each pytest run.
PYTEST = f"PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 {shlex.quote(sys.executable)} -m pytest -q -p no:cacheprovider"
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _run(command: str, project: Path) -> CheckResult:
    [result] = run_checks([command], project, timeout_s=60)
    assert not result.passed, result.output_tail
    return result


# --- environment -------------------------------------------------------------------------------


def test_a_command_the_shell_cannot_find(tmp_path: Path) -> None:
    result = _run("no-such-runner --all", tmp_path)

    found = classify(result, tmp_path)

    assert result.exit_code == 127
    assert found.kind == "environment"
    assert "no-such-runner" in found.cause
    assert found.fix == "install no-such-runner or put it on PATH"


def test_a_missing_virtualenv_runner(tmp_path: Path) -> None:
    found = classify(_run(".venv/bin/pytest -q", tmp_path), tmp_path)

    assert found.kind == "environment"
    assert found.cause.startswith(".venv/bin/pytest is not installed or not on PATH")
    assert "virtualenv (.venv)" in found.fix


def test_a_node_tool_missing_means_installing_the_projects_dependencies(tmp_path: Path) -> None:
    _write(tmp_path / "package.json", '{"scripts": {"test": "jest"}}')
    _write(tmp_path / "pnpm-lock.yaml", "lockfileVersion: '9.0'\n")

    found = classify(_run("jest --ci", tmp_path), tmp_path)

    assert found.kind == "environment"
    assert "jest: not found" in found.cause
    assert found.fix == "install the project's dependencies: pnpm install --frozen-lockfile"


def test_a_script_that_is_not_executable(tmp_path: Path) -> None:
    _write(tmp_path / "run-tests.sh", "echo hi\n")

    found = classify(_run("./run-tests.sh", tmp_path), tmp_path)

    assert found.kind == "environment"
    assert found.fix == "make it executable: chmod +x ./run-tests.sh"


@needs_node
def test_a_node_dependency_that_is_not_installed(tmp_path: Path) -> None:
    _write(tmp_path / "package.json", '{"dependencies": {"left-pad": "^1.3.0"}}')
    _write(tmp_path / "package-lock.json", "{}")

    found = classify(_run("node -e \"require('left-pad')\"", tmp_path), tmp_path)

    assert found.kind == "environment"
    assert (
        found.cause == "a dependency is not installed (node_modules is missing): Error: Cannot find module 'left-pad'"
    )
    assert found.fix == "install the project's dependencies: npm ci"


@needs_node
def test_a_missing_file_of_the_project_itself_is_the_codes(tmp_path: Path) -> None:
    _write(tmp_path / "package.json", "{}")

    assert classify(_run("node -e \"require('./lib/feature')\"", tmp_path), tmp_path).kind == "code"


def test_a_pytest_option_of_a_plugin_that_is_not_installed(tmp_path: Path) -> None:
    _write(tmp_path / "test_x.py", "def test_x(): pass\n")
    _write(tmp_path / "requirements-dev.txt", "pytest\npytest-benchmark>=4\n")

    found = classify(_run(f"{PYTEST} --benchmark-only", tmp_path), tmp_path)

    assert found.kind == "environment"
    assert found.cause.startswith("the pytest plugin pytest-benchmark is not installed: ")
    assert "unrecognized arguments: --benchmark-only" in found.cause
    assert found.fix == "install the project's requirements: pip install -r requirements-dev.txt"


def test_a_pytest_plugin_that_cannot_be_imported(tmp_path: Path) -> None:
    _write(tmp_path / "test_x.py", "def test_x(): pass\n")

    found = classify(_run(f"{PYTEST} -p xdist", tmp_path), tmp_path)

    assert found.kind == "environment"
    assert found.cause.startswith("the pytest plugin pytest-xdist is not installed")
    assert found.fix == "install it in the project's environment: pip install pytest-xdist"


def test_a_fixture_of_a_known_plugin_is_the_environments_an_unknown_one_the_codes(tmp_path: Path) -> None:
    _write(tmp_path / "test_mock.py", "def test_x(mocker): pass\n")
    _write(tmp_path / "test_own.py", "def test_y(database_of_the_task): pass\n")
    _write(
        tmp_path / "pyproject.toml",
        "[project]\nname = 'app'\n[project.optional-dependencies]\ntest = ['pytest-mock']\n",
    )

    mock = classify(_run(f"{PYTEST} test_mock.py", tmp_path), tmp_path)
    own = classify(_run(f"{PYTEST} test_own.py", tmp_path), tmp_path)

    assert mock.kind == "environment"
    assert mock.cause == "the pytest plugin pytest-mock is not installed: E       fixture 'mocker' not found"
    assert mock.fix == "install the project with its test extra: pip install -e '.[test]'"
    assert own.kind == "code"


@pytest.fixture
def python_project(tmp_path: Path) -> Path:
    """A flat project that declares a test dependency which is not installed."""
    _write(
        tmp_path / "pyproject.toml",
        "[project]\nname = 'app'\n[project.optional-dependencies]\ntest = ['left-pad-py']\n",
    )
    _write(tmp_path / "app" / "__init__.py", "")
    return tmp_path


def test_a_declared_third_party_module_that_is_not_installed(python_project: Path) -> None:
    _write(python_project / "tests" / "test_pad.py", "import left_pad_py\ndef test_pad(): pass\n")

    found = classify(_run(PYTEST, python_project), python_project)

    assert found.kind == "environment"
    assert found.cause == (
        "left-pad-py is not installed in the project's environment: "
        "E   ModuleNotFoundError: No module named 'left_pad_py'"
    )
    assert found.fix == "install the project with its test extra: pip install -e '.[test]'"


def test_a_third_party_module_known_by_its_distribution(python_project: Path) -> None:
    # PyYAML provides yaml where agentproxy runs; -S leaves site-packages out, as a bare environment would.
    found = classify(_run(f"{shlex.quote(sys.executable)} -S -c 'import yaml'", python_project), python_project)

    assert found.kind == "environment"
    assert (
        found.cause
        == "PyYAML is not installed in the project's environment: ModuleNotFoundError: No module named 'yaml'"
    )
    assert found.fix == "install it in the project's environment: pip install PyYAML"


def test_the_projects_own_module_missing_is_the_codes(python_project: Path) -> None:
    # The task is to write app/feature.py, or a module nothing declares: the agent's business.
    _write(python_project / "tests" / "test_feature.py", "from app.feature import run\ndef test_run(): pass\n")
    _write(python_project / "tests" / "test_new.py", "import brand_new_module\ndef test_new(): pass\n")

    assert classify(_run(f"{PYTEST} tests/test_feature.py", python_project), python_project).kind == "code"
    assert classify(_run(f"{PYTEST} tests/test_new.py", python_project), python_project).kind == "code"


def test_a_src_layout_that_is_not_installed(tmp_path: Path) -> None:
    _write(tmp_path / "pyproject.toml", "[project]\nname = 'mypkg'\n")
    _write(tmp_path / "src" / "mypkg" / "__init__.py", "")
    _write(tmp_path / "tests" / "test_pkg.py", "import mypkg\ndef test_pkg(): pass\n")

    found = classify(_run(PYTEST, tmp_path), tmp_path)

    assert found.kind == "environment"
    assert found.cause.startswith("the project's mypkg (under src/) is not installed")
    assert found.fix == "install the project editable in its environment: pip install -e ."


def test_an_installed_copy_tested_instead_of_the_tree(tmp_path: Path) -> None:
    project = tmp_path / "project"
    _write(project / "src" / "mypkg" / "__init__.py", "def answer():\n    return 42\n")
    # An older release of the same package, installed: it is the one the tests import.
    _write(tmp_path / "site-packages" / "mypkg" / "__init__.py", "def answer():\n    raise ValueError('old')\n")
    _write(project / "tests" / "test_answer.py", "import mypkg\ndef test_answer():\n    assert mypkg.answer() == 42\n")

    found = classify(_run(f"PYTHONPATH={tmp_path / 'site-packages'} {PYTEST}", project), project)

    assert found.kind == "environment"
    assert found.cause.startswith("the tests ran an installed copy of mypkg, not the tree's")


def test_pytest_that_collects_no_tests(tmp_path: Path) -> None:
    _write(tmp_path / "tests" / "check_things.py", "def test_x(): pass\n")  # not a name pytest collects

    result = _run(PYTEST, tmp_path)
    found = classify(result, tmp_path)

    assert result.exit_code == 5
    assert found.kind == "environment"
    assert found.cause.startswith("pytest collected no tests: no tests ran")


def test_pytest_told_to_run_tests_the_tree_lacks_is_the_codes(tmp_path: Path) -> None:
    _write(tmp_path / "tests" / "test_x.py", "def test_x(): pass\n")

    missing_file = _run(f"{PYTEST} tests/test_feature.py", tmp_path)
    deselected = _run(f"{PYTEST} -k test_feature", tmp_path)

    assert (missing_file.exit_code, deselected.exit_code) == (4, 5)
    assert classify(missing_file, tmp_path).kind == "code"
    assert classify(deselected, tmp_path).kind == "code"


def test_a_name_lookup_failure(tmp_path: Path) -> None:
    script = "import socket; socket.getaddrinfo('registry.invalid', 443)"
    found = classify(_run(f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}", tmp_path), tmp_path)

    assert found.kind == "environment"
    assert found.transient
    assert found.cause.startswith("a download or name lookup failed: ")


def test_an_interpreter_the_project_refuses(tmp_path: Path) -> None:
    # pip's words (pip/_internal/resolution): building a package to reproduce them takes seconds.
    output = "Processing /src/app\nERROR: Package 'app' requires a different Python: 3.9.18 not in '>=3.10'\n"

    found = classify(CheckResult(command="pip install -e .", exit_code=1, output_tail=output), tmp_path)

    assert found.kind == "environment"
    assert (
        found.cause
        == "the project refuses this Python: ERROR: Package 'app' requires a different Python: 3.9.18 not in '>=3.10'"
    )


def test_a_standard_module_this_python_lacks(tmp_path: Path) -> None:
    # What Python 3.10 says of tomllib (3.11+): there is no older Python here to say it.
    output = (
        "tests/test_cfg.py:1: in <module>\n    import tomllib\nE   ModuleNotFoundError: No module named 'tomllib'\n"
    )

    found = classify(CheckResult(command="pytest", exit_code=2, output_tail=output), tmp_path)

    assert found.kind == "environment"
    assert found.cause.startswith("this Python lacks the standard module tomllib")


# --- code --------------------------------------------------------------------------------------


def test_a_failing_assertion_is_the_codes(tmp_path: Path) -> None:
    _write(tmp_path / "tests" / "test_x.py", "def test_x():\n    assert 1 + 1 == 3\n")

    found = classify(_run(PYTEST, tmp_path), tmp_path)

    assert found.kind == "code"
    assert (found.cause, found.fix) == ("", "")


def test_a_syntax_error_in_the_project_is_the_codes(tmp_path: Path) -> None:
    _write(tmp_path / "app.py", "def broken(:\n")
    _write(tmp_path / "tests" / "test_app.py", "import app\n")

    assert classify(_run(PYTEST, tmp_path), tmp_path).kind == "code"


def test_a_timeout_is_the_codes(tmp_path: Path) -> None:
    result = CheckResult(command="pytest", exit_code=-1, output_tail="sh: 1: x: not found", timed_out=True)

    assert classify(result, tmp_path).kind == "code"
