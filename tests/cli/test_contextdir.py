"""`pa --set-contextdir / --show-contextdir / --context-dir`, through the real `pa` entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentproxy import config

PA = Path(sys.executable).with_name("pa")


@pytest.fixture
def env(agentproxy_home: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k != "CLAUDE_BIN" and not k.startswith("CLAUDECODE")}
    environ["AGENTPROXY_HOME"] = str(agentproxy_home)
    environ["COLUMNS"] = "200"
    return environ


def pa(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PA), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def usage_error(done: subprocess.CompletedProcess[str]) -> str:
    """The one stderr line of a usage error (exit 2), with nothing on stdout."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pa: error: "), done.stderr
    assert done.stdout == ""
    return lines[0]


def test_help_lists_the_flags(env: dict[str, str], tmp_path: Path) -> None:
    done = pa("--help", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for flag in ("--set-contextdir", "--show-contextdir", "--context-dir"):
        assert f" {flag}" in done.stdout, flag


def test_set_and_show_round_trip_beside_the_workdir(env: dict[str, str], tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    assert pa("--show-contextdir", env=env, cwd=tmp_path).stdout == "(no saved contextdir)\n"

    saved = pa("--set-contextdir", "docs", env=env, cwd=tmp_path)  # relative: saved resolved
    assert saved.returncode == 0, saved.stderr
    assert saved.stdout == f"saved contextdir: {docs.resolve()}\n"

    shown = pa("--show-contextdir", env=env, cwd=tmp_path / "docs")
    assert (shown.returncode, shown.stdout) == (0, f"{docs.resolve()}\n")
    assert config.saved_contextdir() == docs.resolve()

    config.save_workdir(tmp_path / "work")  # one settings file: neither setting clobbers the other
    assert config.saved_contextdir() == docs.resolve()
    assert pa("--set-contextdir", str(docs), env=env, cwd=tmp_path).returncode == 0
    assert config.saved_workdir() == tmp_path / "work"


@pytest.mark.parametrize("flag", ["--set-contextdir", "--context-dir"])
@pytest.mark.parametrize("kind", ["missing", "file"])
def test_not_a_directory_is_a_usage_error(flag: str, kind: str, env: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "nowhere"
    if kind == "file":
        target.write_text("not a directory")
    line = usage_error(pa(flag, str(target), "some task", env=env, cwd=tmp_path))
    assert flag in line and str(target) in line and "not an existing directory" in line
    assert config.saved_contextdir() is None


def test_set_contextdir_with_a_task_goes_on_to_run(env: dict[str, str], tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    missing = str(tmp_path / "no-such-claude")
    # The run stops at the missing agent binary: proof it went past saving.
    done = subprocess.run(
        [str(PA), "-d", str(tmp_path / "project"), "--claude-bin", missing, "--set-contextdir", str(docs), "task"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == f"saved contextdir: {docs.resolve()}\n"
    assert "no-such-claude" in done.stderr
    assert config.saved_contextdir() == docs.resolve()
