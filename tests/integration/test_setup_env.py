"""Setting a project's environment up: the plan for each kind of project, and real setups that make checks pass.

Planning tests put only the tools they name on PATH: python3 is the real base interpreter, the
others are stand-ins that planning only looks up and never runs. The slow tests really install
from PyPI and the npm registry.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agentproxy import procs
from agentproxy.python_interpreters import interpreters_on_path
from agentproxy.setup_env import SetupPlan, SetupStep, check_env, plan_setup, run_setup

ToolPath = Callable[..., Path]
PYPROJECT_WITH_TEST_EXTRA = """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "pkgx"
version = "2.0"
requires-python = ">=3.8"

[project.optional-dependencies]
test = ["pytest", "pytest-timeout"]
docs = ["sphinx"]

[tool.pytest.ini_options]
addopts = "--timeout=30"
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def only_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ToolPath:
    """Make PATH hold just python3 (the real base interpreter) and stand-ins for the named tools."""
    base_python = interpreters_on_path()[0].path

    def install(*names: str) -> Path:
        bin_dir = tmp_path / "tools-bin"
        bin_dir.mkdir(exist_ok=True)
        (bin_dir / "python3").symlink_to(base_python)
        if setpriv := shutil.which("setpriv"):  # procs starts every child through it, found on PATH
            (bin_dir / "setpriv").symlink_to(setpriv)
        for name in names:
            stand_in = bin_dir / name
            stand_in.write_text("#!/bin/sh\necho planning only >&2\nexit 3\n")
            stand_in.chmod(0o755)
        monkeypatch.setenv("PATH", str(bin_dir))
        monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))  # pyenv's versions would count too
        return bin_dir

    return install


def commands(plan: SetupPlan) -> list[list[str]]:
    return [step.command for step in plan.steps]


# --------------------------------------------------------------------------------------------- Python plans


def test_uv_lock_without_uv_is_a_problem(tmp_path: Path, only_tools: ToolPath) -> None:
    only_tools()
    project = write(tmp_path / "proj", {"pyproject.toml": PYPROJECT_WITH_TEST_EXTRA, "uv.lock": "version = 1\n"})
    plan = plan_setup(project, tmp_path / "envs")
    assert plan.steps == []
    assert any("uv.lock but uv is not installed" in problem for problem in plan.problems)


def test_uv_lock_syncs_every_extra_and_group_outside_the_tree(tmp_path: Path, only_tools: ToolPath) -> None:
    only_tools("uv")
    project = write(tmp_path / "proj", {"pyproject.toml": PYPROJECT_WITH_TEST_EXTRA, "uv.lock": "version = 1\n"})
    envs = tmp_path / "envs"
    plan = plan_setup(project, envs)
    assert plan.problems == []
    [command] = commands(plan)
    assert command[:5] == ["uv", "sync", "--all-extras", "--all-groups", "--frozen"]
    environment = Path(plan.env["UV_PROJECT_ENVIRONMENT"])
    assert environment.parent == envs.resolve()
    assert plan.env["VIRTUAL_ENV"] == str(environment)
    assert plan.env["PATH"].split(os.pathsep)[0] == str(environment / "bin")


def test_poetry_lock_installs_only_the_test_groups_that_exist(tmp_path: Path, only_tools: ToolPath) -> None:
    only_tools("poetry")
    pyproject = """\
[tool.poetry]
name = "pkgp"
version = "0.1.0"

[tool.poetry.dependencies]
python = "^3.8"

[tool.poetry.group.test.dependencies]
pytest = "^8"

[tool.poetry.group.docs.dependencies]
sphinx = "*"
"""
    project = write(tmp_path / "proj", {"pyproject.toml": pyproject, "poetry.lock": "# locked\n"})
    envs = tmp_path / "envs"
    plan = plan_setup(project, envs)
    assert plan.problems == []
    create, install = commands(plan)
    assert create[1:3] == ["-m", "venv"] and Path(create[3]).parent == envs.resolve()
    assert install == ["poetry", "install", "--no-interaction", "--with", "test"]
    assert plan.env["VIRTUAL_ENV"] == create[3]  # poetry installs into the active virtualenv


def test_plain_pyproject_gets_a_venv_under_envs_dir_with_the_tree_editable(
    tmp_path: Path, only_tools: ToolPath
) -> None:
    only_tools()
    project = write(tmp_path / "proj", {"pyproject.toml": PYPROJECT_WITH_TEST_EXTRA, "requirements-dev.txt": "ruff\n"})
    envs = tmp_path / "envs"
    plan = plan_setup(project, envs)
    assert plan.problems == []
    create, install = commands(plan)
    venv = Path(create[3])
    assert venv.parent == envs.resolve() and not venv.is_relative_to(project)
    assert install[0] == str(venv / "bin" / "python")
    assert install[install.index("-e") + 1] == ".[test]"  # the test extra, not docs
    assert install[install.index("-r") : install.index("-r") + 2] == ["-r", "requirements-dev.txt"]
    assert plan.env["VIRTUAL_ENV"] == str(venv)
    assert all(step.cwd == project.resolve() for step in plan.steps)


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="agentproxy is not running from a virtualenv")
def test_agentproxys_own_virtualenv_is_neither_the_interpreter_nor_on_the_checks_path(
    tmp_path: Path, only_tools: ToolPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    own_bin = Path(sys.prefix) / "bin"
    monkeypatch.setenv("PATH", f"{own_bin}{os.pathsep}{only_tools()}")
    plan = plan_setup(write(tmp_path / "proj", {"pyproject.toml": PYPROJECT_WITH_TEST_EXTRA}), tmp_path / "envs")
    interpreter = Path(plan.steps[0].command[0])
    assert not interpreter.is_relative_to(sys.prefix) and interpreter.resolve() == interpreter
    assert str(own_bin) not in plan.env["PATH"].split(os.pathsep)


def test_setup_cfg_and_setup_py_extras_are_read_without_running_setup_py(tmp_path: Path, only_tools: ToolPath) -> None:
    only_tools()
    build_system = '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
    setup_cfg = "[metadata]\nname = c\n[options.extras_require]\ntesting = pytest\n"
    cfg = write(tmp_path / "cfg", {"pyproject.toml": build_system, "setup.cfg": setup_cfg})
    setup_py = (
        'from setuptools import setup\nEXTRAS = {"dev": ["pytest"], "all": ["x"]}\n'
        'setup(name="s", extras_require=EXTRAS)\n'
    )
    py = write(tmp_path / "py", {"setup.py": setup_py})
    for project, target in ((cfg, ".[testing]"), (py, ".[dev]")):
        install = commands(plan_setup(project, tmp_path / "envs"))[-1]
        assert install[install.index("-e") + 1] == target


def test_pytest_is_installed_when_the_tests_import_it_though_nothing_declares_it(
    tmp_path: Path, only_tools: ToolPath
) -> None:
    only_tools()
    files = {"requirements.txt": "six\n", "tests/test_one.py": "import pytest\n\ndef test_one():\n    pass\n"}
    install = commands(plan_setup(write(tmp_path / "proj", files), tmp_path / "envs"))[-1]
    assert install[-3:] == ["-r", "requirements.txt", "pytest"]
    unittest_only = {"requirements.txt": "six\n", "tests/test_one.py": "import unittest\n"}
    assert "pytest" not in commands(plan_setup(write(tmp_path / "unit", unittest_only), tmp_path / "envs"))[-1]


def test_dependency_groups_are_installed_with_their_includes(tmp_path: Path, only_tools: ToolPath) -> None:
    only_tools()
    pyproject = (
        '[project]\nname = "g"\nversion = "1"\n'
        '[dependency-groups]\nlint = ["ruff"]\ntest = ["pytest-timeout", {include-group = "lint"}]\n'
    )
    install = commands(plan_setup(write(tmp_path / "proj", {"pyproject.toml": pyproject}), tmp_path / "envs"))[-1]
    assert "pytest-timeout" in install and "ruff" in install


def test_requires_python_no_interpreter_satisfies_is_a_problem_naming_it(tmp_path: Path, only_tools: ToolPath) -> None:
    only_tools()
    wanted = f"3.{sys.version_info.minor + 1}"
    pyproject = f'[project]\nname = "n"\nversion = "1"\nrequires-python = ">={wanted}"\n'
    plan = plan_setup(write(tmp_path / "proj", {"pyproject.toml": pyproject}), tmp_path / "envs")
    assert plan.steps == []
    [problem] = plan.problems
    assert f"requires-python >={wanted}" in problem and f"no python{wanted} on PATH" in problem


def test_python_version_file_is_honoured(tmp_path: Path, only_tools: ToolPath) -> None:
    only_tools()
    project = write(tmp_path / "proj", {"requirements.txt": "six\n", ".python-version": "3.5\n"})
    plan = plan_setup(project, tmp_path / "envs")
    assert plan.steps == [] and ".python-version 3.5" in plan.problems[0] and "python3.5" in plan.problems[0]


def test_existing_venv_in_the_tree_is_used_as_it_is(tmp_path: Path, only_tools: ToolPath) -> None:
    only_tools("uv")
    project = write(tmp_path / "proj", {"pyproject.toml": PYPROJECT_WITH_TEST_EXTRA, "uv.lock": "version = 1\n"})
    code, output, _ = procs.run_bounded(["python3", "-m", "venv", "--without-pip", ".venv"], cwd=project, timeout_s=30)
    assert code == 0, output
    plan = plan_setup(project, tmp_path / "envs")
    assert plan.steps == [] and plan.problems == []
    venv = project.resolve() / ".venv"
    assert plan.env["VIRTUAL_ENV"] == str(venv)
    assert plan.env["PATH"].split(os.pathsep)[0] == str(venv / "bin")


# ----------------------------------------------------------------------------------- Node, Go and Rust plans


def package_json(**fields: object) -> str:
    return json.dumps({"name": "n", "version": "1.0.0", "scripts": {"test": "node t.js"}, **fields})


def test_package_lock_installs_with_npm_ci(tmp_path: Path, only_tools: ToolPath) -> None:
    only_tools("node", "npm")
    project = write(tmp_path / "proj", {"package.json": package_json(), "package-lock.json": "{}"})
    plan = plan_setup(project, tmp_path / "envs")
    assert commands(plan) == [["npm", "ci", "--no-audit", "--no-fund"]]
    assert plan.env["PATH"].split(os.pathsep)[0] == str(project.resolve() / "node_modules" / ".bin")


def test_pnpm_lock_installs_frozen_through_corepack(tmp_path: Path, only_tools: ToolPath) -> None:
    only_tools("node", "npm", "corepack")
    project = write(tmp_path / "proj", {"package.json": package_json(), "pnpm-lock.yaml": "lockfileVersion: '9.0'\n"})
    plan = plan_setup(project, tmp_path / "envs")
    shims = tmp_path / "envs" / "corepack-bin"
    assert commands(plan) == [
        ["corepack", "enable", "--install-directory", str(shims), "pnpm"],  # `pnpm -r test` needs a pnpm on PATH
        ["corepack", "pnpm", "install", "--frozen-lockfile"],
    ]
    assert plan.env["COREPACK_ENABLE_DOWNLOAD_PROMPT"] == "0"
    assert plan.env["PATH"].split(os.pathsep)[1] == str(shims)  # after node_modules/.bin


def test_yarn_berry_and_classic_get_their_own_flags(tmp_path: Path, only_tools: ToolPath) -> None:
    only_tools("node", "corepack")
    berry = write(tmp_path / "berry", {"package.json": package_json(packageManager="yarn@4.1.0"), "yarn.lock": ""})
    classic = write(tmp_path / "classic", {"package.json": package_json(), "yarn.lock": "# yarn lockfile v1\n"})
    assert commands(plan_setup(berry, tmp_path / "envs"))[1:] == [["corepack", "yarn", "install", "--immutable"]]
    assert commands(plan_setup(classic, tmp_path / "envs"))[1:] == [
        ["corepack", "yarn", "install", "--frozen-lockfile"]
    ]


WORKFLOW = """\
name: ci
on: [push]
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: npm ci
      - run: |
          npm run lint
          {first}
      - run: {second}
"""


def test_ci_build_before_the_tests_becomes_a_step(tmp_path: Path, only_tools: ToolPath) -> None:
    only_tools("node", "npm")
    scripts = {"build": "tsc", "test": "node t.js"}
    files = {"package.json": package_json(scripts=scripts), "package-lock.json": "{}"}
    builds = write(
        tmp_path / "builds",
        {**files, ".github/workflows/ci.yml": WORKFLOW.format(first="npm run build", second="npm test")},
    )
    plan = plan_setup(builds, tmp_path / "envs")
    assert commands(plan) == [["npm", "ci", "--no-audit", "--no-fund"], ["npm", "run", "build"]]
    assert "ci.yml" in plan.steps[1].why
    after = write(
        tmp_path / "after",
        {**files, ".github/workflows/ci.yml": WORKFLOW.format(first="npm test", second="npm run build")},
    )
    assert commands(plan_setup(after, tmp_path / "envs")) == [["npm", "ci", "--no-audit", "--no-fund"]]


def test_node_modules_newer_than_the_lockfile_needs_no_install(tmp_path: Path, only_tools: ToolPath) -> None:
    only_tools("node", "npm")
    project = write(tmp_path / "proj", {"package.json": package_json(), "package-lock.json": "{}"})
    past = time.time() - 60
    for name in ("package.json", "package-lock.json"):
        os.utime(project / name, (past, past))
    (project / "node_modules").mkdir()
    plan = plan_setup(project, tmp_path / "envs")
    assert plan.steps == [] and any("up to date" in reason for reason in plan.reasons)


def test_go_mod_without_go_is_a_problem(tmp_path: Path, only_tools: ToolPath) -> None:
    only_tools()
    plan = plan_setup(write(tmp_path / "proj", {"go.mod": "module example.com/m\n\ngo 1.22\n"}), tmp_path / "envs")
    assert plan.steps == [] and plan.problems == ["go.mod but go is not installed"]


def test_cargo_toml_fetches_crates(tmp_path: Path, only_tools: ToolPath) -> None:
    only_tools("cargo")
    project = write(tmp_path / "proj", {"Cargo.toml": '[package]\nname = "c"\nversion = "0.1.0"\n'})
    plan = plan_setup(project, tmp_path / "envs")
    assert commands(plan) == [["cargo", "fetch"]] and plan.problems == []


# ------------------------------------------------------------------------------------------------ running


def test_run_setup_stops_at_the_first_failing_step_and_writes_no_stamp(tmp_path: Path) -> None:
    stamp = tmp_path / "env" / "stamp.json"
    plan = SetupPlan(
        steps=[
            SetupStep(["sh", "-c", "echo fetching; exit 3"], tmp_path, "fails"),
            SetupStep(["touch", "never"], tmp_path, "must not run"),
        ],
        env={"SETUP_MARK": "from-the-plan"},
        stamps={stamp: "{}"},
    )
    seen: list[tuple[str, int]] = []
    report = run_setup(plan, timeout_s=10, on_step=lambda step, result: seen.append((step.why, result.exit_code)))
    assert seen == [("fails", 3)] and not report.passed
    assert report.results[0].command == "sh -c 'echo fetching; exit 3'" and "fetching" in report.results[0].output_tail
    assert not (tmp_path / "never").exists() and not stamp.exists()
    assert check_env(plan)["SETUP_MARK"] == "from-the-plan"


def test_run_setup_bounds_each_step(tmp_path: Path) -> None:
    plan = SetupPlan(steps=[SetupStep(["sleep", "30"], tmp_path, "hangs")])
    started = time.monotonic()
    report = run_setup(plan, timeout_s=0.5)
    assert report.results[0].timed_out and not report.passed
    assert time.monotonic() - started < 10


# ------------------------------------------------------------------------------------------------ real runs


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_real_python_setup_imports_the_tree_not_an_older_installed_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_python = str(interpreters_on_path()[0].path)
    # An older pkgx 1.0 installed in another environment, which is first on PATH and active.
    old = write(
        tmp_path / "old",
        {
            "pyproject.toml": PYPROJECT_WITH_TEST_EXTRA.replace('"2.0"', '"1.0"'),
            "src/pkgx/__init__.py": 'VERSION = "1.0"\n',
        },
    )
    other = tmp_path / "other-env"
    for argv in (
        [base_python, "-m", "venv", "--without-pip", str(other)],
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(other / "bin" / "python"),
            "install",
            "-q",
            "--no-deps",
            str(old),
        ],
    ):
        code, output, _ = procs.run_bounded(argv, cwd=tmp_path, timeout_s=60)
        assert code == 0, output.decode()
    monkeypatch.setenv("PATH", f"{other / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("VIRTUAL_ENV", str(other))
    test = "import pkgx\nimport pytest_timeout\n\ndef test_where():\n    print('PKGX', pkgx.VERSION, pkgx.__file__)\n"
    project = write(
        tmp_path / "proj",
        {
            "pyproject.toml": PYPROJECT_WITH_TEST_EXTRA,
            "src/pkgx/__init__.py": 'VERSION = "2.0"\n',
            "tests/test_where.py": test,
        },
    )
    where = "python -c 'import pkgx; print(pkgx.VERSION)'"
    code, output, _ = procs.run_bounded(where, cwd=project, timeout_s=30, env=os.environ)
    assert (code, output.decode().strip()) == (0, "1.0")  # without setup, the installed copy wins

    envs = tmp_path / "envs"
    plan = plan_setup(project, envs)
    ran: list[str] = []
    report = run_setup(plan, timeout_s=120, on_step=lambda step, result: ran.append(result.command))
    assert report.passed, [result.output_tail for result in report.results]
    assert len(ran) == 2 and "pip install" in ran[1]

    code, output, _ = procs.run_bounded("python -m pytest -q -s", cwd=project, timeout_s=60, env=check_env(plan))
    text = output.decode()
    assert code == 0, text
    assert f"PKGX 2.0 {project.resolve() / 'src' / 'pkgx' / '__init__.py'}" in text
    assert not (project / ".venv").exists() and envs.resolve() in Path(plan.env["VIRTUAL_ENV"]).parents

    started = time.monotonic()
    again = plan_setup(project, envs)
    second = run_setup(again, timeout_s=60)
    elapsed = time.monotonic() - started
    assert again.steps == [] and second.results == [] and second.passed
    assert any("up to date" in reason for reason in again.reasons)
    assert elapsed < 1.0

    (project / "pyproject.toml").write_text(PYPROJECT_WITH_TEST_EXTRA.replace("pytest-timeout", "pytest-timeout>=2"))
    changed = plan_setup(project, envs)
    assert [step.command[3:5] for step in changed.steps] == [["install", "--disable-pip-version-check"]]


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.skipif(shutil.which("npm") is None, reason="needs npm")
def test_real_node_setup_npm_ci_then_npm_test_passes(tmp_path: Path) -> None:
    test_script = "node -e \"if (!require('is-number')(5)) process.exit(1); console.log('is-number works')\""
    project = write(
        tmp_path / "proj",
        {
            "package.json": json.dumps(
                {
                    "name": "n",
                    "version": "1.0.0",
                    "private": True,
                    "scripts": {"test": test_script},
                    "dependencies": {"is-number": "7.0.0"},
                }
            )
        },
    )
    code, output, _ = procs.run_bounded(
        ["npm", "install", "--package-lock-only", "--no-audit", "--no-fund"], cwd=project, timeout_s=60
    )
    assert code == 0 and (project / "package-lock.json").is_file(), output.decode()
    code, output, _ = procs.run_bounded("npm test", cwd=project, timeout_s=60)
    assert code != 0 and "Cannot find module 'is-number'" in output.decode()

    plan = plan_setup(project, tmp_path / "envs")
    assert commands(plan) == [["npm", "ci", "--no-audit", "--no-fund"]]
    report = run_setup(plan, timeout_s=120)
    assert report.passed and report.results[0].command == "npm ci --no-audit --no-fund"
    assert (project / "node_modules" / "is-number").is_dir()

    code, output, _ = procs.run_bounded("npm test", cwd=project, timeout_s=60, env=check_env(plan))
    assert code == 0 and "is-number works" in output.decode()
    assert plan_setup(project, tmp_path / "envs").steps == []  # node_modules is now newer than the lockfile
