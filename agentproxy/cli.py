"""`pa`: the command line. Kept light: the actor system is imported only when a task runs."""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from typer.core import TyperCommand

from agentproxy import __version__
from agentproxy.errors import AgentProxyError, UsageError

try:  # newer typer bundles its own click, older typer depends on click
    from typer._click.exceptions import UsageError as ClickUsageError
except ImportError:  # pragma: no cover
    from click.exceptions import UsageError as ClickUsageError  # type: ignore[no-redef,import-not-found,assignment,unused-ignore]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class OneLineUsageError(typer.BadParameter):
    """A command-line error shown as one `pa: error:` line, where click shows usage, a hint and a box."""

    def show(self, file: IO[Any] | None = None) -> None:
        from agentproxy.redact import installed  # lazy: only an error pays for it

        typer.echo(f"pa: error: {installed().redact(self.message)}", err=True)


class PaCommand(TyperCommand):
    """The `pa` command, whose parse errors (unknown option, bad value) read like every other error."""

    def make_context(self, info_name: Any, args: Any, parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except ClickUsageError as exc:
            message = " ".join(exc.format_message().split()).rstrip(".")
            raise OneLineUsageError(f"{message[:1].lower()}{message[1:]} (see pa --help)") from exc


def text_value(value: str) -> str:
    """An option's text: not blank, and valid UTF-8 (argv carries undecodable bytes as lone surrogates)."""
    if not value.strip():
        raise typer.BadParameter("must not be empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise typer.BadParameter("is not valid UTF-8") from None
    return value


def path_value(value: str) -> Path:
    return Path(text_value(value))


def seconds_value(minimum: float) -> Callable[[Any], float]:
    """A parser of a duration: a finite number of seconds, at least minimum (nan and inf would never fire)."""

    def parse(value: Any) -> float:
        try:
            seconds = float(value)
        except ValueError:
            raise typer.BadParameter(f"{value!r} is not a number of seconds") from None
        if not math.isfinite(seconds) or seconds < minimum:
            raise typer.BadParameter(f"{value!r} is not a finite number of seconds >= {minimum:g}")
        return seconds

    return parse


app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)


class Output(str, Enum):
    text = "text"
    json = "json"


@app.command(cls=PaCommand, context_settings={"help_option_names": ["-h", "--help"]})
def pa(
    task: Annotated[
        str | None,
        typer.Argument(metavar="TASK", help="What the agents should do; - reads it from stdin.", show_default=False),
    ] = None,
    task_file: Annotated[
        Path | None,
        typer.Option(
            "-f",
            "--task-file",
            metavar="FILE",
            parser=path_value,
            help="Read the task from FILE (UTF-8), for tasks too long for the command line.",
        ),
    ] = None,
    working_dir: Annotated[
        Path | None,
        typer.Option(
            "-d",
            "--working-dir",
            metavar="DIR",
            parser=path_value,
            help="Project directory (default: the saved workdir, else the current directory).",
        ),
    ] = None,
    session: Annotated[
        str | None,
        typer.Option(
            "-s",
            "--session",
            metavar="ID",
            parser=text_value,
            help="Continue this session (id or unique prefix); without TASK, resume its unfinished task.",
        ),
    ] = None,
    list_sessions: Annotated[bool, typer.Option("--list-sessions", help="List recorded sessions and exit.")] = False,
    set_workdir: Annotated[
        Path | None,
        typer.Option(
            "--set-workdir",
            metavar="DIR",
            parser=path_value,
            help="Save DIR as the default working directory (and run TASK there, if given).",
        ),
    ] = None,
    show_workdir: Annotated[
        bool, typer.Option("--show-workdir", help="Print the saved working directory and exit.")
    ] = False,
    context_dir: Annotated[
        Path | None,
        typer.Option(
            "--context-dir",
            metavar="DIR",
            parser=path_value,
            help="Documents and images the brain reads, for this run (default: the saved contextdir).",
        ),
    ] = None,
    set_contextdir: Annotated[
        Path | None,
        typer.Option(
            "--set-contextdir",
            metavar="DIR",
            parser=path_value,
            help="Save DIR as the default context directory (and run TASK, if given).",
        ),
    ] = None,
    show_contextdir: Annotated[
        bool, typer.Option("--show-contextdir", help="Print the saved context directory and exit.")
    ] = False,
    screenshots: Annotated[
        list[Path] | None,
        typer.Option(
            "--add-screenshot",
            metavar="PATH",
            parser=path_value,
            help="An image for the agent and the brain to look at (repeatable).",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            metavar="MODEL",
            envvar="AGENTPROXY_GEMINI_MODEL",
            parser=text_value,
            help="Gemini model of the supervisor's brain (used when GEMINI_API_KEY is set).",
        ),
    ] = None,
    no_qa: Annotated[
        bool, typer.Option("--no-qa", help="Skip the brain's review of the work; the checks alone decide.")
    ] = False,
    ask_human: Annotated[
        bool,
        typer.Option(
            "--ask-human", help="Put the agents' questions to you on the terminal; the brain's answer is the default."
        ),
    ] = False,
    ask_human_timeout: Annotated[
        float,
        typer.Option(
            "--ask-human-timeout",
            metavar="SECONDS",
            parser=seconds_value(1),
            help="How long --ask-human waits before taking the brain's answer.",
        ),
    ] = 120.0,
    claude_bin: Annotated[
        str | None,
        typer.Option(
            "--claude-bin", metavar="CMD", envvar="CLAUDE_BIN", parser=text_value, help="The Claude Code command."
        ),
    ] = None,
    codex_bin: Annotated[
        str | None,
        typer.Option(
            "--codex-bin", metavar="CMD", envvar="CODEX_BIN", parser=text_value, help="The Codex CLI command."
        ),
    ] = None,
    gemini_bin: Annotated[
        str | None,
        typer.Option(
            "--gemini-bin", metavar="CMD", envvar="GEMINI_CLI_BIN", parser=text_value, help="The Gemini CLI command."
        ),
    ] = None,
    agent: Annotated[
        str,
        typer.Option(
            "--agent", metavar="claude|codex|gemini", parser=text_value, help="The coding agent every subtask goes to."
        ),
    ] = "claude",
    agents: Annotated[
        str | None,
        typer.Option(
            "--agents",
            metavar="A,B",
            parser=text_value,
            help=(
                "Several coding agents (e.g. claude,codex): the brain gives each subtask the one it judges fit"
                " (offline: the first); --best-of spreads its attempts across them."
            ),
        ),
    ] = None,
    best_of: Annotated[
        int,
        typer.Option(
            "--best-of",
            metavar="N",
            min=1,
            max=8,
            help=(
                "Run each subtask N times at once in separate worktrees, verify every attempt and land the best"
                " one that passes; the others are discarded (their costs count)."
            ),
        ),
    ] = 1,
    share_gemini_key: Annotated[
        bool,
        typer.Option(
            "--share-gemini-key",
            help="Give the Gemini CLI agent the brain's GEMINI_API_KEY (agents get none of pa's keys otherwise).",
        ),
    ] = False,
    agent_prices: Annotated[
        Path | None,
        typer.Option(
            "--agent-prices",
            metavar="FILE",
            parser=path_value,
            help="A TOML file of token prices per vendor and model, over the built-in table (docs in README).",
        ),
    ] = None,
    agent_model: Annotated[
        str | None,
        typer.Option(
            "--agent-model",
            metavar="MODEL",
            parser=text_value,
            help="Model for the coding agent (passed to the agent CLI's --model).",
        ),
    ] = None,
    checks: Annotated[
        list[str] | None,
        typer.Option(
            "--check",
            metavar="CMD",
            parser=text_value,
            help=(
                "A check command, instead of what the project's developers run (repeatable; see --show-checks):"
                " what fails after the agent's change and did not before is sent back."
            ),
        ),
    ] = None,
    show_checks: Annotated[
        bool,
        typer.Option(
            "--show-checks",
            help="Print the checks for the project (-d DIR), why each, and the setup it would do; then exit.",
        ),
    ] = False,
    run_checks: Annotated[
        bool,
        typer.Option("--run", help="With --show-checks: do the setup, run the checks and print the results."),
    ] = False,
    setup: Annotated[
        str,
        typer.Option(
            "--setup",
            metavar="auto|off|CMD",
            parser=text_value,
            help=(
                "Set the project's environment up so its checks can run: auto (its own virtualenv, node_modules,"
                " go/cargo fetch), off, or a shell command of yours."
            ),
        ),
    ] = "auto",
    max_attempts: Annotated[
        int, typer.Option("--max-attempts", metavar="N", min=0, help="Follow-ups allowed after a failed verification.")
    ] = 3,
    parallel: Annotated[
        int,
        typer.Option(
            "--parallel",
            metavar="N",
            min=1,
            max=64,
            help=(
                "Agents at once, each subtask in its own git worktree, merged and verified as one result;"
                " 1: one subtask at a time in your tree."
            ),
        ),
    ] = 4,
    max_budget_usd: Annotated[
        float | None,
        typer.Option(
            "--max-budget-usd",
            metavar="USD",
            min=0.01,
            help="Stop the run when its agents and brain together have spent this much (warns at 80%).",
        ),
    ] = None,
    check_parallel: Annotated[
        int,
        typer.Option(
            "--check-parallel",
            metavar="N",
            min=0,
            max=64,
            help="Subtasks whose checks run at once (default 0: the number of cores).",
        ),
    ] = 0,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            metavar="tcp://ADDR:PORT",
            parser=text_value,
            help="Take remote workers (pa-worker) on this address, authenticated with CURVE keys (docs/remote.md).",
        ),
    ] = None,
    listen_insecure: Annotated[
        str | None,
        typer.Option(
            "--listen-insecure",
            metavar="tcp://127.0.0.1:PORT",
            parser=text_value,
            help="Like --listen without authentication: loopback addresses only.",
        ),
    ] = None,
    authorized_keys: Annotated[
        Path | None,
        typer.Option(
            "--authorized-keys",
            metavar="DIR",
            parser=path_value,
            help="The workers' public certificates (*.key) admitted by --listen (default: <config>/workers.d).",
        ),
    ] = None,
    local_slots: Annotated[
        int | None,
        typer.Option(
            "--local-slots",
            metavar="N",
            min=0,
            max=64,
            help="With --listen: agents run on this machine at once (default: --parallel; 0: remote workers only).",
        ),
    ] = None,
    heartbeat: Annotated[
        float,
        typer.Option(
            "--heartbeat", metavar="SECONDS", parser=seconds_value(0.05), help="With --listen: between heartbeats."
        ),
    ] = 1.0,
    liveness: Annotated[
        int,
        typer.Option(
            "--liveness",
            metavar="N",
            min=1,
            max=100,
            help="With --listen: heartbeats a worker may miss before it is dead.",
        ),
    ] = 3,
    discard: Annotated[
        bool,
        typer.Option(
            "--discard", help="With -s ID: remove the session's worktrees and branches, and mark it discarded."
        ),
    ] = False,
    deny: Annotated[
        list[str] | None,
        typer.Option(
            "--deny", metavar="REGEX", parser=text_value, help="Extra regex of tool uses to refuse (repeatable)."
        ),
    ] = None,
    allow_tools: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-tool",
            metavar="PATTERN",
            parser=text_value,
            help="Allow a tool by name, an fnmatch pattern such as 'mcp__github__*' (repeatable).",
        ),
    ] = None,
    agent_silence_timeout: Annotated[
        float,
        typer.Option(
            "--agent-silence-timeout",
            metavar="SECONDS",
            parser=seconds_value(1),
            help="Kill an agent silent this long.",
        ),
    ] = 600.0,
    agent_timeout: Annotated[
        float,
        typer.Option(
            "--agent-timeout",
            metavar="SECONDS",
            parser=seconds_value(1),
            help="Kill an agent whose turn runs longer than this.",
        ),
    ] = 3600.0,
    check_timeout: Annotated[
        float,
        typer.Option(
            "--check-timeout", metavar="SECONDS", parser=seconds_value(1), help="How long each check may run."
        ),
    ] = 600.0,
    max_rate_limit_wait: Annotated[
        float,
        typer.Option(
            "--max-rate-limit-wait",
            metavar="SECONDS",
            parser=seconds_value(0),
            help="The longest an agent pauses for a rate or usage limit before its subtask fails.",
        ),
    ] = 6 * 3600.0,
    output: Annotated[Output, typer.Option("--output", help="text, or json: one event per line.")] = Output.text,
    demo: Annotated[bool, typer.Option("--demo", help="Run the offline demo with a scripted agent.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    """Run coding agents on TASK, supervised: plan, answer their questions, verify, commit."""
    try:
        code = _dispatch(**locals())
    except KeyboardInterrupt:  # outside a run (reading the task from stdin, say); a run handles its own
        code = EXIT_INTERRUPTED
    except AgentProxyError as exc:
        from agentproxy.redact import installed  # lazy: only an error pays for it

        typer.echo(f"pa: error: {installed().redact(str(exc))}", err=True)
        code = EXIT_USAGE if isinstance(exc, UsageError) else EXIT_FAILED
    raise typer.Exit(code)


def _dispatch(**args) -> int:
    from agentproxy import config, launch, sessions

    if args["version"]:
        typer.echo(f"agentproxy {__version__}")
        return EXIT_OK
    config.configure_logging()
    config.load_dotenv_files(Path.cwd())
    if args["demo"]:
        from agentproxy.demo import run_demo

        return run_demo()
    if args["show_workdir"]:
        saved = config.saved_workdir()
        typer.echo(str(saved) if saved else "(no saved workdir; the current directory is used)")
        return EXIT_OK
    if args["show_contextdir"]:
        saved = config.saved_contextdir()
        typer.echo(str(saved) if saved else "(no saved contextdir)")
        return EXIT_OK
    if args["list_sessions"]:
        typer.echo(sessions.format_sessions(sessions.list_sessions()))
        return EXIT_OK
    if args["show_checks"]:
        return _show_checks(args)
    if args["run_checks"]:
        raise UsageError("--run goes with --show-checks: pa --show-checks --run [-d DIR]")
    if args["discard"]:
        if args["session"] is None or args["task"] is not None:
            raise UsageError("--discard goes with a session and no task: pa -s ID --discard")
        typer.echo(sessions.discard(args["session"]))
        return EXIT_OK
    # Checked before anything is saved or created, like every other argument.
    args["task"] = launch.read_task(args["task"], args["task_file"])
    if args["set_contextdir"] is not None:
        contextdir = _existing_dir(args["set_contextdir"], "--set-contextdir")
        config.save_contextdir(contextdir)
        typer.echo(f"saved contextdir: {contextdir}")
        if args["task"] is None and args["set_workdir"] is None:
            return EXIT_OK
    if args["set_workdir"] is not None:
        from agentproxy.workspace import prepare_workdir

        workdir = prepare_workdir(args["set_workdir"])
        config.save_workdir(workdir)
        typer.echo(f"saved workdir: {workdir}")
        if args["task"] is None:
            return EXIT_OK
    if args["task"] is None and args["session"] is None:
        raise UsageError('no task given: pa "what to do", or pa -f TASK.md (see pa --help)')
    if args["context_dir"] is not None:
        args["context_dir"] = _existing_dir(args["context_dir"], "--context-dir")
    return launch.run_from_cli(args)


def _show_checks(args: dict[str, Any]) -> int:
    """Print what the Verifier would set up and run in the project; without --run, reads it and changes nothing."""
    from agentproxy import config
    from agentproxy.show_checks import show_checks

    project = _existing_dir(args["working_dir"] or config.saved_workdir() or Path.cwd(), "-d")
    all_passed = show_checks(
        project,
        given=args["checks"] or [],
        setup=args["setup"],
        run=args["run_checks"],
        as_json=args["output"] == Output.json,
        check_timeout_s=args["check_timeout"],
        echo=typer.echo,
    )
    return EXIT_OK if all_passed else EXIT_FAILED


def _existing_dir(path: Path, flag: str) -> Path:
    resolved = path.expanduser().resolve()
    if not resolved.is_dir():
        raise UsageError(f"{flag} {path}: not an existing directory")
    return resolved


def main() -> None:
    app(prog_name="pa")


if __name__ == "__main__":  # pragma: no cover
    main()
