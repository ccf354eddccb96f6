"""`pa` end to end: the real entry points as subprocesses, driven offline by the scripted agent.

The scripted agent (agentproxy.scripted_agent) speaks Claude Code's stream-json and control
protocol; `--claude-bin "<python> -m agentproxy.scripted_agent --script FILE"` puts it in
place of the npm CLI, so every test here runs without a model or the network.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentproxy import __version__, config
from agentproxy.cli import app
from agentproxy.store import ORPHAN_REASON, SessionStore
from agentproxy.testing.fake_gemini import FakeGemini, Hang, Json

PA = Path(sys.executable).with_name("pa")
RUN_TIMEOUT_S = 60

ALL_FLAGS = (
    "--model",
    "--no-qa",
    "--ask-human",
    "--context-dir",
    "--set-contextdir",
    "--show-contextdir",
    "-d",
    "--working-dir",
    "-s",
    "--session",
    "--list-sessions",
    "--set-workdir",
    "--show-workdir",
    "--add-screenshot",
    "--claude-bin",
    "--check",
    "--max-attempts",
    "--output",
    "--demo",
    "--deny",
    "--allow-tool",
    "--max-rate-limit-wait",
    "-f",
    "--task-file",
    "--version",
)

WRITE_HELLO = [
    [
        {"say": "Writing hello.txt."},
        {"write": {"path": "hello.txt", "content": "hello\n"}},
        {"result": "Created hello.txt."},
    ],
    [
        {"say": "Writing more.txt."},
        {"write": {"path": "more.txt", "content": "more\n"}},
        {"result": "Created more.txt."},
    ],
]

SLEEPY = [[{"say": "Thinking for a long while."}, {"sleep": 30}, {"result": "Woke up."}]]


# -- helpers -------------------------------------------------------------------------------------


@pytest.fixture
def env(agentproxy_home: Path, tmp_path: Path) -> dict[str, str]:
    """The environment of a `pa` subprocess: this test's home, no inherited agent command."""
    environ = {k: v for k, v in os.environ.items() if k != "CLAUDE_BIN" and not k.startswith("CLAUDECODE")}
    environ["AGENTPROXY_HOME"] = str(agentproxy_home)
    environ["TMPDIR"] = str(tmp_path)  # `pa --demo` makes its throwaway project here
    environ["COLUMNS"] = "200"
    return environ


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path / "project"


def write_script(path: Path, turns: list[list[dict[str, Any]]]) -> Path:
    path.write_text(json.dumps({"turns": turns}))
    return path


def claude_bin(script: Path) -> str:
    return shlex.join([sys.executable, "-m", "agentproxy.scripted_agent", "--script", str(script)])


def pa(*args: str, env: dict[str, str], cwd: Path, timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PA), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def json_events(stdout: str) -> list[dict[str, Any]]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # every line is one JSON event
    assert events, "no events printed"
    for event in events:
        assert isinstance(event.get("kind"), str), event
    return events


def git_subjects(directory: Path) -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(directory), "log", "--format=%s"], capture_output=True, text=True, timeout=30, check=True
    )
    return out.stdout.splitlines()


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains text."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def start_sleepy_pa(tmp_path: Path, env: dict[str, str], workdir: Path) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """A `pa` whose agent sleeps 30 s; returns once the agent has spoken (so it is running)."""
    script = write_script(tmp_path / "sleepy-script.json", SLEEPY)
    out_path = tmp_path / "pa-out.jsonl"
    with out_path.open("wb") as out, (tmp_path / "pa-err.txt").open("wb") as err:
        proc = subprocess.Popen(
            [str(PA), "-d", str(workdir), "--claude-bin", claude_bin(script), "--output", "json", "sleep on it"],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=err,
            # A shell that started pytest in the background leaves SIGINT ignored, and Python then
            # installs no KeyboardInterrupt handler: give pa the default disposition, as a terminal would.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        wait_for(lambda: '"kind":"agent_said"' in out_path.read_text(), 20, "the scripted agent to start")
    except BaseException:
        kill_leftovers(proc, script)
        raise
    return proc, script, out_path


def kill_leftovers(proc: subprocess.Popen[bytes], script: Path) -> None:
    """Whatever a failed test leaves running: pa itself, and agents still naming the script."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    for pid in processes_mentioning(str(script)):
        os.kill(pid, signal.SIGKILL)


def session_status(listing: str, session_id: str) -> str:
    for line in listing.splitlines():
        fields = line.split()
        if fields and fields[0] == session_id:
            return fields[1]
    raise AssertionError(f"session {session_id} not in the listing:\n{listing}")


def assert_usage_error(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("pa: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert done.stdout == ""
    return lines[0]


# -- help, version, demo ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [[str(PA), "--help"], [sys.executable, "-m", "agentproxy", "--help"]], ids=["pa", "python -m"]
)
def test_help_lists_every_flag(command: list[str], env: dict[str, str], tmp_path: Path) -> None:
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: pa ")
    for flag in ALL_FLAGS:
        assert f" {flag}" in done.stdout, flag
    assert "CLAUDE_BIN" in done.stdout  # --claude-bin's environment variable is documented


def test_version(env: dict[str, str], tmp_path: Path) -> None:
    done = pa("--version", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"agentproxy {__version__}"
    assert CliRunner().invoke(app, ["--version"]).stdout.strip() == f"agentproxy {__version__}"


def test_demo_runs_offline_end_to_end(env: dict[str, str], tmp_path: Path) -> None:
    done = pa("--demo", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "SCRIPTED" in out
    assert "? Which greeting style should greet() use?" in out
    assert "↳ Friendly (Recommended)" in out and "answered by offline" in out
    assert "checks: ✗" in out and "checks: ✓" in out  # the check fails first, then passes
    assert "follow-up sent to the same agent session" in out
    assert "■ done" in out
    assert "$ pa --list-sessions" in out
    listing = out.split("$ pa --list-sessions", 1)[1]
    assert "done" in listing and "Create greet.py" in listing
    projects = list(tmp_path.glob("agentproxy-demo-*/project"))
    assert len(projects) == 1
    assert git_subjects(projects[0])[0].startswith("agentproxy: Create greet.py")


# -- a task run -------------------------------------------------------------------------------------


def test_task_run_json_checks_screenshot_listing_and_continue(
    env: dict[str, str], tmp_path: Path, workdir: Path
) -> None:
    script = write_script(tmp_path / "script.json", WRITE_HELLO)
    markers = [tmp_path / "check-1-ran", tmp_path / "check-2-ran"]
    shot = tmp_path / "shot.png"
    shot.write_bytes(b"\x89PNG\r\n\x1a\n")
    done = pa(
        "-d", str(workdir),
        "--claude-bin", claude_bin(script),
        "--output", "json",
        "--check", f"touch {shlex.quote(str(markers[0]))}",
        "--check", f"touch {shlex.quote(str(markers[1]))}",
        "--add-screenshot", str(shot),
        "write hello",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr

    events = json_events(done.stdout)
    assert events[0]["kind"] == "session_started"
    assert events[0]["screenshots"] == [str(shot.resolve())]
    assert events[-1]["kind"] == "session_finished" and events[-1]["status"] == "done"
    session_id = events[0]["session_id"]
    assert {e["session_id"] for e in events} == {session_id}
    checks = next(e for e in events if e["kind"] == "checks_ran")
    assert [r["command"] for r in checks["results"]] == [f"touch {shlex.quote(str(m))}" for m in markers]
    assert all(marker.exists() for marker in markers)

    assert (workdir / "hello.txt").read_text() == "hello\n"
    subjects = git_subjects(workdir)
    assert subjects[-1] == "agentproxy: baseline"
    assert subjects[0] == "agentproxy: write hello"

    with SessionStore(config.store_path()) as store:
        row = store.get(session_id)
        assert row.screenshots == (str(shot.resolve()),)
        assert row.working_dir == str(workdir.resolve())

    listing = pa("--list-sessions", env=env, cwd=tmp_path)
    assert listing.returncode == 0
    assert session_status(listing.stdout, session_id) == "done"
    assert "write hello" in listing.stdout

    # -s ID "more work": the same session, in the same directory, the agent resumed.
    more = pa(
        "-s", session_id, "--claude-bin", claude_bin(script), "--output", "json", "more work", env=env, cwd=tmp_path
    )
    assert more.returncode == 0, more.stdout + more.stderr
    more_events = json_events(more.stdout)
    assert more_events[0]["kind"] == "session_started" and more_events[0].get("continued") is True
    assert {e["session_id"] for e in more_events} == {session_id}
    assert more_events[-1]["kind"] == "session_finished" and more_events[-1]["status"] == "done"
    assert (workdir / "more.txt").read_text() == "more\n"  # the script's second turn: the agent session went on
    assert git_subjects(workdir)[0] == "agentproxy: more work"
    with SessionStore(config.store_path()) as store:
        assert store.tasks(session_id) == ["write hello", "more work"]
        assert [row.id for row in store.list_sessions()] == [session_id]

    # A prefix of the id works too, and -d naming another directory is refused.
    other = pa(
        "-s",
        session_id[:5],
        "-d",
        str(tmp_path / "elsewhere"),
        "--claude-bin",
        claude_bin(script),
        "x",
        env=env,
        cwd=tmp_path,
    )
    assert_usage_error(other, session_id, "elsewhere")


def test_failing_check_without_follow_ups_exits_1(env: dict[str, str], tmp_path: Path, workdir: Path) -> None:
    script = write_script(tmp_path / "script.json", WRITE_HELLO)
    # Passes at the base; the agent's hello.txt makes it fail.
    done = pa(
        "-d", str(workdir), "--claude-bin", claude_bin(script), "--output", "json",
        "--check", "test ! -e hello.txt", "--max-attempts", "0", "write hello",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    events = json_events(done.stdout)
    checks = next(e for e in events if e["kind"] == "checks_ran")
    assert [verdict["kind"] for verdict in checks["verdicts"]] == ["failed"]
    assert not any(e["kind"] == "follow_up_sent" for e in events)
    assert events[-1]["kind"] == "session_finished" and events[-1]["status"] == "failed"
    assert "test ! -e hello.txt" in events[-1]["reason"]
    assert "agentproxy: write hello" not in git_subjects(workdir)  # nothing committed
    listing = pa("--list-sessions", env=env, cwd=tmp_path)
    assert session_status(listing.stdout, events[0]["session_id"]) == "failed"


def test_check_failing_at_the_base_already_does_not_fail_the_run(
    env: dict[str, str], tmp_path: Path, workdir: Path
) -> None:
    script = write_script(tmp_path / "script.json", WRITE_HELLO)
    done = pa(
        "-d", str(workdir), "--claude-bin", claude_bin(script), "--output", "json",
        "--check", "exit 3", "--max-attempts", "0", "write hello",
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    events = json_events(done.stdout)
    kinds = [e["kind"] for e in events]
    assert kinds.index("baseline_ran") < kinds.index("agent_started")  # the base is run before the agent's first turn
    baseline = next(e for e in events if e["kind"] == "baseline_ran")
    assert [result.get("exit_code") for result in baseline["results"]] == [3]
    checks = next(e for e in events if e["kind"] == "checks_ran")
    assert [verdict["kind"] for verdict in checks["verdicts"]] == ["preexisting"]
    assert "follow_up_sent" not in kinds
    assert events[-1]["kind"] == "session_finished" and events[-1]["status"] == "done"
    assert git_subjects(workdir)[0] == "agentproxy: write hello"


def test_text_output_is_readable_lines(env: dict[str, str], tmp_path: Path, workdir: Path) -> None:
    script = write_script(tmp_path / "script.json", WRITE_HELLO)
    done = pa(
        "-d", str(workdir), "--claude-bin", claude_bin(script), "--check", "true", "write hello", env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("▶ session ")
    assert "agent: Writing hello.txt." in done.stdout
    assert "committed " in done.stdout and "■ done" in done.stdout
    assert done.stderr == ""


def test_set_workdir_then_show_and_run_there(env: dict[str, str], tmp_path: Path, workdir: Path) -> None:
    fresh = pa("--show-workdir", env=env, cwd=tmp_path)
    assert fresh.returncode == 0
    assert "no saved workdir" in fresh.stdout

    saved = pa("--set-workdir", str(workdir), env=env, cwd=tmp_path)
    assert saved.returncode == 0, saved.stderr
    assert str(workdir.resolve()) in saved.stdout
    assert workdir.is_dir()

    shown = pa("--show-workdir", env=env, cwd=tmp_path)
    assert shown.returncode == 0
    assert shown.stdout.strip() == str(workdir.resolve())

    script = write_script(tmp_path / "script.json", WRITE_HELLO)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    done = pa(
        "--claude-bin", claude_bin(script), "--output", "json", "--check", "true", "write hello", env=env, cwd=elsewhere
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json_events(done.stdout)[0]["working_dir"] == str(workdir.resolve())
    assert (workdir / "hello.txt").exists()
    assert list(elsewhere.iterdir()) == []  # nothing happened in the current directory


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize("below", ["", "sub"], ids=["file", "under-file"])
def test_workdir_that_is_or_is_under_a_file(below: str, env: dict[str, str], tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    script = write_script(tmp_path / "script.json", WRITE_HELLO)
    target = a_file / below if below else a_file
    done = pa("-d", str(target), "--claude-bin", claude_bin(script), "task", env=env, cwd=tmp_path)
    assert_usage_error(done, str(target))
    assert a_file.read_text() == "not a directory"


def test_workdir_is_home(env: dict[str, str], tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    script = write_script(tmp_path / "script.json", WRITE_HELLO)
    done = pa("-d", str(home), "--claude-bin", claude_bin(script), "task", env={**env, "HOME": str(home)}, cwd=tmp_path)
    assert_usage_error(done, "refusing to work in", str(home))
    assert not (home / ".git").exists()


def test_missing_screenshot(env: dict[str, str], tmp_path: Path, workdir: Path) -> None:
    script = write_script(tmp_path / "script.json", WRITE_HELLO)
    missing = tmp_path / "missing.png"
    done = pa(
        "-d",
        str(workdir),
        "--claude-bin",
        claude_bin(script),
        "--add-screenshot",
        str(missing),
        "task",
        env=env,
        cwd=tmp_path,
    )
    assert_usage_error(done, "screenshot", str(missing))
    assert not workdir.exists()  # refused before anything was created


def test_screenshot_that_is_a_directory(env: dict[str, str], tmp_path: Path, workdir: Path) -> None:
    script = write_script(tmp_path / "script.json", WRITE_HELLO)
    done = pa(
        "-d",
        str(workdir),
        "--claude-bin",
        claude_bin(script),
        "--add-screenshot",
        str(tmp_path),
        "task",
        env=env,
        cwd=tmp_path,
    )
    assert_usage_error(done, "screenshot", str(tmp_path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a file whatever its mode")
def test_unreadable_screenshot(env: dict[str, str], tmp_path: Path, workdir: Path) -> None:
    script = write_script(tmp_path / "script.json", WRITE_HELLO)
    shot = tmp_path / "secret.png"
    shot.write_bytes(b"png")
    shot.chmod(0)
    try:
        done = pa(
            "-d",
            str(workdir),
            "--claude-bin",
            claude_bin(script),
            "--add-screenshot",
            str(shot),
            "task",
            env=env,
            cwd=tmp_path,
        )
    finally:
        shot.chmod(0o600)
    assert_usage_error(done, "screenshot", str(shot))


def test_unknown_session(env: dict[str, str], tmp_path: Path) -> None:
    script = write_script(tmp_path / "script.json", WRITE_HELLO)
    done = pa("-s", "deadbeef", "--claude-bin", claude_bin(script), "task", env=env, cwd=tmp_path)
    assert_usage_error(done, "unknown session", "deadbeef")


def test_no_task(env: dict[str, str], tmp_path: Path) -> None:
    done = pa(env=env, cwd=tmp_path)
    assert_usage_error(done, "no task")


@pytest.mark.parametrize("via", ["flag", "env"])
def test_missing_claude_binary(via: str, env: dict[str, str], tmp_path: Path, workdir: Path) -> None:
    missing = str(tmp_path / "no-such-claude")
    if via == "flag":
        done = pa("-d", str(workdir), "--claude-bin", missing, "task", env=env, cwd=tmp_path)
    else:
        done = pa("-d", str(workdir), "task", env={**env, "CLAUDE_BIN": missing}, cwd=tmp_path)
    line = assert_usage_error(done, "no-such-claude")
    assert "--claude-bin" in line and "CLAUDE_BIN" in line
    assert not workdir.exists()
    with SessionStore(config.store_path()) as store:
        assert store.list_sessions() == []  # no session was opened


def test_invalid_deny_regex(env: dict[str, str], tmp_path: Path, workdir: Path) -> None:
    script = write_script(tmp_path / "script.json", WRITE_HELLO)
    done = pa(
        "-d", str(workdir), "--claude-bin", claude_bin(script), "--deny", "(unclosed", "task", env=env, cwd=tmp_path
    )
    assert_usage_error(done, "--deny", "(unclosed")
    assert not workdir.exists()


def test_output_xml_is_a_usage_error(env: dict[str, str], tmp_path: Path) -> None:
    done = pa("--output", "xml", "task", env=env, cwd=tmp_path)
    assert done.returncode == 2
    assert "xml" in done.stderr and "Traceback" not in done.stderr
    result = CliRunner().invoke(app, ["--output", "xml", "task"])
    assert result.exit_code == 2
    assert "xml" in result.output


# -- interruption ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_exits_130_and_kills_the_agent(sig: int, env: dict[str, str], tmp_path: Path, workdir: Path) -> None:
    proc, script, out_path = start_sleepy_pa(tmp_path, env, workdir)
    try:
        assert processes_mentioning(str(script)), "the scripted agent is not running"
        started = time.monotonic()
        proc.send_signal(sig)
        code = proc.wait(timeout=20)
        assert code == 130, (tmp_path / "pa-err.txt").read_text()
        assert time.monotonic() - started < 20
        # pa waits for its agents to die before it exits; allow the kernel a moment to reap.
        wait_for(lambda: not processes_mentioning(str(script)), 5, "the scripted agent to be gone")
    finally:
        kill_leftovers(proc, script)
    events = json_events(out_path.read_text())
    session_id = events[0]["session_id"]
    assert events[-1]["kind"] == "session_finished" and events[-1]["status"] == "interrupted"
    assert "Traceback" not in (tmp_path / "pa-err.txt").read_text()
    listing = pa("--list-sessions", env=env, cwd=tmp_path)
    assert session_status(listing.stdout, session_id) == "interrupted"


def test_a_running_session_cannot_be_continued_twice(env: dict[str, str], tmp_path: Path, workdir: Path) -> None:
    proc, script, out_path = start_sleepy_pa(tmp_path, env, workdir)
    try:
        session_id = json_events(out_path.read_text())[0]["session_id"]
        again = pa("-s", session_id, "more work", env=env, cwd=tmp_path)
    finally:
        kill_leftovers(proc, script)
    assert_usage_error(again, session_id, "still running")


def test_a_second_pa_in_the_same_directory_is_refused(env: dict[str, str], tmp_path: Path, workdir: Path) -> None:
    proc, script, _ = start_sleepy_pa(tmp_path, env, workdir)
    try:
        second = pa("-d", str(workdir), "--claude-bin", claude_bin(script), "other work", env=env, cwd=tmp_path)
    finally:
        kill_leftovers(proc, script)
    assert_usage_error(second, "another pa is working in", str(workdir))


def test_sigkilled_pa_leaves_its_session_interrupted_and_resumable(
    env: dict[str, str], tmp_path: Path, workdir: Path
) -> None:
    proc, script, out_path = start_sleepy_pa(tmp_path, env, workdir)
    try:
        with SessionStore(config.store_path()) as store:
            session_id = json_events(out_path.read_text())[0]["session_id"]
            assert store.get(session_id).status == "running"
        proc.kill()
        assert proc.wait(timeout=10) == -signal.SIGKILL  # reaped: its pid no longer names a live process
        # The agent dies with pa (the kernel's parent-death signal), not 30 s later.
        wait_for(lambda: not processes_mentioning(str(script)), 5, "the agent to die with pa")
    finally:
        kill_leftovers(proc, script)
    listing = pa("--list-sessions", env=env, cwd=tmp_path)
    assert listing.returncode == 0
    assert session_status(listing.stdout, session_id) == "interrupted"
    with SessionStore(config.store_path()) as store:
        assert store.get(session_id).reason == ORPHAN_REASON
    # Resuming reruns the unfinished task in the same agent session, which now finishes it.
    write_script(script, [SLEEPY[0], [{"write": {"path": "rested.txt", "content": "ok\n"}}, {"result": "Done."}]])
    resumed = pa("-s", session_id[:5], "--claude-bin", claude_bin(script), "--output", "json", env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    events = json_events(resumed.stdout)
    assert events[0]["kind"] == "session_started" and events[0]["continued"] and events[0]["task"] == "sleep on it"
    assert (workdir / "rested.txt").exists()
    assert session_status(pa("--list-sessions", env=env, cwd=tmp_path).stdout, session_id) == "done"


ASKING = [
    [
        {
            "ask": {
                "question": "Which greeting style?",
                "header": "Style",
                "options": [{"label": "Friendly (Recommended)"}, {"label": "Formal"}],
            }
        },
        {"write": {"path": "style.txt", "content": "{answer}"}},
        {"result": "Wrote style.txt."},
    ]
]


@pytest.mark.parametrize(
    ("typed", "expected", "by"), [(b"2\n", "Formal", "human"), (None, "Friendly (Recommended)", "offline")]
)
def test_ask_human_takes_the_answer_from_the_terminal_or_the_brain_after_the_timeout(
    typed: bytes | None, expected: str, by: str, env: dict[str, str], tmp_path: Path, workdir: Path
) -> None:
    script = write_script(tmp_path / "ask.json", ASKING)
    argv = [
        str(PA),
        "-d",
        str(workdir),
        "--claude-bin",
        claude_bin(script),
        "--ask-human",
        "--ask-human-timeout",
        "1",
        "--output",
        "json",
        "Write the style",
    ]
    with subprocess.Popen(
        argv, env=env, cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        if typed is not None:
            proc.stdin.write(typed)  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
        # stdin stays open: with nothing typed, the prompt must give up by its timeout, not on end of input.
        proc.wait(timeout=RUN_TIMEOUT_S)
        out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    assert proc.returncode == 0, err
    assert (workdir / "style.txt").read_text() == expected
    answered = [e for e in json_events(out.decode()) if e["kind"] == "question_answered"]
    assert answered[0]["answers"] == {"Which greeting style?": expected} and answered[0]["by"] == by
    assert "? Which greeting style?" in err.decode() and "2. Formal" in err.decode()


def test_a_dotenv_key_turns_on_the_gemini_brain_and_model_picks_its_model(
    env: dict[str, str], tmp_path: Path, workdir: Path
) -> None:
    plan = Json({"subtasks": [{"id": "1", "title": "Write hello", "instructions": "Create hello.txt"}]})
    passed = Json({"passed": True, "findings": ["hello.txt exists"]})
    script = write_script(tmp_path / "script.json", WRITE_HELLO[:1])
    with FakeGemini(plan, passed) as gemini:
        (tmp_path / ".env").write_text(f"GEMINI_API_KEY=dotenv-key\nGOOGLE_GEMINI_BASE_URL={gemini.url}\n")
        done = pa(
            "-d",
            str(workdir),
            "--claude-bin",
            claude_bin(script),
            "--model",
            "gemini-2.5-pro",
            "--output",
            "json",
            "write hello",
            env=env,
            cwd=tmp_path,
        )
    assert done.returncode == 0, done.stderr
    events = json_events(done.stdout)
    made = next(e for e in events if e["kind"] == "plan_made")
    assert made["brain"] == "gemini" and made["plan"]["subtasks"][0]["title"] == "Write hello"
    assert [(r.model, r.api_key) for r in gemini.requests] == [("gemini-2.5-pro", "dotenv-key")] * 2
    assert [e["purpose"] for e in events if e["kind"] == "brain_called"] == ["plan", "review"]


def test_ctrl_c_during_a_hung_brain_call_exits_130_promptly(env: dict[str, str], tmp_path: Path, workdir: Path) -> None:
    script = write_script(tmp_path / "script.json", WRITE_HELLO[:1])
    with FakeGemini(default=Hang(120)) as gemini:
        env = {**env, "GEMINI_API_KEY": "k", "GOOGLE_GEMINI_BASE_URL": gemini.url}
        proc = subprocess.Popen(
            [str(PA), "-d", str(workdir), "--claude-bin", claude_bin(script), "write hello"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            gemini.wait_for_requests(1, timeout=20)  # the Planner is now inside its Gemini call
            started = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            kill_leftovers(proc, script)
    assert proc.returncode == 130, err
    assert time.monotonic() - started < 10
    assert "interrupted" in out.decode() and "Traceback" not in err.decode()


def test_the_cli_module_imports_nothing_heavy(env: dict[str, str], tmp_path: Path) -> None:
    # `pa --help` pays only for what the CLI module imports: the SDKs and the actor system wait for a run.
    heavy = ("google.genai", "zmq", "opentelemetry", "pykka", "sqlite3")
    probe = f"import sys, agentproxy.cli; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
