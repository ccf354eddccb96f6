"""`pa-worker` and `pa --listen` as users call them: keys made, bad input refused with one line."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from agentproxy.bridge import keys

WORKER = [sys.executable, "-m", "agentproxy.worker"]


def run(argv: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AGENTPROXY_HOME": str(home)}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def test_keygen_writes_a_pair_prints_the_public_key_and_will_not_overwrite_it(tmp_path: Path) -> None:
    made = run([*WORKER, "keygen", "--dir", str(tmp_path / "keys")], tmp_path / "home")
    assert made.returncode == 0, made.stderr
    public, secret = tmp_path / "keys" / "worker.key", tmp_path / "keys" / "worker.key_secret"
    assert made.stdout.strip() == keys.public_key_text(public)
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert keys.read_secret_certificate(secret)[0] == keys.read_public_certificate(public)
    again = run([*WORKER, "keygen", "--dir", str(tmp_path / "keys")], tmp_path / "home")
    assert again.returncode == 2 and again.stderr.startswith("pa-worker: error: ")
    assert len(again.stderr.strip().splitlines()) == 1
    secret_text = secret.read_text()
    assert not any(line.split('"')[1] in again.stderr for line in secret_text.splitlines() if "secret-key" in line)


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        ([], "no supervisor given"),
        (["--connect", "tcp://10.0.0.5:5555", "--insecure"], "--insecure connects only to a loopback address"),
        (["--connect", "tcp://127.0.0.1:5555"], "--server-key FILE and --key FILE are needed"),
        (["--connect", "nonsense", "--insecure"], "bad endpoint"),
    ],
)
def test_a_worker_given_bad_input_says_why_in_one_line_and_exits_2(tmp_path: Path, flags: list[str], says: str) -> None:
    done = run([*WORKER, *flags], tmp_path / "home")
    assert done.returncode == 2
    assert done.stderr.startswith("pa-worker: error: ") and says in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_worker_given_a_secret_key_where_the_public_one_goes_says_so(tmp_path: Path) -> None:
    public, secret = keys.keygen(tmp_path / "keys")
    flags = ["--connect", "tcp://127.0.0.1:5555", "--server-key", str(secret), "--key", str(public)]
    done = run([*WORKER, *flags], tmp_path / "home")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert str(secret) in done.stderr or str(public) in done.stderr


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--listen-insecure", "tcp://0.0.0.0:5555"], "only a loopback address"),
        (["--listen", "tcp://127.0.0.1:5555", "--listen-insecure", "tcp://127.0.0.1:5556"], "exclude each other"),
        (["--local-slots", "0"], "go with --listen"),
        (["--listen", "tcp://127.0.0.1"], "bad endpoint"),
    ],
)
def test_pa_given_bad_listen_options_says_why_in_one_line_and_exits_2(
    tmp_path: Path, flags: list[str], says: str
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    done = run(
        [sys.executable, "-m", "agentproxy", "-d", str(project), "--claude-bin", sys.executable, *flags, "x"],
        tmp_path / "home",
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("pa: error: ") and says in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
