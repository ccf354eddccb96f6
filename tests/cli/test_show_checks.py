"""`pa --show-checks [-d DIR]`: the checks the supervisor would hold the agent to, and why, without touching DIR."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentproxy.cli import app
from agentproxy.detect import detect_checks
from agentproxy.testing.fixture_repos import REPOSITORIES, make_repository

PA = Path(sys.executable).with_name("pa")


@pytest.fixture
def env(agentproxy_home: Path) -> dict[str, str]:
    environ = {name: value for name, value in os.environ.items() if name != "CLAUDE_BIN"}
    environ["AGENTPROXY_HOME"] = str(agentproxy_home)
    return environ


def _pa(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PA), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=30, check=False)


def _tree(root: Path) -> dict[str, int]:
    return {path.relative_to(root).as_posix(): path.stat().st_mtime_ns for path in root.rglob("*")}


def test_show_checks_prints_each_check_and_why_and_creates_nothing(env: dict[str, str], tmp_path: Path) -> None:
    project = make_repository("make-check-only", tmp_path)
    before = _tree(project)

    done = _pa("--show-checks", "-d", str(project), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout == "make check\n  why: Makefile target `check` (no `test` target)\n"
    assert not (project / ".git").exists()
    assert _tree(project) == before


def test_show_checks_as_json_lines(env: dict[str, str], tmp_path: Path) -> None:
    project = make_repository("ci-markers-tox", tmp_path)

    done = _pa("--show-checks", "-d", str(project), "--output", "json", env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == [
        {
            "command": 'pytest -m "not online" tests/',
            "reason": "the CI workflow .github/workflows/ci.yml runs it (step 'Test')",
        }
    ]


def test_show_checks_without_any_says_how_to_give_one(env: dict[str, str], tmp_path: Path) -> None:
    project = make_repository("npm-placeholder", tmp_path)

    done = _pa("--show-checks", "-d", str(project), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{project}: no checks found: pass --check CMD\n"
    assert not (project / ".git").exists()


def test_show_checks_of_a_missing_directory_is_a_one_line_error(env: dict[str, str], tmp_path: Path) -> None:
    done = _pa("--show-checks", "-d", str(tmp_path / "absent"), env=env, cwd=tmp_path)

    assert done.returncode == 2
    assert done.stderr.strip() == f"pa: error: -d {tmp_path / 'absent'}: not an existing directory"
    assert not (tmp_path / "absent").exists()


@pytest.mark.parametrize("name", sorted(REPOSITORIES))
def test_show_checks_on_each_fixture_prints_what_detection_found(name: str, tmp_path: Path) -> None:
    project = make_repository(name, tmp_path)
    before = _tree(project)

    result = CliRunner().invoke(app, ["--show-checks", "-d", str(project), "--output", "json"])

    assert result.exit_code == 0, result.output
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert printed == [{"command": check.command, "reason": check.reason} for check in detect_checks(project)]
    assert _tree(project) == before


def test_checks_given_with_check_are_shown_instead_of_detected_ones(tmp_path: Path) -> None:
    project = make_repository("go", tmp_path)

    result = CliRunner().invoke(app, ["--show-checks", "-d", str(project), "--check", "make lint"])

    assert result.exit_code == 0, result.output
    assert result.stdout == "make lint\n  why: given with --check\n"


def test_the_cli_module_does_not_import_detection_or_yaml(env: dict[str, str], tmp_path: Path) -> None:
    probe = "import sys, agentproxy.cli; print(sorted(m for m in ('yaml', 'agentproxy.detect') if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
