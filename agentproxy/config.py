"""Where agentproxy keeps its settings, sessions and logs, and how it reads a project's `.env`.

Stdlib only at import time: `pa --help` imports this module.
AGENTPROXY_HOME puts everything under one directory (tests, CI); otherwise the XDG locations.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

from agentproxy.errors import UsageError

SETTINGS_FILE = "settings.json"
LOG_FILE = "agentproxy.log"


def config_dir() -> Path:
    if home := os.environ.get("AGENTPROXY_HOME"):
        return _usable(Path(home), "AGENTPROXY_HOME") / "config"
    if xdg := os.environ.get("XDG_CONFIG_HOME"):
        return _usable(Path(xdg), "XDG_CONFIG_HOME") / "agentproxy"
    return Path.home() / ".config" / "agentproxy"


def data_dir() -> Path:
    if home := os.environ.get("AGENTPROXY_HOME"):
        return _usable(Path(home), "AGENTPROXY_HOME") / "data"
    if xdg := os.environ.get("XDG_DATA_HOME"):
        return _usable(Path(xdg), "XDG_DATA_HOME") / "agentproxy"
    return Path.home() / ".local" / "share" / "agentproxy"


def _usable(directory: Path, variable: str) -> Path:
    """directory, if it is one or could be made one: a file on its way fails every later mkdir."""
    existing = next((p for p in (directory, *directory.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise UsageError(f"{variable}={directory} cannot be used: {existing} is a file, not a directory")
    return directory


def envs_dir() -> Path:
    """Where the environments agentproxy makes for projects live (one per tree and interpreter)."""
    return data_dir() / "envs"


def worktrees_dir(session_id: str) -> Path:
    """Where a session's git worktrees live: never inside the user's tree."""
    return data_dir() / "worktrees" / session_id


def store_path() -> Path:
    return data_dir() / "sessions.db"


def saved_workdir() -> Path | None:
    return _saved_path("workdir")


def save_workdir(path: Path) -> None:
    _save_path("workdir", path)


def saved_contextdir() -> Path | None:
    return _saved_path("contextdir")


def save_contextdir(path: Path) -> None:
    _save_path("contextdir", path)


def load_dotenv_files(cwd: Path) -> None:
    """Read `.env` from the project directory; variables already set in the environment win."""
    from dotenv import load_dotenv  # lazy: only runs that need the environment pay for it

    load_dotenv(cwd / ".env", override=False)


def configure_logging() -> Path:
    """Log to a file in the data dir; the terminal shows events, not tracebacks of restarted actors.

    Every line passes the run's redactor (agentproxy.redact.installed()).
    """
    # Lazy: `pa --help` stays stdlib-only here.
    from agentproxy.redact import RedactingFilter

    log_path = data_dir() / LOG_FILE
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(threadName)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = os.environ.get("AGENTPROXY_LOG_LEVEL", "INFO").upper()
    root.setLevel(level if isinstance(logging.getLevelName(level), int) else logging.INFO)
    return log_path


def _saved_path(key: str) -> Path | None:
    value = _settings().get(key)
    return Path(value) if value else None


def _save_path(key: str, path: Path) -> None:
    settings = _settings()
    settings[key] = str(path)
    _write_settings(settings)


def _settings() -> dict[str, str]:
    path = config_dir() / SETTINGS_FILE
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read settings {path}: {exc}") from exc
    return loaded if isinstance(loaded, dict) else {}


def _write_settings(settings: dict[str, str]) -> None:
    directory = config_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a crash never leaves half a settings file.
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".settings-")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(settings, out, indent=2)
        os.replace(tmp, directory / SETTINGS_FILE)
    except OSError as exc:
        raise UsageError(f"cannot save settings in {directory}: {exc}") from exc
