"""What pa-server lets in: a bearer token off loopback, and paths only under the allowed roots."""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from agentproxy.errors import UsageError

TOKEN_ENV = "AGENTPROXY_SERVER_TOKEN"
TOKEN_FILE = "server-token"


class Forbidden(UsageError):
    """A path outside the allowed roots: 403."""


@dataclass(frozen=True)
class Token:
    value: str
    made_now: bool  # generated on this start: printed once
    where: str  # the environment variable, or the file that holds it


def server_token(config_dir: Path) -> Token:
    """AGENTPROXY_SERVER_TOKEN, else the one stored in the config directory (made on first start, 0600)."""
    if given := os.environ.get(TOKEN_ENV, "").strip():
        return Token(given, made_now=False, where=TOKEN_ENV)
    path = config_dir / TOKEN_FILE
    if path.is_file():
        return Token(path.read_text().strip(), made_now=False, where=str(path))
    config_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(value + "\n")
    return Token(value, made_now=True, where=str(path))


def token_matches(header: str | None, token: str) -> bool:
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@dataclass(frozen=True)
class AllowedRoots:
    roots: tuple[Path, ...]  # resolved

    @classmethod
    def of(cls, given: list[Path], cwd: Path) -> AllowedRoots:
        return cls(tuple((cwd / root).resolve() for root in given) if given else (cwd.resolve(),))

    def check(self, path: str, what: str) -> Path:
        """path (relative to the first root) resolved, `..` and symlinks followed; Forbidden if outside."""
        if "\0" in path:
            raise UsageError(f"{what} holds a NUL character")
        try:
            resolved = (self.roots[0] / Path(path).expanduser()).resolve()
            resolved.exists()  # a name longer than the filesystem allows raises here, not later
        except (OSError, RuntimeError) as exc:  # RuntimeError: an unknown ~user
            raise UsageError(f"{what} {path[:80]!r} cannot be used: {getattr(exc, 'strerror', None) or exc}") from None
        if not any(resolved == root or resolved.is_relative_to(root) for root in self.roots):
            raise Forbidden(f"{what} {path!r} is outside the allowed roots ({', '.join(map(str, self.roots))})")
        return resolved
