"""One redactor per run: secret values never reach an event, a store row, a log line or the terminal.

The secrets are the values of secret-looking environment variables (``*_KEY``, ``*_TOKEN``,
``*_SECRET``, ``*PASSWORD*``, ``*CREDENTIALS*``) and every value of the ``.env`` files a run reads.
Values shorter than ``MIN_SECRET_CHARS`` are never secrets: "1" or "true" stay readable.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 8
_SECRET_SUFFIXES = ("_KEY", "_TOKEN", "_SECRET")
_SECRET_PARTS = ("PASSWORD", "CREDENTIALS")

E = TypeVar("E", bound=msgspec.Struct)


def looks_secret(name: str) -> bool:
    upper = name.upper()
    return upper.endswith(_SECRET_SUFFIXES) or any(part in upper for part in _SECRET_PARTS)


class Redactor:
    """Replaces every known secret value with ``[redacted]``; immutable, so any thread may use it."""

    def __init__(self, secrets: Iterable[str]) -> None:
        kept = {value for value in secrets if len(value) >= MIN_SECRET_CHARS}
        # Longest first: a secret that contains another is replaced whole.
        ordered = sorted(kept, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    @classmethod
    def from_sources(cls, environ: Mapping[str, str], dotenv_files: Iterable[Path] = ()) -> Redactor:
        secrets = [value for name, value in environ.items() if looks_secret(name)]
        for path in dotenv_files:
            secrets += dotenv_values(path)
        return cls(secrets)

    def redact(self, text: str) -> str:
        return text if self._pattern is None else self._pattern.sub(REDACTED, text)

    def redact_struct(self, event: E) -> E:
        """The event (or any struct) with every string in it (nested structs, lists, dict keys) redacted."""
        if self._pattern is None:
            return event
        plain = msgspec.to_builtins(event)
        cleaned = self._redact_value(plain)
        return event if cleaned == plain else msgspec.convert(cleaned, type(event))

    def _redact_value(self, value: Any) -> Any:
        match value:
            case str():
                return self.redact(value)
            case list():
                return [self._redact_value(item) for item in value]
            case dict():
                return {self._redact_value(k): self._redact_value(v) for k, v in value.items()}
        return value


def dotenv_values(path: Path) -> list[str]:
    """The values a .env file sets; none when it is missing or unreadable."""
    if not path.is_file():
        return []
    from dotenv import dotenv_values as parse  # lazy, as in config.load_dotenv_files

    try:
        return [value for value in parse(path).values() if value]
    except (OSError, UnicodeDecodeError):
        return []


def for_run(working_dir: Path) -> Redactor:
    """The run's redactor: the environment, and the .env of the working and the current directory."""
    files = {working_dir / ".env", Path.cwd() / ".env"}
    return Redactor.from_sources(os.environ, sorted(files))


_installed: Redactor | None = None


def install(redactor: Redactor) -> None:
    """Make redactor the process's own: the log file and the CLI's error line pass through it too."""
    global _installed
    _installed = redactor


def installed() -> Redactor:
    """The run's redactor; before any run, one built from the environment and the current directory."""
    global _installed
    if _installed is None:
        _installed = for_run(Path.cwd())
    return _installed


class RedactingFilter(logging.Filter):
    """A handler filter that redacts each record's message and traceback before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = installed()
        record.msg = redactor.redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.redact(record.stack_info)
        return True
