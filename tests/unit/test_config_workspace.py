"""Where agentproxy keeps its files, the saved working directory, and the working directory as a git repo."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

import pytest

from agentproxy import config
from agentproxy.errors import UsageError, WorkdirError, WorkspaceError
from agentproxy.workspace import BASELINE_MESSAGE, Workspace, prepare_workdir


@pytest.fixture
def ap_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "ap-home"
    monkeypatch.setenv("AGENTPROXY_HOME", str(home))
    return home


@pytest.fixture
def git_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git with no user identity and no system or global configuration."""
    home = tmp_path / "git-home"
    home.mkdir()
    empty = tmp_path / "empty-gitconfig"
    empty.write_text("")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in (
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
        "EMAIL",
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_CEILING_DIRECTORIES",
    ):
        monkeypatch.delenv(name, raising=False)
    # Never let a test directory be taken for part of a repository above tmp_path.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    return home


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def commit_count(cwd: Path) -> int:
    return int(git(cwd, "rev-list", "--count", "HEAD").strip())


# --- config ------------------------------------------------------------------------------------


def test_agentproxy_home_holds_everything(ap_home: Path) -> None:
    assert config.config_dir() == ap_home / "config"
    assert config.data_dir() == ap_home / "data"
    assert config.store_path() == ap_home / "data" / "sessions.db"


def test_xdg_locations_are_used_without_agentproxy_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTPROXY_HOME", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))

    assert config.config_dir() == tmp_path / "xdg-config" / "agentproxy"
    assert config.data_dir() == tmp_path / "xdg-data" / "agentproxy"
    assert config.store_path() == tmp_path / "xdg-data" / "agentproxy" / "sessions.db"


def test_home_fallbacks_without_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTPROXY_HOME", raising=False)
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", "")  # empty counts as unset
    monkeypatch.setenv("HOME", str(tmp_path))

    assert config.config_dir() == tmp_path / ".config" / "agentproxy"
    assert config.data_dir() == tmp_path / ".local" / "share" / "agentproxy"


def test_saved_workdir_is_none_before_anything_is_saved(ap_home: Path) -> None:
    assert config.saved_workdir() is None


def test_save_workdir_round_trips_through_a_json_settings_file(ap_home: Path, tmp_path: Path) -> None:
    project = tmp_path / "my project"

    config.save_workdir(project)

    assert config.saved_workdir() == project
    settings_file = ap_home / "config" / config.SETTINGS_FILE
    assert json.loads(settings_file.read_text()) == {"workdir": str(project)}
    # No temporary files are left behind by the atomic write.
    assert [p.name for p in settings_file.parent.iterdir()] == [config.SETTINGS_FILE]

    config.save_workdir(tmp_path / "other")
    assert config.saved_workdir() == tmp_path / "other"


def test_saving_keeps_other_settings(ap_home: Path, tmp_path: Path) -> None:
    settings_file = ap_home / "config" / config.SETTINGS_FILE
    settings_file.parent.mkdir(parents=True)
    settings_file.write_text(json.dumps({"theme": "dark"}))

    config.save_workdir(tmp_path)

    assert json.loads(settings_file.read_text()) == {"theme": "dark", "workdir": str(tmp_path)}


@pytest.mark.parametrize("content", ["{not json", "\x00\x01", '{"workdir": '])
def test_a_corrupt_settings_file_is_a_usage_error(ap_home: Path, content: str) -> None:
    settings_file = ap_home / "config" / config.SETTINGS_FILE
    settings_file.parent.mkdir(parents=True)
    settings_file.write_text(content)

    with pytest.raises(UsageError, match="cannot read settings"):
        config.saved_workdir()


def test_settings_that_are_not_an_object_are_ignored(ap_home: Path) -> None:
    settings_file = ap_home / "config" / config.SETTINGS_FILE
    settings_file.parent.mkdir(parents=True)
    settings_file.write_text("[1, 2]")
    assert config.saved_workdir() is None


def test_load_dotenv_reads_new_variables_without_overriding_existing_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("AP_TEST_NEW=from-dotenv\nAP_TEST_EXISTING=from-dotenv\n")
    monkeypatch.delenv("AP_TEST_NEW", raising=False)
    monkeypatch.setenv("AP_TEST_EXISTING", "from-environment")

    try:
        config.load_dotenv_files(tmp_path)
        assert os.environ["AP_TEST_NEW"] == "from-dotenv"
        assert os.environ["AP_TEST_EXISTING"] == "from-environment"
    finally:
        os.environ.pop("AP_TEST_NEW", None)


def test_load_dotenv_without_a_file_is_harmless(tmp_path: Path) -> None:
    before = dict(os.environ)
    config.load_dotenv_files(tmp_path)
    assert dict(os.environ) == before


def test_configure_logging_writes_to_a_file_in_the_data_dir(ap_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTPROXY_LOG_LEVEL", "debug")
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        log_path = config.configure_logging()
        logging.getLogger("agentproxy.test").debug("hello from the test")
        for handler in root.handlers:
            handler.flush()

        assert log_path == ap_home / "data" / config.LOG_FILE
        assert root.level == logging.DEBUG
        line = log_path.read_text(encoding="utf-8")
        assert "DEBUG agentproxy.test" in line
        assert "hello from the test" in line
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def test_the_log_file_never_holds_a_secret(ap_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentproxy import redact

    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-logged-by-mistake")
    monkeypatch.setattr(redact, "_installed", None)  # as before any run: built from the environment
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        log_path = config.configure_logging()
        logging.getLogger("agentproxy.test").warning("calling with %s", "tok-logged-by-mistake")
        for handler in root.handlers:
            handler.flush()
        assert "calling with [redacted]" in log_path.read_text(encoding="utf-8")
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def test_configure_logging_falls_back_to_info_on_an_unknown_level(
    ap_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTPROXY_LOG_LEVEL", "chatty")
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        config.configure_logging()
        assert root.level == logging.INFO
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


# --- prepare_workdir ---------------------------------------------------------------------------


def test_prepare_workdir_creates_a_missing_directory(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "project"

    prepared = prepare_workdir(target)

    assert prepared == target.resolve()
    assert prepared.is_dir()
    assert prepared.is_absolute()


def test_prepare_workdir_accepts_an_existing_directory_and_resolves_relative_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "proj").mkdir()
    monkeypatch.chdir(tmp_path)
    assert prepare_workdir(Path("proj")) == (tmp_path / "proj").resolve()


def test_prepare_workdir_expands_the_tilde(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert prepare_workdir(Path("~/code/proj")) == (tmp_path / "code" / "proj").resolve()


@pytest.mark.parametrize("spelling", ["{home}", "{home}/", "~", "{home}/sub/.."])
def test_prepare_workdir_refuses_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    (home / "sub").mkdir()

    with pytest.raises(WorkdirError, match="refusing"):
        prepare_workdir(Path(spelling.format(home=home)))


def test_prepare_workdir_refuses_the_filesystem_root() -> None:
    with pytest.raises(WorkdirError, match="refusing"):
        prepare_workdir(Path("/"))


def test_prepare_workdir_refuses_a_file(tmp_path: Path) -> None:
    regular = tmp_path / "file.txt"
    regular.write_text("x")
    with pytest.raises(WorkdirError, match="is a file"):
        prepare_workdir(regular)


def test_prepare_workdir_reports_an_uncreatable_path(tmp_path: Path) -> None:
    regular = tmp_path / "file.txt"
    regular.write_text("x")
    with pytest.raises(WorkdirError, match="cannot create"):
        prepare_workdir(regular / "sub" / "project")
    assert regular.read_text() == "x"


def test_workdir_error_is_a_usage_error() -> None:
    assert issubclass(WorkdirError, UsageError)


# --- Workspace ---------------------------------------------------------------------------------


def test_ensure_repo_makes_a_baseline_commit_of_existing_files(tmp_path: Path, git_env: Path) -> None:
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "README.md").write_text("hello\n")
    (project / "src" / "main.py").write_text("print(1)\n")
    workspace = Workspace(project)

    assert workspace.ensure_repo() is True

    assert commit_count(project) == 1
    assert git(project, "log", "-1", "--format=%s").strip() == BASELINE_MESSAGE
    assert sorted(git(project, "ls-files").split()) == ["README.md", "src/main.py"]
    assert not workspace.has_changes()
    assert len(workspace.head()) == 40

    assert workspace.ensure_repo() is False
    assert commit_count(project) == 1


def test_ensure_repo_on_an_empty_directory_makes_an_empty_baseline(tmp_path: Path, git_env: Path) -> None:
    project = tmp_path / "empty"
    project.mkdir()

    assert Workspace(project).ensure_repo() is True
    assert commit_count(project) == 1
    assert git(project, "ls-files") == ""


def test_commits_without_a_git_identity_are_authored_by_agentproxy(tmp_path: Path, git_env: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "a.txt").write_text("a")
    workspace = Workspace(project)
    workspace.ensure_repo()
    (project / "a.txt").write_text("b")

    sha = workspace.commit_all("change a")

    author = git(project, "log", "-1", "--format=%an <%ae>|%cn <%ce>", sha).strip()
    assert author == "agentproxy <agentproxy@localhost>|agentproxy <agentproxy@localhost>"
    baseline_author = git(project, "log", "--format=%an", "HEAD~1").strip()
    assert baseline_author == "agentproxy"


def test_commits_use_the_users_identity_when_there_is_one(tmp_path: Path, git_env: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    git(project, "init", "-q")
    git(project, "config", "user.name", "Ada")
    git(project, "config", "user.email", "ada@example.com")
    workspace = Workspace(project)
    (project / "x.txt").write_text("x")

    sha = workspace.commit_all("x")

    assert git(project, "log", "-1", "--format=%an <%ae>", sha).strip() == "Ada <ada@example.com>"


def repo_with(tmp_path: Path, files: dict[str, str]) -> tuple[Path, Workspace, str]:
    """A fresh project holding files, made a repository by ensure_repo; (project, workspace, baseline)."""
    project = tmp_path / "project"
    project.mkdir()
    for name, content in files.items():
        (project / name).write_text(content)
    workspace = Workspace(project)
    workspace.ensure_repo()
    return project, workspace, workspace.head()


def test_has_changes_and_commit_all(tmp_path: Path, git_env: Path) -> None:
    project, workspace, baseline = repo_with(tmp_path, {"tracked.txt": "one\n"})

    assert not workspace.has_changes()
    assert workspace.commit_all("nothing") is None
    assert workspace.head() == baseline

    (project / "tracked.txt").write_text("two\n")
    (project / "new_dir").mkdir()
    (project / "new_dir" / "untracked.py").write_text("x = 1\n")
    assert workspace.has_changes()

    sha = workspace.commit_all("agent work")

    assert sha == workspace.head() != baseline
    assert git(project, "log", "-1", "--format=%s", sha).strip() == "agent work"
    assert "new_dir/untracked.py" in git(project, "show", "--name-only", "--format=", sha).split()
    assert not workspace.has_changes()
    assert git(project, "status", "--porcelain") == ""

    (project / "tracked.txt").unlink()
    deleted = workspace.commit_all("delete")
    assert deleted is not None
    assert "tracked.txt" not in git(project, "ls-files")


def test_diff_since_shows_changes_and_new_files(tmp_path: Path, git_env: Path) -> None:
    project, workspace, baseline = repo_with(tmp_path, {"app.py": "def f():\n    return 1\n"})

    (project / "app.py").write_text("def f():\n    return 2\n")
    (project / "brand_new.py").write_text("print('new')\n")

    diff = workspace.diff_since(baseline, max_chars=100_000)

    assert "app.py" in diff
    assert "+    return 2" in diff
    assert "-    return 1" in diff
    assert "+++ b/brand_new.py" in diff and "+print('new')" in diff  # a new file's content, not just its name


def test_diff_since_is_bounded(tmp_path: Path, git_env: Path) -> None:
    project, workspace, baseline = repo_with(tmp_path, {})
    (project / "big.txt").write_text("".join(f"line {n}\n" for n in range(5000)))
    workspace.commit_all("big")

    diff = workspace.diff_since(baseline, max_chars=500)

    assert len(diff) <= 500 + len("\n… (diff truncated)")
    assert diff.endswith("… (diff truncated)")
    assert "big.txt" in diff[:500]  # the stat comes first


def test_diff_since_committed_changes_is_not_empty_and_clean_tree_is(tmp_path: Path, git_env: Path) -> None:
    project, workspace, baseline = repo_with(tmp_path, {})

    assert workspace.diff_since(baseline, max_chars=1000) == ""

    (project / "f.txt").write_text("content\n")
    workspace.commit_all("f")
    assert "+content" in workspace.diff_since(baseline, max_chars=1000)
    assert workspace.diff_since(workspace.head(), max_chars=1000) == ""


def test_in_a_subdirectory_of_a_bigger_repo_only_the_subdirectory_is_committed(tmp_path: Path, git_env: Path) -> None:
    outer = tmp_path / "monorepo"
    sub = outer / "packages" / "app"
    sub.mkdir(parents=True)
    (outer / "root.txt").write_text("root v1\n")
    (sub / "app.py").write_text("v1\n")
    git(outer, "init", "-q")
    git(outer, "add", "-A")
    git(outer, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-q", "-m", "initial")
    before = commit_count(outer)

    workspace = Workspace(sub)
    assert workspace.ensure_repo() is False  # already inside a repository: no new one, no commit
    assert not (sub / ".git").exists()
    assert commit_count(outer) == before

    # The user's own changes outside the subdirectory, one of them staged.
    (outer / "root.txt").write_text("root v2\n")
    (outer / "user_new.txt").write_text("mine\n")
    git(outer, "add", "root.txt")
    assert not workspace.has_changes()

    (sub / "app.py").write_text("v2\n")
    (sub / "added.py").write_text("new\n")
    assert workspace.has_changes()

    sha = workspace.commit_all("agent change")

    changed = sorted(git(outer, "show", "--name-only", "--format=", sha).split())
    assert changed == ["packages/app/added.py", "packages/app/app.py"]
    status = git(outer, "status", "--porcelain")
    assert "M  root.txt" in status  # still staged, not committed
    assert "?? user_new.txt" in status
    assert "packages/app" not in status
    assert not workspace.has_changes()

    diff = workspace.diff_since(f"{sha}~1", max_chars=100_000)
    assert "packages/app/app.py" in diff
    assert "root.txt" not in diff


# --- secrets and hooks -------------------------------------------------------------------------

SECRET_FILES = {
    ".env": "GEMINI_API_KEY=AIza-secret\n",
    "id_rsa": "-----BEGIN KEY-----\n",
    "certs/server.pem": "pem\n",
    ".env.production": "X=1\n",
    "gcp-service-account.json": "{}\n",
}
SHARED_FILES = {".env.example": "GEMINI_API_KEY=\n", "id_rsa.pub": "ssh-rsa AAAA\n", "app.py": "x = 1\n"}


def write_files(project: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(content)


def committed_files(project: Path) -> list[str]:
    return sorted(git(project, "ls-tree", "-r", "--name-only", "HEAD").split())


def test_the_baseline_commit_never_adds_secret_looking_files(tmp_path: Path, git_env: Path) -> None:
    project = tmp_path / "project"
    write_files(project, {**SECRET_FILES, **SHARED_FILES})
    workspace = Workspace(project)

    workspace.ensure_repo()

    assert committed_files(project) == sorted(SHARED_FILES)
    assert sorted(workspace.excluded) == sorted(SECRET_FILES)
    exclude = (project / ".git" / "info" / "exclude").read_text()
    assert all(f"/{name}\n" in exclude for name in SECRET_FILES)
    assert not workspace.has_changes()  # excluded, so not even shown as new


def test_a_later_commit_never_adds_new_secret_looking_files(tmp_path: Path, git_env: Path) -> None:
    project, workspace, _ = repo_with(tmp_path, {"app.py": "x = 1\n"})
    write_files(project, {**SECRET_FILES, "app.py": "x = 2\n"})

    sha = workspace.commit_all("agent work")

    assert sha is not None and committed_files(project) == ["app.py"]
    assert sorted(workspace.excluded) == sorted(SECRET_FILES)
    assert (project / ".env").read_text() == SECRET_FILES[".env"]  # kept, just not committed


def test_only_secret_looking_new_files_make_no_commit(tmp_path: Path, git_env: Path) -> None:
    project, workspace, baseline = repo_with(tmp_path, {"app.py": "x = 1\n"})
    (project / ".env").write_text("TOKEN=abcdefghij\n")

    assert workspace.commit_all("nothing to commit") is None
    assert workspace.head() == baseline and workspace.excluded == [".env"]


def test_an_already_tracked_env_file_stays_tracked(tmp_path: Path, git_env: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / ".env").write_text("DEBUG=1\n")
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-q", "-m", "the user's choice")
    workspace = Workspace(project)
    (project / ".env").write_text("DEBUG=0\n")

    sha = workspace.commit_all("agent work")

    assert sha is not None and ".env" in git(project, "show", "--name-only", "--format=", sha).split()
    assert workspace.excluded == []


def test_a_name_with_glob_characters_is_excluded_exactly(tmp_path: Path, git_env: Path) -> None:
    project, workspace, _ = repo_with(tmp_path, {})
    write_files(project, {"odd[1]*.key": "k\n", "odd1x.key.txt": "not a key\n"})

    workspace.commit_all("files")

    assert committed_files(project) == ["odd1x.key.txt"]
    assert (project / ".git" / "info" / "exclude").read_text().endswith("/odd\\[1]\\*.key\n")


def install_hook(project: Path, script: str) -> None:
    hook = project / ".git" / "hooks" / "pre-commit"
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text("#!/bin/sh\n" + script)
    hook.chmod(0o755)


def test_a_failing_pre_commit_hook_refuses_the_commit_with_a_one_line_reason(tmp_path: Path, git_env: Path) -> None:
    project, workspace, baseline = repo_with(tmp_path, {"app.py": "x = 1\n"})
    install_hook(project, "echo 'lint: app.py has a trailing comma' >&2\nexit 1\n")
    (project / "app.py").write_text("x = 2,\n")

    with pytest.raises(WorkspaceError) as raised:
        workspace.commit_all("agent work")

    reason = str(raised.value)
    assert "\n" not in reason and "pre-commit" in reason and "lint: app.py has a trailing comma" in reason
    assert workspace.head() == baseline and workspace.has_changes()


def test_a_passing_pre_commit_hook_runs_and_lets_the_commit_happen(tmp_path: Path, git_env: Path) -> None:
    project, workspace, baseline = repo_with(tmp_path, {"app.py": "x = 1\n"})
    install_hook(project, f"printenv > '{tmp_path}/hook-env.txt'\n")
    (project / "app.py").write_text("x = 2\n")

    sha = workspace.commit_all("agent work")

    assert sha is not None and sha != baseline
    assert (tmp_path / "hook-env.txt").is_file()  # the hook ran: --no-verify is gone


def test_hooks_never_see_the_supervisors_key(tmp_path: Path, git_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-supervisor-only")
    project, workspace, _ = repo_with(tmp_path, {"app.py": "x = 1\n"})
    install_hook(project, f"printenv > '{tmp_path}/hook-env.txt'\n")
    (project / "app.py").write_text("x = 2\n")

    workspace.commit_all("agent work")

    assert "AIza-supervisor-only" not in (tmp_path / "hook-env.txt").read_text()


def test_a_commit_in_the_middle_of_a_merge_fails_with_gits_reason(tmp_path: Path, git_env: Path) -> None:
    project, workspace, _ = repo_with(tmp_path, {"app.py": "base\n"})
    identity = ("-c", "user.name=u", "-c", "user.email=u@x")
    git(project, "checkout", "-q", "-b", "other")
    (project / "app.py").write_text("other\n")
    git(project, *identity, "commit", "-q", "-am", "other")
    git(project, "checkout", "-q", "-")
    (project / "app.py").write_text("mine\n")
    git(project, *identity, "commit", "-q", "-am", "mine")
    subprocess.run(["git", *identity, "merge", "-q", "other"], cwd=project, capture_output=True, check=False)
    (project / "app.py").write_text("resolved\n")

    with pytest.raises(WorkspaceError, match="git commit failed"):
        workspace.commit_all("agent work")
