"""A project's checks in a tree: the base run (kept in the store by tree id), the judged run after a change,
the setup and its one repair. Real git, real pytest, real shell commands; only the agent is absent."""

from __future__ import annotations

import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgspec
import pytest
from agentproxy.actors.verifier import with_check_kinds

from agentproxy import procs
from agentproxy.check_runs import run_check
from agentproxy.child_env import child_environment
from agentproxy.messages import AnyEvent, BaselineRan, CheckVerdict, SetupStarted, SetupStepRan, Subtask, Verdict
from agentproxy.options import RunOptions
from agentproxy.project_checks import ProjectChecks
from agentproxy.store import SessionStore
from agentproxy.workspace import Workspace

PYTEST = f"PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 {shlex.quote(sys.executable)} -m pytest -q -p no:cacheprovider tests"
TESTS = (
    "from calc import add\n"
    "def test_add():\n    assert add(2, 2) == 4\n"
    "def test_known_bug():\n    assert add(0.1, 0.2) == 0.3\n"
)
SUBTASK = Subtask(id="1", title="t", instructions="t")
CALC = {"calc.py": "def add(a, b):\n    return a + b\n", "tests/test_calc.py": TESTS}


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=30)
    return done.stdout


def _repository(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "base")
    return root


class Events(list[AnyEvent]):
    def of(self, kind: type) -> list:
        return [event for event in self if isinstance(event, kind)]


def _checks(tmp_path: Path, store: SessionStore | None, events: Events, **options: object) -> ProjectChecks:
    run_options = RunOptions(working_dir=tmp_path, agent_command=(), **options)  # type: ignore[arg-type]
    return ProjectChecks(run_options, events.append, tmp_path / "envs", store)


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    with SessionStore(tmp_path / "sessions.db") as opened:
        yield opened


def test_only_what_the_change_broke_fails_and_the_base_is_read_from_the_store_the_second_time(
    tmp_path: Path, store: SessionStore
) -> None:
    project = _repository(
        tmp_path / "p", {"calc.py": "def add(a, b):\n    return a + b\n", "tests/test_calc.py": TESTS}
    )
    events = Events()
    checks = _checks(tmp_path, store, events, checks=(PYTEST,), setup="off")

    base = checks.baseline(project, "1")
    base_tree = base.base_tree
    assert base_tree == Workspace(project).tree_id()
    [standing] = base.verdicts
    assert standing.kind == "preexisting" and standing.preexisting == ["tests.test_calc::test_known_bug"]

    (project / "calc.py").write_text("def add(a, b):\n    return a + b + 1\n")
    [judged] = checks.verify(project, SUBTASK, base_tree)
    assert judged.verdict.kind == "failed"
    assert judged.verdict.new_failures == ["tests.test_calc::test_add"]
    assert judged.verdict.preexisting == ["tests.test_calc::test_known_bug"]

    # Another run on the same files (a later session) reads the base from the store.
    again = Events()
    (project / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    assert Workspace(project).tree_id() == base_tree
    fresh = _checks(tmp_path, store, again, checks=(PYTEST,), setup="off")
    [cached] = fresh.baseline(project, "1").verdicts
    assert cached == standing
    [ran] = again.of(BaselineRan)
    assert ran.cached == [PYTEST] and ran.commit == base_tree


def test_a_check_that_cannot_run_is_repaired_once_by_the_setup_and_never_cached(
    tmp_path: Path, store: SessionStore
) -> None:
    project = _repository(tmp_path / "p", {"README": "x\n"})
    # The setup makes the tool only on its second run: the first leaves the check unable to run.
    setup = "if [ -e ../once ]; then printf '#!/bin/sh\\nexit 0\\n' > tool && chmod +x tool; else touch ../once; fi"
    events = Events()
    checks = _checks(tmp_path, store, events, checks=("./tool",), setup=setup)

    base = checks.baseline(project, "1")

    assert [verdict.kind for verdict in base.verdicts] == ["passed"]
    assert len(events.of(SetupStarted)) == 2  # the first setup, then the one repair
    assert all(step.result.passed for step in events.of(SetupStepRan))
    assert store.cached_check(base.base_tree, "./tool") is not None  # the repaired run passed: kept
    # What the setup made is kept out of git: the base is the project's files, and no commit takes it.
    assert _git(project, "status", "--porcelain") == ""
    assert base.base_tree == _git(project, "rev-parse", "HEAD^{tree}").strip()

    # The agent deleted the tool: it ran at the base and cannot now, so the change did it; no second repair.
    (project / "tool").unlink()
    [judged] = checks.verify(project, SUBTASK, base.base_tree)
    assert judged.verdict.kind == "failed" and "tool" in judged.verdict.cause
    assert judged.verdict.summary.startswith("ran before your change and cannot run now")
    assert len(events.of(SetupStarted)) == 2


def test_setup_off_never_runs_anything_and_an_environment_failure_is_not_kept(
    tmp_path: Path, store: SessionStore
) -> None:
    project = _repository(tmp_path / "p", {"README": "x\n"})
    events = Events()
    checks = _checks(tmp_path, store, events, checks=("no-such-tool-anywhere --x",), setup="off")

    base = checks.baseline(project, "1")

    [standing] = base.verdicts
    assert standing.kind == "environment" and "no-such-tool-anywhere" in standing.summary
    assert not events.of(SetupStarted)
    assert store.cached_check(base.base_tree, "no-such-tool-anywhere --x") is None


def test_acceptance_checks_of_the_subtask_must_pass_whatever_the_base_did(tmp_path: Path) -> None:
    project = _repository(tmp_path / "p", {"README": "x\n"})
    events = Events()
    checks = _checks(tmp_path, None, events, checks=("exit 3",), setup="off")
    base_tree = checks.baseline(project, "1").base_tree
    subtask = Subtask(id="1", title="t", instructions="t", checks=["exit 3", "test -e done.txt"])

    judged = {item.verdict.command: item.verdict for item in checks.verify(project, subtask, base_tree)}

    assert judged["exit 3"].kind == "failed" and "acceptance" in judged["exit 3"].summary
    assert judged["test -e done.txt"].kind == "failed"


def test_a_project_check_failing_the_same_way_as_at_the_base_is_preexisting(tmp_path: Path) -> None:
    project = _repository(tmp_path / "p", {"README": "x\n"})
    checks = _checks(tmp_path, None, Events(), checks=("echo broken; exit 3",), setup="off")
    base_tree = checks.baseline(project, "1").base_tree

    [judged] = checks.verify(project, SUBTASK, base_tree)

    assert judged.verdict.kind == "preexisting"


def test_pytest_is_read_test_by_test_and_the_command_is_shown_as_given(tmp_path: Path) -> None:
    project = _repository(
        tmp_path / "p", {"calc.py": "def add(a, b):\n    return a + b\n", "tests/test_calc.py": TESTS}
    )

    run = run_check(PYTEST, project, 60, child_environment())

    assert run.result.command == PYTEST and "junitxml" not in run.result.output_tail
    assert run.outcomes is not None and run.outcomes.complete
    assert run.outcomes.tests == {"tests.test_calc::test_add": "passed", "tests.test_calc::test_known_bug": "failed"}


def test_tree_id_counts_uncommitted_and_new_files_and_leaves_the_index_alone(tmp_path: Path) -> None:
    project = _repository(tmp_path / "p", {"a.txt": "a\n"})
    workspace = Workspace(project)
    clean = workspace.tree_id()
    assert clean == _git(project, "rev-parse", "HEAD^{tree}").strip()

    (project / "b.txt").write_text("b\n")
    with_new_file = workspace.tree_id()
    (project / "a.txt").write_text("changed\n")

    assert len({clean, with_new_file, workspace.tree_id()}) == 3
    assert _git(project, "status", "--porcelain") == " M a.txt\n?? b.txt\n"  # nothing was staged


def test_the_check_cache_round_trips_and_replaces(store: SessionStore) -> None:
    assert store.cached_check("t", "make test") is None
    store.cache_check("t", "make test", b"one")
    store.cache_check("t", "make test", b"two")
    assert store.cached_check("t", "make test") == b"two"
    assert store.cached_check("other", "make test") is None


def test_kill_running_ends_a_check_at_once(tmp_path: Path) -> None:
    finished: list[tuple[int | None, bytes, bool]] = []
    waiting = threading.Thread(
        target=lambda: finished.append(procs.run_bounded("sleep 30", cwd=tmp_path, timeout_s=60)), daemon=True
    )
    started = time.monotonic()
    waiting.start()
    time.sleep(0.3)
    procs.kill_running()
    waiting.join(timeout=10)
    assert finished and time.monotonic() - started < 10
    code, _, timed_out = finished[0]
    assert code != 0 and not timed_out


def test_the_follow_up_names_what_broke_and_what_failed_before() -> None:
    verdict = Verdict(passed=False, findings=["`pytest` exited 1"], follow_up="Fix the code.")
    checks = [
        CheckVerdict(command="pytest", kind="failed", new_failures=["t::b"], summary="fails now: t::b"),
        CheckVerdict(command="make lint", kind="preexisting", summary="this check already failed the same way"),
        CheckVerdict(command="tox", kind="environment", summary="could not run: tox not installed", cause="tox"),
    ]

    shown = with_check_kinds(verdict, checks)

    assert shown.follow_up.startswith("What fails because of your change:\n- `pytest`: fails now: t::b")
    assert "already failed before your change" in shown.follow_up and "`make lint`" in shown.follow_up
    assert "tox" not in shown.follow_up  # the environment is the user's to fix, never the agent's
    assert any("tox" in finding and "environment" in finding for finding in shown.findings)
    assert msgspec.structs.replace(shown, findings=[], follow_up="") == msgspec.structs.replace(
        verdict, findings=[], follow_up=""
    )
