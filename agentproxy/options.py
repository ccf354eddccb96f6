"""The knobs of one run, gathered once by the CLI (or the Python API) and shared read-only by all actors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agentproxy.agents.prices import DEFAULT_PRICES, Prices
from agentproxy.blocklist import DEFAULT_DENY


@dataclass(frozen=True)
class RunOptions:
    working_dir: Path
    agent_command: tuple[str, ...]  # Claude Code's
    # None: the user's environment minus a parent Claude Code session's variables.
    agent_env: Mapping[str, str] | None = None
    model: str | None = None
    checks: tuple[str, ...] = ()  # empty: detect the project's checks
    check_timeout_s: float = 600.0
    setup: str = "auto"  # --setup: auto (per kind of project), off, or the user's own command
    setup_timeout_s: float = 1800.0  # per setup step: installs can be slow
    max_attempts: int = 3  # follow-ups allowed after a failed verification
    silence_timeout_s: float = 600.0
    agent_timeout_s: float = 3600.0
    deny_patterns: tuple[str, ...] = DEFAULT_DENY
    allow_tools: tuple[str, ...] = ()  # --allow-tool: names (fnmatch patterns) of tools allowed without judgement
    screenshots: tuple[Path, ...] = ()
    restart_intensity: int = 3  # restarts of one actor allowed within restart_period_s
    restart_period_s: float = 60.0
    max_question_follow_ups: int = 2  # final answers that are questions, answered per subtask
    context_dir: Path | None = None  # documents and images that inform every brain call
    brain_review: bool = True  # False (--no-qa): the checks alone decide
    ask_human: bool = False  # put agents' questions to the terminal, the brain's answer as default
    ask_human_timeout_s: float = 120.0
    stuck_repeats: int = 4  # the same tool call with the same result this many times in a row is a loop
    rate_limit_max_wait_s: float = 6 * 3600.0  # the longest one pause for a rate or usage limit may last
    rate_limit_first_wait_s: float = 30.0  # the first pause when the limit does not say when it lifts
    max_budget_usd: float | None = None  # agents and brain together; over it the run stops with status budget
    parallel: int = 4  # agents at once, each in its own worktree; 1: one subtask at a time in the user's tree
    check_parallel: int = 0  # subtasks whose checks run at once; 0: the number of cores
    listen: ListenOptions | None = None  # --listen: remote workers take subtasks through the bridge
    agents: tuple[str, ...] = ("claude",)  # --agent / --agents: the backends subtasks may go to; the first by default
    vendor_commands: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # the other backends' commands
    # What tokens cost per vendor and model (agents.prices).
    agent_prices: Prices = field(default_factory=lambda: DEFAULT_PRICES)
    share_gemini_key: bool = False  # --share-gemini-key: the Gemini CLI agent gets the brain's key
    best_of: int = 1  # --best-of: attempts at each subtask at once; the best verified one lands

    def command_for(self, agent: str) -> tuple[str, ...]:
        """The argv prefix that starts the agent backend named agent."""
        return self.agent_command if agent == "claude" else self.vendor_commands[agent]


@dataclass(frozen=True)
class ListenOptions:
    """The broker's knobs (--listen and its companions)."""

    endpoint: str
    secure: bool = True  # False: --listen-insecure, loopback only
    authorized_keys: Path | None = None  # the workers' public certificates; None: <config>/workers.d
    local_slots: int | None = None  # agents run here at once; None: --parallel, 0: remote workers only
    heartbeat_s: float = 1.0
    liveness: int = 3  # heartbeats a worker may miss before it is dead
