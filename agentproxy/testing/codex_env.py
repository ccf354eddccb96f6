"""Run the real Codex CLI against a local fake Responses API, isolated from the user's own setup.

Codex ignores OPENAI_BASE_URL: the only way to aim it at a fake is a model provider in
``$CODEX_HOME/config.toml``. The child must never read the user's ~/.codex (config, auth,
sessions), reach the network (update check, analytics, the plugin sync's `git ls-remote` of
github.com) or retry against the fake on its own, and must never stop at a prompt: hence a private
HOME, CODEX_HOME and TMPDIR per run, a dummy key, and those features switched off in the config.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from agentproxy.agents.codex import CODEX
from agentproxy.testing.pinned_clis import find_cli

_DROPPED_PREFIXES = ("OPENAI_", "CODEX_")
KEY_VARIABLE = "FAKE_OPENAI_KEY"
# A model in codex's bundled catalog: an unknown one (e.g. gpt-5) adds an `error` item to every run.
DEFAULT_MODEL = "gpt-5.5"
# JSONL events, no git-repo / trusted-directory check, no sandbox and no approval prompts.
EXEC_FLAGS = ("--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox")


def find_codex_bin() -> str | None:
    return find_cli(CODEX)


def codex_config(base_url: str, model: str = DEFAULT_MODEL) -> str:
    """config.toml for a Responses API at ``base_url`` (codex appends /responses), nothing else online."""
    # Every key here is accepted by `codex exec --strict-config` (0.169.0).
    return f"""model = {json.dumps(model)}
model_provider = "fake"
check_for_update_on_startup = false

[analytics]
enabled = false

[features]
plugins = false

[model_providers.fake]
name = "fake"
base_url = {json.dumps(base_url)}
env_key = "{KEY_VARIABLE}"
wire_api = "responses"
supports_websockets = false
request_max_retries = 0
stream_max_retries = 0
"""


def isolated_codex_env(base_url: str, home: Path, model: str = DEFAULT_MODEL) -> dict[str, str]:
    """os.environ without OpenAI / Codex settings, with CODEX_HOME=home/.codex aimed at ``base_url``."""
    codex_home = home / ".codex"
    tmp = home / "tmp"
    codex_home.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(codex_config(base_url, model))
    env = {key: value for key, value in os.environ.items() if not key.startswith(_DROPPED_PREFIXES)}
    env.update({KEY_VARIABLE: "sk-fake-openai-key"}, HOME=str(home), TMPDIR=str(tmp), CODEX_HOME=str(codex_home))
    return env


def codex_exec_argv(prompt: str, *flags: str, resume: str | None = None, codex_bin: str | None = None) -> list[str]:
    """`codex exec` (or `codex exec resume THREAD`) with EXEC_FLAGS and ``flags``.

    Every option goes before `resume`: exec-level ones such as --sandbox and -C are refused after it.
    The bypass in EXEC_FLAGS wins over a --sandbox flag; a prompt starting with "-" needs a "--" flag.
    """
    codex = codex_bin or find_codex_bin() or "codex"
    return [codex, "exec", *EXEC_FLAGS, *flags, *(("resume", resume) if resume else ()), prompt]
