"""`pa --show-checks [-d DIR] [--setup MODE] [--run]`: the checks the supervisor would hold the agent to, and why.

Also the setup they need. Without --run nothing in DIR is touched; with --run the setup is done and the checks run
at the tree, their results cached per tree id and command.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentproxy.cli import app
from agentproxy.detect import detect_checks
from agentproxy.testing.fixture_repos import REPOSITORIES, make_repository

PA = Path(sys.executable).with_name("pa")
SETUP_OFF_LINE = "setup: off (--setup off): the checks run in your environment as it is"
PASSES = "grep -q hello README"
FAILS = "grep -q UNFINISHED README"
PREEXISTING = "this check already failed the same way before your change; leave it unless the task is about it"
INSTALL_TIMEOUT_S = 300  # a venv and a pip install from PyPI


@pytest.fixture
def env(agentproxy_home: Path) -> dict[str, str]:
    environ = {name: value for name, value in os.environ.items() if name != "CLAUDE_BIN"}
    environ["AGENTPROXY_HOME"] = str(agentproxy_home)
    return environ


def _pa(*args: str, env: dict[str, str], cwd: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PA), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def _tree(root: Path) -> dict[str, int]:
    return {path.relative_to(root).as_posix(): path.stat().st_mtime_ns for path in root.rglob("*")}


def _json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def _git_repository(directory: Path) -> Path:
    """A committed repository with a README saying hello: the tree id the results are cached under."""
    directory.mkdir()
    (directory / "README").write_text("hello\n")
    for argv in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "init"],
    ):
        subprocess.run(argv, cwd=directory, capture_output=True, timeout=30, check=True)
    return directory


def _python_env_in_reason(reason: str, envs: Path) -> Path:
    """The environment a `python: pip install into ENV` reason names, which must be one under envs."""
    prefix = "python: pip install into "
    assert reason.startswith(prefix), reason
    environment = Path(reason.removeprefix(prefix))
    assert environment.parent == envs.resolve(), (environment, envs)
    return environment


# -- without --run: nothing is touched ------------------------------------------------------------


def test_show_checks_prints_each_check_and_why_and_creates_nothing(env: dict[str, str], tmp_path: Path) -> None:
    project = make_repository("make-check-only", tmp_path)
    before = _tree(project)

    done = _pa("--show-checks", "-d", str(project), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout == "make check\n  why: Makefile target `check` (no `test` target)\n\nsetup:\n  nothing to do\n"
    assert not (project / ".git").exists()
    assert _tree(project) == before


def test_show_checks_as_json_lines_ends_with_the_setup(
    env: dict[str, str], agentproxy_home: Path, tmp_path: Path
) -> None:
    project = make_repository("ci-markers-tox", tmp_path)

    done = _pa("--show-checks", "-d", str(project), "--output", "json", env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    check, setup = _json_lines(done.stdout)
    assert check == {
        "kind": "check",
        "command": 'pytest -m "not online" tests/',
        "reason": "the CI workflow .github/workflows/ci.yml runs it (step 'Test')",
    }
    [reason] = setup["reasons"]
    environment = _python_env_in_reason(reason, agentproxy_home / "data" / "envs")
    assert environment.name.startswith("ci-markers-tox-")
    create, install = setup["commands"]
    python, *arguments = shlex.split(create)
    assert Path(python).is_absolute() and arguments == ["-m", "venv", str(environment)]
    pip = f"{environment}/bin/python -m pip install --disable-pip-version-check --no-input"
    assert install == f"{pip} -e '.[test]' pytest"  # the test extra, and pytest the project configures
    assert setup == {
        "kind": "setup",
        "mode": "auto",
        "reasons": [reason],
        "problems": [],
        "commands": [create, install],
    }
    assert not environment.exists()  # planned, not made


def test_show_checks_text_names_the_venv_it_would_make_and_setup_off_says_so(
    env: dict[str, str], agentproxy_home: Path, tmp_path: Path
) -> None:
    project = make_repository("ci-markers-tox", tmp_path)
    checks_part = (
        "pytest -m \"not online\" tests/\n  why: the CI workflow .github/workflows/ci.yml runs it (step 'Test')\n\n"
    )

    auto = _pa("--show-checks", "-d", str(project), env=env, cwd=tmp_path)
    off = _pa("--show-checks", "-d", str(project), "--setup", "off", env=env, cwd=tmp_path)

    assert auto.returncode == 0, auto.stderr
    assert auto.stdout.startswith(checks_part)
    heading, reason, create, install = auto.stdout.removeprefix(checks_part).splitlines()
    assert heading == "setup:"
    environment = _python_env_in_reason(reason.removeprefix("  "), agentproxy_home / "data" / "envs")
    assert create.startswith("  $ /") and create.endswith(f" -m venv {environment}")
    pip = f"{environment}/bin/python -m pip install --disable-pip-version-check --no-input"
    assert install == f"  $ {pip} -e '.[test]' pytest"
    assert off.returncode == 0, off.stderr
    assert off.stdout == checks_part + SETUP_OFF_LINE + "\n"
    assert not (project / ".git").exists() and not environment.exists()


def test_show_checks_without_any_says_how_to_give_one(env: dict[str, str], tmp_path: Path) -> None:
    project = make_repository("npm-placeholder", tmp_path)

    done = _pa("--show-checks", "-d", str(project), "--setup", "off", env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{project}: no checks found: pass --check CMD\n\n{SETUP_OFF_LINE}\n"
    assert not (project / ".git").exists()


def test_show_checks_of_a_missing_directory_is_a_one_line_error(env: dict[str, str], tmp_path: Path) -> None:
    done = _pa("--show-checks", "-d", str(tmp_path / "absent"), env=env, cwd=tmp_path)

    assert done.returncode == 2
    assert done.stderr.strip() == f"pa: error: -d {tmp_path / 'absent'}: not an existing directory"
    assert not (tmp_path / "absent").exists()


@pytest.mark.parametrize("name", sorted(REPOSITORIES))
def test_show_checks_on_each_fixture_prints_what_detection_found(
    name: str, agentproxy_home: Path, tmp_path: Path
) -> None:
    project = make_repository(name, tmp_path)
    before = _tree(project)
    detected = detect_checks(project)

    as_json = CliRunner().invoke(app, ["--show-checks", "-d", str(project), "--output", "json"])
    as_text = CliRunner().invoke(app, ["--show-checks", "-d", str(project)])

    assert as_json.exit_code == 0, as_json.output
    *checks, setup = _json_lines(as_json.stdout)
    assert checks == [{"kind": "check", "command": check.command, "reason": check.reason} for check in detected]
    assert setup["kind"] == "setup" and setup["mode"] == "auto"  # what it plans depends on the tools installed here
    assert as_text.exit_code == 0, as_text.output
    checks_part = "\n\n".join(f"{check.command}\n  why: {check.reason}" for check in detected)
    assert as_text.stdout.startswith((checks_part or f"{project}: no checks found: pass --check CMD") + "\n\nsetup:\n")
    assert _tree(project) == before
    assert not (agentproxy_home / "data" / "envs").exists()


def test_checks_given_with_check_are_shown_instead_of_detected_ones(tmp_path: Path) -> None:
    project = make_repository("go", tmp_path)

    result = CliRunner().invoke(app, ["--show-checks", "-d", str(project), "--check", "make lint", "--setup", "off"])

    assert result.exit_code == 0, result.output
    assert result.stdout == f"make lint\n  why: given with --check\n\n{SETUP_OFF_LINE}\n"


# -- with --run: the setup done, the checks run at the tree -----------------------------------------


def test_run_reports_each_kind_exits_1_on_a_failure_and_caches_the_results(env: dict[str, str], tmp_path: Path) -> None:
    project = _git_repository(tmp_path / "project")
    argv = ["--show-checks", "--run", "--setup", "off", "-d", str(project), "--check", PASSES, "--check", FAILS]
    kind_lines = [f"{PASSES}: passed: passes before your change", f"{FAILS}: preexisting: {PREEXISTING}"]

    first = _pa(*argv, env=env, cwd=tmp_path)
    again = _pa(*argv, env=env, cwd=tmp_path)
    as_json = _pa(*argv, "--output", "json", env=env, cwd=tmp_path)

    assert first.returncode == 1, first.stdout + first.stderr
    assert first.stdout.splitlines()[-2:] == kind_lines
    assert "(cached)" not in first.stdout
    assert again.returncode == 1, again.stdout + again.stderr
    assert again.stdout.splitlines()[-2:] == kind_lines
    assert f"✓ {PASSES} (cached)" in again.stdout and f"✗ {FAILS} (cached)" in again.stdout
    assert as_json.returncode == 1, as_json.stdout + as_json.stderr
    baseline = _json_lines(as_json.stdout)[-1]
    assert baseline["kind"] == "baseline_ran"
    assert baseline["cached"] == [PASSES, FAILS]
    assert [(result["command"], result.get("exit_code", 0)) for result in baseline["results"]] == [
        (PASSES, 0),
        (FAILS, 1),
    ]


def test_run_reports_a_check_that_cannot_run_as_the_environment(env: dict[str, str], tmp_path: Path) -> None:
    project = _git_repository(tmp_path / "project")
    argv = ["--show-checks", "--run", "--setup", "off", "-d", str(project), "--check", "nosuchtool --x"]

    as_json = _pa(*argv, "--output", "json", env=env, cwd=tmp_path)
    as_text = _pa(*argv, env=env, cwd=tmp_path)

    assert as_json.returncode == 1, as_json.stdout + as_json.stderr
    baseline = _json_lines(as_json.stdout)[-1]
    [result] = baseline["results"]
    assert result["exit_code"] == 127
    assert "nosuchtool" in result["environment"]
    assert not baseline.get("cached")
    assert as_text.returncode == 1, as_text.stdout + as_text.stderr
    assert as_text.stdout.splitlines()[-1].startswith("nosuchtool --x: environment: could not run: ")
    assert "(cached)" not in as_text.stdout  # a run that could not run is not kept


def test_run_with_a_setup_command_of_yours_runs_it_first_and_shows_it(env: dict[str, str], tmp_path: Path) -> None:
    project = _git_repository(tmp_path / "project")
    (project / ".gitignore").write_text("bin/\n")
    setup = "mkdir -p bin && printf '#!/bin/sh\\nexit 0\\n' > bin/tool && chmod +x bin/tool"
    argv = ["--show-checks", "--run", "--setup", setup, "-d", str(project), "--check", "bin/tool"]

    done = _pa(*argv, "--output", "json", env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    events = _json_lines(done.stdout)
    [started] = [e for e in events if e["kind"] == "setup_started"]
    assert started["commands"] == [shlex.join(["/bin/sh", "-c", setup])]
    [step] = [e for e in events if e["kind"] == "setup_step_ran"]
    assert step["why"] == "--setup" and step["result"]["exit_code"] == 0
    assert events[-1]["kind"] == "baseline_ran" and events[-1]["results"][0]["exit_code"] == 0


def test_run_without_show_checks_is_a_usage_error(env: dict[str, str], tmp_path: Path) -> None:
    done = _pa("--run", "-d", str(tmp_path), env=env, cwd=tmp_path)

    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("pa: error: ") and "--show-checks" in line


@pytest.mark.slow
@pytest.mark.timeout(INSTALL_TIMEOUT_S + 30)
@pytest.mark.parametrize("name", ["pytest-plain", "src-layout-tox"])
def test_run_sets_a_python_project_up_outside_the_tree_and_its_tests_pass(
    name: str, env: dict[str, str], agentproxy_home: Path, tmp_path: Path
) -> None:
    project = make_repository(name, tmp_path)

    done = _pa(
        "--show-checks", "--run", "--setup", "auto", "-d", str(project), "--output", "json",
        env=env, cwd=tmp_path, timeout=INSTALL_TIMEOUT_S,
    )  # fmt: skip

    events = _json_lines(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    plan = next(event for event in events if event["kind"] == "setup")
    environment = _python_env_in_reason(plan["reasons"][0], agentproxy_home / "data" / "envs")
    assert (environment / "bin" / "python").exists()
    steps = [event["result"] for event in events if event["kind"] == "setup_step_ran"]
    assert len(steps) == len(plan["commands"]) and all(step.get("exit_code", 0) == 0 for step in steps)
    baseline = events[-1]
    assert baseline["kind"] == "baseline_ran"
    assert [result.get("exit_code", 0) for result in baseline["results"]] == [0]
    assert not (project / ".venv").exists()


def test_the_cli_module_does_not_import_detection_or_yaml(env: dict[str, str], tmp_path: Path) -> None:
    probe = "import sys, agentproxy.cli; print(sorted(m for m in ('yaml', 'agentproxy.detect') if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
