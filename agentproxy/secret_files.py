"""Which files look like secrets, by name: agentproxy's own commits never add them."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import PurePosixPath

# Only clear cases: keys, certificates' private halves, dotenv files, cloud credentials.
SECRET_NAME_PATTERNS = (
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "credentials.json",
    "*service-account*.json",
    "*service_account*.json",
)
# Templates of a .env are meant to be shared.
NOT_SECRET_NAMES = (".env.example", ".env.sample", ".env.template")


def looks_like_secret_file(path: str) -> bool:
    name = PurePosixPath(path).name.lower()
    if name in NOT_SECRET_NAMES or name.endswith(".pub"):
        return False
    return any(fnmatchcase(name, pattern) for pattern in SECRET_NAME_PATTERNS)


def exclusion_warning(paths: Sequence[str]) -> str:
    """The one-line warning for files kept out of agentproxy's commits."""
    shown = ", ".join(paths[:10]) + (f" and {len(paths) - 10} more" if len(paths) > 10 else "")
    return f"not committed, as they look like secrets: {shown} (listed in .git/info/exclude)"
