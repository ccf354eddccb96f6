"""`pa-worker`: join a supervisor's fleet (`pa --listen`) as a worker host; `pa-worker keygen` makes its keys."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from agentproxy.errors import AgentProxyError, UsageError
from agentproxy.messages import HandBack

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
HAND_BACK_TIMEOUT_S = 30.0
VERSION_TIMEOUT_S = 30.0

app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)


@app.callback(invoke_without_command=True)
def worker(
    ctx: typer.Context,
    connect: Annotated[str | None, typer.Option("--connect", metavar="tcp://HOST:PORT", help="The supervisor.")] = None,
    slots: Annotated[int, typer.Option("--slots", min=1, help="Subtasks this host runs at once.")] = 1,
    name: Annotated[str | None, typer.Option("--name", help="How the supervisor names this host.")] = None,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Cached clones and worktrees (default: <data dir>/worker).")
    ] = None,
    claude_bin: Annotated[str | None, typer.Option("--claude-bin", metavar="CMD", help="The Claude Code CLI.")] = None,
    server_key: Annotated[
        Path | None, typer.Option("--server-key", metavar="FILE", help="The supervisor's public certificate.")
    ] = None,
    key: Annotated[
        Path | None, typer.Option("--key", metavar="FILE", help="This worker's secret certificate (.key_secret).")
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="No CURVE: for a supervisor on --listen-insecure (loopback only).")
    ] = False,
    heartbeat: Annotated[float, typer.Option("--heartbeat", min=0.05, help="Seconds between heartbeats.")] = 1.0,
    liveness: Annotated[int, typer.Option("--liveness", min=1, help="Heartbeats missed before reconnecting.")] = 3,
) -> None:
    """Run subtasks for a supervisor: pa-worker --connect tcp://HOST:PORT --server-key FILE --key FILE."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        code = run_worker(connect, slots, name, directory, claude_bin, server_key, key, insecure, heartbeat, liveness)
    except AgentProxyError as exc:
        typer.echo(f"pa-worker: error: {exc}", err=True)
        code = EXIT_USAGE if isinstance(exc, UsageError) else EXIT_FAILED
    raise typer.Exit(code)


@app.command()
def keygen(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where to write worker.key and worker.key_secret.")
    ] = None,
) -> None:
    """Write this worker's certificate pair and print its public key."""
    from agentproxy import config
    from agentproxy.bridge import keys

    target = directory or config.config_dir() / "worker"
    try:
        public, secret = keys.keygen(target)
    except UsageError as exc:
        typer.echo(f"pa-worker: error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    typer.echo(keys.public_key_text(public))
    typer.echo(f"wrote {public} (copy it into the supervisor's authorized keys) and {secret} (--key)", err=True)


def run_worker(
    connect: str | None,
    slots: int,
    name: str | None,
    directory: Path | None,
    claude_bin: str | None,
    server_key: Path | None,
    key: Path | None,
    insecure: bool,
    heartbeat: float,
    liveness: int,
) -> int:
    from agentproxy import config
    from agentproxy.agents.claude import resolve_agent_command
    from agentproxy.bridge import bundles, keys
    from agentproxy.worker.host import WorkerHost
    from agentproxy.worker.link import ClientKeys, Link

    if connect is None:
        raise UsageError("no supervisor given: pa-worker --connect tcp://HOST:PORT (see pa-worker --help)")
    if insecure and not keys.is_loopback(connect):
        raise UsageError(f"--insecure connects only to a loopback address, not {connect}: use keys")
    client_keys = None
    if not insecure:
        if server_key is None or key is None:
            raise UsageError("--server-key FILE and --key FILE are needed (or --insecure on loopback)")
        keys.read_public_certificate(server_key)  # a bad file is the user's error, said now
        keys.read_secret_certificate(key)
        client_keys = ClientKeys(key_file=key, server_key_file=server_key)
    agent_command = tuple(resolve_agent_command(claude_bin))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s pa-worker %(levelname)s %(message)s", stream=sys.stderr)
    host_name = name or socket.gethostname()
    repos = bundles.WorkerRepos(directory or config.data_dir() / "worker")
    fatal: list[str] = []
    done = threading.Event()
    link: Link
    host = WorkerHost.start(host_name, slots, repos, agent_command, capabilities(agent_command), lambda m: link.send(m))

    def on_fatal(reason: str) -> None:
        fatal.append(reason)
        done.set()

    link = Link(
        connect,
        f"{host_name}-{uuid.uuid4().hex[:8]}".encode(),
        keys_=client_keys,
        heartbeat_s=heartbeat,
        liveness=liveness,
        hello=lambda: host.proxy().hello().get(timeout=5.0),
        on_message=host.tell,
        on_fatal=on_fatal,
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    link.start()
    typer.echo(f"pa-worker {host_name}: {slots} slot(s), connecting to {connect}", err=True)
    while not done.wait(0.5):
        pass
    if fatal:
        typer.echo(f"pa-worker: error: {fatal[0]}", err=True)
    else:
        link.leave("SIGTERM")
        hand_back(host)
    link.stop()
    host.stop(timeout=HAND_BACK_TIMEOUT_S)
    return EXIT_FAILED if fatal else EXIT_OK


def hand_back(host: Any) -> None:
    """SIGTERM: the supervisor requeues this host's work at once; its agents are stopped, worktrees kept."""
    host.tell(HandBack())
    deadline = time.monotonic() + HAND_BACK_TIMEOUT_S
    while time.monotonic() < deadline and host.proxy().busy().get(timeout=HAND_BACK_TIMEOUT_S):
        time.sleep(0.1)


def capabilities(agent_command: tuple[str, ...]) -> dict[str, str]:
    """The agent CLIs this host has, with their versions: the supervisor sees what it runs."""
    try:
        done = subprocess.run(
            [*agent_command, "--version"], capture_output=True, text=True, timeout=VERSION_TIMEOUT_S, check=False
        )
        version = done.stdout.strip().split()[0] if done.stdout.strip() else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        version = "unknown"
    return {"claude": version}


def main() -> None:
    app(prog_name="pa-worker")
