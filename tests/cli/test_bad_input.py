"""Bad input ends in one `pa: error:` line and an exit code, never a traceback, and changes nothing.

Every case runs the real `pa` entry point as a subprocess; the agent, when one is needed, is the
scripted one (agentproxy.scripted_agent), so nothing here needs a model or the network.
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

from agentproxy import config
from agentproxy.cli import app
from agentproxy.store import SessionStore

PA = Path(sys.executable).with_name("pa")
RUN_TIMEOUT_S = 60
GIT = ("git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main",
       "-c", "advice.detachedHead=false")  # fmt: skip
WRITE_HELLO = [[{"write": {"path": "hello.txt", "content": "hello\n"}}, {"result": "Created hello.txt."}]]


@pytest.fixture
def env(agentproxy_home: Path, tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k != "CLAUDE_BIN" and not k.startswith("CLAUDECODE")}
    environ["AGENTPROXY_HOME"] = str(agentproxy_home)
    environ["COLUMNS"] = "200"
    # Never let a test directory be taken for part of a repository above tmp_path.
    environ["GIT_CEILING_DIRECTORIES"] = str(tmp_path)
    return environ


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path / "project"


@pytest.fixture
def agent(tmp_path: Path) -> str:
    """--claude-bin for the scripted agent writing hello.txt."""
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"turns": WRITE_HELLO}))
    return shlex.join([sys.executable, "-m", "agentproxy.scripted_agent", "--script", str(script)])


def pa(*args: str | bytes, env: dict[str, str], cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(PA), *args], env=env, cwd=cwd, input=stdin, capture_output=True, timeout=RUN_TIMEOUT_S, check=False
    )
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


def error_line(done: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The only line on stderr, a `pa: error:` one, with the exit code expected and nothing on stdout."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("pa: error: "), lines[0]
    assert done.stdout == ""
    return lines[0]


def git(cwd: Path, *args: str, check: bool = True) -> str:
    done = subprocess.run([*GIT, *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0 or not check, done.stdout + done.stderr
    return done.stdout


def no_sessions() -> bool:
    with SessionStore(config.store_path()) as store:
        return store.list_sessions() == []


# -- the command line itself ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--max-attempts", "-1"], "'--max-attempts': -1 is not in the range"),
        (["--agent-timeout", "abc"], "'--agent-timeout': 'abc' is not a number of seconds"),
        (["--agent-timeout", "nan"], "'--agent-timeout': 'nan' is not a finite number of seconds"),
        (["--agent-silence-timeout", "inf"], "'--agent-silence-timeout': 'inf' is not a finite number"),
        (["--check-timeout", "-5"], "'--check-timeout': '-5' is not a finite number of seconds >= 1"),
        (["--ask-human-timeout", "NaN"], "'--ask-human-timeout': 'NaN' is not a finite number"),
        (["--max-rate-limit-wait", "-1"], "'--max-rate-limit-wait': '-1' is not a finite number of seconds >= 0"),
        (["--max-rate-limit-wait", "1e999"], "'--max-rate-limit-wait': '1e999' is not a finite number"),
        (["--parallel", "0"], "'--parallel': 0 is not in the range"),
        (["--check-parallel", "-1"], "'--check-parallel': -1 is not in the range"),
        (["--max-budget-usd", "0"], "'--max-budget-usd': 0.0 is not in the range"),
        (["--max-budget-usd", "lots"], "'--max-budget-usd': 'lots' is not a valid float"),
        (["--bogus"], "no such option: --bogus"),
        (["--output", "xml"], "'--output': 'xml' is not one of"),
        (["--check", ""], "'--check': must not be empty"),
        (["--check", "  "], "'--check': must not be empty"),
        (["--deny", ""], "'--deny': must not be empty"),
        (["--allow-tool", ""], "'--allow-tool': must not be empty"),
        (["--agent-model", ""], "'--agent-model': must not be empty"),
        (["-s", ""], "'--session': must not be empty"),
        (["-d", ""], "'--working-dir': must not be empty"),
        (["-f", ""], "'--task-file': must not be empty"),
        (["--add-screenshot", ""], "'--add-screenshot': must not be empty"),
        (["--check", b"make \xff"], "'--check': is not valid UTF-8"),
        (["-d", b"caf\xe9"], "'--working-dir': is not valid UTF-8"),
        (["task", "extra"], "unexpected extra argument"),
        (["task", "--check"], "'--check' requires an argument"),
    ],
)
def test_a_bad_option_is_one_line(
    args: list[str | bytes], needle: str, env: dict[str, str], tmp_path: Path, workdir: Path, agent: str
) -> None:
    done = pa(
        "-d", str(workdir), "--claude-bin", agent, *args, *([] if "task" in args else ["task"]), env=env, cwd=tmp_path
    )
    line = error_line(done)
    assert needle in line, line
    assert line.endswith("(see pa --help)")
    assert not workdir.exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--discard"], "--discard goes with a session and no task: pa -s ID --discard"),
        (["--discard", "-s", "abcd", "more work"], "--discard goes with a session and no task"),
        (["--discard", "-s", "ffffffff"], "unknown session"),
    ],
)
def test_discard_without_a_known_session_is_one_line(
    args: list[str], needle: str, env: dict[str, str], tmp_path: Path
) -> None:
    line = error_line(pa(*args, env=env, cwd=tmp_path))
    assert needle in line, line


def test_cli_runner_sees_the_same_one_line_error() -> None:
    result = CliRunner().invoke(app, ["--agent-timeout", "nan", "task"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "pa: error: invalid value for '--agent-timeout': 'nan' is not a finite number of seconds >= 1 (see pa --help)"
    ]


def test_help_is_still_help(env: dict[str, str], tmp_path: Path) -> None:
    started = time.monotonic()
    done = pa("--help", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: pa [OPTIONS] [TASK]")
    for flag in ("-f, --task-file FILE", "--allow-tool PATTERN", "--max-rate-limit-wait SECONDS"):
        assert flag in done.stdout, flag
    assert time.monotonic() - started < 10


def test_a_claude_command_with_an_unclosed_quote(env: dict[str, str], tmp_path: Path, workdir: Path) -> None:
    line = error_line(pa("-d", str(workdir), "--claude-bin", "claude 'x", "task", env=env, cwd=tmp_path))
    assert "cannot be parsed" in line and "--claude-bin" in line and "CLAUDE_BIN" in line
    assert not workdir.exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--agent", "cursor"], "unknown agent 'cursor': choose from claude, codex, gemini"),
        (["--agents", "claude,claude"], "--agents claude,claude: an agent is named twice"),
        (["--agents", " , "], "--agents needs at least one agent name"),
        (["--agent", "codex", "--agents", "claude,codex"], "give --agent or --agents, not both"),
        (["--agent", "codex", "--codex-bin", "/nonexistent/codex"], "Codex CLI not found: '/nonexistent/codex'"),
        (["--agent", "gemini", "--gemini-bin", "gemini 'x"], "the Gemini CLI command (--gemini-bin / GEMINI_CLI_BIN)"),
        (["--agent-prices", "/nonexistent.toml"], "--agent-prices /nonexistent.toml: cannot read it"),
        (["--best-of", "0"], "'--best-of': 0 is not in the range"),
        (
            ["--best-of", "2", "--listen-insecure", "tcp://127.0.0.1:5999", "--local-slots", "0"],
            "--best-of runs its attempts on this machine: --local-slots 0 leaves it no slot",
        ),
    ],
)
def test_a_bad_agent_choice_is_one_line(
    args: list[str], needle: str, env: dict[str, str], tmp_path: Path, workdir: Path, agent: str
) -> None:
    line = error_line(pa("-d", str(workdir), "--claude-bin", agent, *args, "task", env=env, cwd=tmp_path))
    assert needle in line, line
    assert not workdir.exists()


def test_a_price_table_that_is_not_prices_is_one_line(
    env: dict[str, str], tmp_path: Path, workdir: Path, agent: str
) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('[codex]\n"gpt-5" = {input = "cheap"}\n')
    line = error_line(
        pa("-d", str(workdir), "--claude-bin", agent, "--agent-prices", str(prices), "t", env=env, cwd=tmp_path)
    )
    assert f"--agent-prices {prices}: Expected `float`, got `str`" in line, line


# -- the task --------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["", "   ", " \n\t"], ids=["empty", "spaces", "whitespace"])
def test_a_blank_task(task: str, env: dict[str, str], tmp_path: Path, workdir: Path, agent: str) -> None:
    line = error_line(pa("-d", str(workdir), "--claude-bin", agent, task, env=env, cwd=tmp_path))
    assert line == "pa: error: the task is empty"
    assert not workdir.exists()


def test_a_task_that_is_not_utf8(env: dict[str, str], tmp_path: Path, workdir: Path, agent: str) -> None:
    done = pa("-d", str(workdir), "--claude-bin", agent, b"fix \xff bug", env=env, cwd=tmp_path)
    assert error_line(done) == "pa: error: the task is not valid UTF-8 (byte 4)"
    assert not workdir.exists()
    assert no_sessions()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "cannot read the task file {file}: No such file or directory"),
        (b"", "the task file {file} is empty"),
        (b"\n  \n", "the task file {file} is empty"),
        (b"fix \xc3\x28 bug", "the task file {file} is not valid UTF-8 (byte 4)"),
        (b"fix\0bug", "the task file {file} contains a NUL byte"),
    ],
    ids=["missing", "empty", "blank", "not-utf8", "nul"],
)
def test_a_bad_task_file(
    content: bytes | None, needle: str, env: dict[str, str], tmp_path: Path, workdir: Path, agent: str
) -> None:
    task_file = tmp_path / "TASK.md"
    if content is not None:
        task_file.write_bytes(content)
    line = error_line(pa("-d", str(workdir), "--claude-bin", agent, "-f", str(task_file), env=env, cwd=tmp_path))
    assert line == f"pa: error: {needle.format(file=task_file)}"
    assert not workdir.exists()


def test_a_task_file_that_is_a_directory(env: dict[str, str], tmp_path: Path, workdir: Path, agent: str) -> None:
    line = error_line(pa("-d", str(workdir), "--claude-bin", agent, "-f", str(tmp_path), env=env, cwd=tmp_path))
    assert line == f"pa: error: cannot read the task file {tmp_path}: Is a directory"


def test_a_task_and_a_task_file(env: dict[str, str], tmp_path: Path, workdir: Path, agent: str) -> None:
    task_file = tmp_path / "TASK.md"
    task_file.write_text("write hello\n")
    line = error_line(
        pa("-d", str(workdir), "--claude-bin", agent, "-f", str(task_file), "also this", env=env, cwd=tmp_path)
    )
    assert line == "pa: error: give the task as TASK or with -f FILE, not both"
    assert not workdir.exists()


@pytest.mark.parametrize("stdin", [b"", b"\n\n", b"\xff"], ids=["empty", "blank", "not-utf8"])
def test_a_bad_task_on_stdin(stdin: bytes, env: dict[str, str], tmp_path: Path, workdir: Path, agent: str) -> None:
    line = error_line(pa("-d", str(workdir), "--claude-bin", agent, "-", env=env, cwd=tmp_path, stdin=stdin))
    assert line.startswith("pa: error: the task on stdin is ")
    assert not workdir.exists()


@pytest.mark.parametrize("via", ["file", "stdin"])
def test_a_long_task_from_a_file_or_stdin_runs(
    via: str, env: dict[str, str], tmp_path: Path, workdir: Path, agent: str
) -> None:
    task = "Write hello.txt.\n\n" + "It should say hello; more detail follows.\n" * 200
    task_file = tmp_path / "TASK.md"
    task_file.write_bytes(b"\xef\xbb\xbf" + task.encode())  # an editor's byte-order mark is dropped
    source = ["-f", str(task_file)] if via == "file" else ["-"]
    done = pa(
        "-d", str(workdir), "--claude-bin", agent, "--output", "json", "--check", "true", *source,
        env=env, cwd=tmp_path, stdin=task.encode() if via == "stdin" else b"",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    started = json.loads(done.stdout.splitlines()[0])
    assert started["kind"] == "session_started" and started["task"] == task.strip()
    assert (workdir / "hello.txt").read_text() == "hello\n"


# -- where pa keeps its files ----------------------------------------------------------------------


@pytest.mark.parametrize("below", ["", "sub"], ids=["file", "under-file"])
def test_agentproxy_home_that_is_or_is_under_a_file(
    below: str, env: dict[str, str], tmp_path: Path, workdir: Path, agent: str
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    home = a_file / below if below else a_file
    done = pa(
        "-d", str(workdir), "--claude-bin", agent, "task", env={**env, "AGENTPROXY_HOME": str(home)}, cwd=tmp_path
    )
    line = error_line(done)
    assert line == f"pa: error: AGENTPROXY_HOME={home} cannot be used: {a_file} is a file, not a directory"
    assert not workdir.exists()
    assert a_file.read_text() == "not a directory"


@pytest.mark.parametrize("already", [False, True], ids=["new-directory", "existing-directory"])
def test_a_corrupt_session_store_is_reported_before_git_init(
    already: bool, env: dict[str, str], tmp_path: Path, workdir: Path, agent: str
) -> None:
    store = config.store_path()
    store.parent.mkdir(parents=True)
    store.write_bytes(b"this is not a database" * 100)
    if already:
        workdir.mkdir()
    line = error_line(pa("-d", str(workdir), "--claude-bin", agent, "task", env=env, cwd=tmp_path), code=1)
    assert line.startswith(f"pa: error: session store {store} is unreadable: ")
    assert "move it aside" in line
    if already:
        assert list(workdir.iterdir()) == []  # no .git
    else:
        assert not workdir.exists()
    listing = error_line(pa("--list-sessions", env=env, cwd=tmp_path), code=1)
    assert "is unreadable" in listing


# -- the working directory -------------------------------------------------------------------------


@pytest.mark.parametrize("system", ["/usr", "/etc", "/bin", "/var", "/tmp", "/home", "/opt", "/dev", "/proc"])
def test_a_system_directory_is_refused(system: str, env: dict[str, str], tmp_path: Path) -> None:
    # --set-workdir only prepares and saves the directory: this test cannot start a run in /usr.
    line = error_line(pa("--set-workdir", system, env=env, cwd=tmp_path))
    assert line == f"pa: error: refusing to work in {system}: a system directory; pick a project directory (-d DIR)"
    assert config.saved_workdir() is None


def test_a_link_to_a_system_directory_is_refused_and_a_subdirectory_allowed(
    env: dict[str, str], tmp_path: Path
) -> None:
    link = tmp_path / "link"
    link.symlink_to("/usr")
    assert "a system directory" in error_line(pa("--set-workdir", str(link), env=env, cwd=tmp_path))
    below = tmp_path / "under-tmp"
    done = pa("--set-workdir", str(below), env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert config.saved_workdir() == below.resolve()


def repo_with_a_conflict(path: Path) -> Path:
    """A repository on main whose branch `other` changed f the other way: every way of combining them stops."""
    path.mkdir()
    git(path, "init", "-q")
    (path / "f").write_text("base\n")
    git(path, "add", "f")
    git(path, "commit", "-qm", "base")
    git(path, "switch", "-qc", "other")
    (path / "f").write_text("other\n")
    git(path, "commit", "-qam", "other")
    git(path, "switch", "-q", "main")
    (path / "f").write_text("main\n")
    git(path, "commit", "-qam", "main")
    return path


@pytest.mark.parametrize(
    ("start", "operation", "hint"),
    [
        (["merge", "other"], "merge", "git merge --abort"),
        (["rebase", "other"], "rebase", "git rebase --continue"),
        (["cherry-pick", "other"], "cherry-pick", "git cherry-pick --continue"),
        (["revert", "--no-edit", "HEAD~1"], "revert", "git revert --continue"),
        (["bisect", "start"], "bisect", "git bisect reset"),
    ],
)
def test_a_repository_in_the_middle_of_an_operation_is_refused(
    start: list[str], operation: str, hint: str, env: dict[str, str], tmp_path: Path, workdir: Path, agent: str
) -> None:
    repo = repo_with_a_conflict(workdir)
    git(repo, *start, check=False)  # stops on the conflict (bisect just starts)
    before = (git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain"))
    for directory in (repo, repo / "sub"):  # the repository's state counts wherever in it pa works
        line = error_line(pa("-d", str(directory), "--claude-bin", agent, "task", env=env, cwd=tmp_path))
        assert line.startswith(f"pa: error: the repository {repo} is in the middle of a {operation}"), line
        assert hint in line
    assert (git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain")) == before
    assert not (repo / "sub").exists()
    assert no_sessions()


def test_a_detached_head_is_refused(env: dict[str, str], tmp_path: Path, workdir: Path, agent: str) -> None:
    repo = repo_with_a_conflict(workdir)
    git(repo, "switch", "--detach", "HEAD~1")
    line = error_line(pa("-d", str(repo), "--claude-bin", agent, "task", env=env, cwd=tmp_path))
    assert line == f"pa: error: HEAD is detached in {repo}; pa commits onto a branch: create one (git switch -c NAME)"
    assert git(repo, "status", "--porcelain") == ""


def test_gits_own_directory_is_refused(env: dict[str, str], tmp_path: Path, workdir: Path, agent: str) -> None:
    repo = repo_with_a_conflict(workdir)
    line = error_line(pa("-d", str(repo / ".git"), "--claude-bin", agent, "task", env=env, cwd=tmp_path))
    assert "inside git's own directory" in line
    assert not (repo / ".git" / ".git").exists()


def test_one_pa_per_repository_not_per_directory(env: dict[str, str], tmp_path: Path, workdir: Path) -> None:
    repo = repo_with_a_conflict(workdir)
    (repo / "sub").mkdir()
    script = tmp_path / "sleepy.json"
    script.write_text(json.dumps({"turns": [[{"say": "Thinking."}, {"sleep": 30}, {"result": "Woke up."}]]}))
    sleepy = shlex.join([sys.executable, "-m", "agentproxy.scripted_agent", "--script", str(script)])
    out_path = tmp_path / "sleepy-out.jsonl"
    with out_path.open("wb") as out:
        proc = subprocess.Popen(
            [str(PA), "-d", str(repo / "sub"), "--claude-bin", sleepy, "--output", "json", "sleep on it"],
            env=env, cwd=tmp_path, stdout=out, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    try:
        wait_for(lambda: '"kind":"agent_said"' in out_path.read_text(), 20, "the scripted agent to start")
        head = git(repo, "rev-parse", "HEAD")
        for directory in (repo, repo / "other-sub"):
            line = error_line(pa("-d", str(directory), "--claude-bin", sleepy, "more", env=env, cwd=tmp_path))
            assert line == f"pa: error: another pa is working in {repo}; wait for it to finish"
        assert git(repo, "rev-parse", "HEAD") == head
    finally:
        proc.send_signal(signal.SIGTERM)  # pa's stop: it kills its agent and records the interruption
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# -- the new run options reach the run --------------------------------------------------------------


def test_max_rate_limit_wait_bounds_the_pause(env: dict[str, str], tmp_path: Path, workdir: Path) -> None:
    script = tmp_path / "limited.json"
    script.write_text(json.dumps({"turns": [[{"error": {"status": 429, "text": "rate limit exceeded"}}]]}))
    limited = shlex.join([sys.executable, "-m", "agentproxy.scripted_agent", "--script", str(script)])
    done = pa(
        "-d", str(workdir), "--claude-bin", limited, "--output", "json", "--max-attempts", "0",
        "--max-rate-limit-wait", "0", "task", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    finished = json.loads(done.stdout.splitlines()[-1])
    assert finished["kind"] == "session_finished" and finished["status"] == "failed"
    assert "(0s, --max-rate-limit-wait)" in finished["reason"]
