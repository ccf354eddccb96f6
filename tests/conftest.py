"""Shared fixtures: every test gets its own agentproxy home, so no test sees another's sessions."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agentproxy.options import RunOptions

# A developer's own brain settings must not reach the tests: no test may call the real Gemini.
BRAIN_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "AGENTPROXY_GEMINI_MODEL")


@pytest.fixture(autouse=True)
def agentproxy_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "agentproxy-home"
    monkeypatch.setenv("AGENTPROXY_HOME", str(home))
    for name in BRAIN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return home


ScriptedOptions = Callable[..., RunOptions]


@pytest.fixture
def scripted_options(tmp_path: Path) -> ScriptedOptions:
    """RunOptions for a project in tmp_path driven by the scripted agent playing the given turns."""

    def build(turns: list[list[dict[str, Any]]], **overrides: Any) -> RunOptions:
        project = tmp_path / "project"
        project.mkdir(exist_ok=True)
        script = tmp_path / "agent-script.json"
        script.write_text(json.dumps({"turns": turns}))
        options = RunOptions(
            working_dir=project,
            agent_command=(sys.executable, "-m", "agentproxy.scripted_agent", "--script", str(script)),
            agent_env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
            check_timeout_s=30,
            silence_timeout_s=20,
            agent_timeout_s=60,
            restart_period_s=30,
        )
        return replace(options, **overrides)

    return build
