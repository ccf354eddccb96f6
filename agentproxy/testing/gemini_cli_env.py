"""Run the real Gemini CLI against a local fake API (FakeGemini), isolated from the user's own setup.

The child must never reach Google or read the user's ~/.gemini (settings, OAuth credentials,
sessions), and must never stop at an interactive prompt: hence a private HOME and TMPDIR per run, a
dummy key, a settings file that picks API-key auth and switches off every optional network feature,
and no inherited GEMINI_* / GOOGLE_* variables (model, project, Vertex mode, system settings path).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from agentproxy.agents.gemini_cli import GEMINI_CLI
from agentproxy.testing.pinned_clis import find_cli

_DROPPED_PREFIXES = ("GEMINI_", "GOOGLE_")
FAKE_API_KEY = "fake-gemini-key"
_FIXED = {
    "GEMINI_API_KEY": FAKE_API_KEY,
    # Without it a headless run in an untrusted folder exits 55.
    "GEMINI_CLI_TRUST_WORKSPACE": "true",
    # 0.61.0 re-executes itself in a child node with a bigger heap; skipping that saves ~1 s and one process.
    "GEMINI_CLI_NO_RELAUNCH": "true",
}
SETTINGS = {
    # Without an auth type a headless run exits 41 ("Invalid auth method selected").
    "security": {"auth": {"selectedType": "gemini-api-key"}},
    # Usage statistics are the one call 0.61.0 makes to Google by default (play.googleapis.com).
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
    # maxAttempts 1: a 5xx/429 ends the turn at once instead of 10 attempts with 5-30 s backoffs.
    "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False, "maxAttempts": 1},
    # A .env in the project or its parents must not set the model or the project for the run.
    "advanced": {"ignoreLocalEnv": True},
}


def isolated_gemini_env(base_url: str, home: Path) -> dict[str, str]:
    """os.environ without Gemini/Google configuration, aimed at ``base_url``, with ``home``'s
    .gemini/settings.json written for a headless run."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(_DROPPED_PREFIXES)}
    tmp = home / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    settings = home / ".gemini" / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps(SETTINGS, indent=2) + "\n")
    env.update(_FIXED, HOME=str(home), TMPDIR=str(tmp), GOOGLE_GEMINI_BASE_URL=base_url)
    return env


def find_gemini_bin() -> str | None:
    return find_cli(GEMINI_CLI)
