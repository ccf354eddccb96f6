"""What agents, checks and git hooks inherit: the user's environment minus the supervisor's own keys.

The brain's key is the supervisor's, not the project's: an agent that can `printenv` must not see it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# The brain's key and endpoint: --share-gemini-key gives them to the Gemini CLI agent.
BRAIN_KEY_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL")
# What launch.make_brain and agentproxy/brain/gemini.py read (not imported: the brain imports checks).
SUPERVISOR_VARIABLES = frozenset({*BRAIN_KEY_VARIABLES, "AGENTPROXY_GEMINI_MODEL", "AGENTPROXY_PROMPT_CHARS"})


def child_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """base (default: os.environ) without the supervisor's variables."""
    source = os.environ if base is None else base
    return {name: value for name, value in source.items() if name not in SUPERVISOR_VARIABLES}
