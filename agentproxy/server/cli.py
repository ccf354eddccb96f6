"""`pa-server` (and `python -m agentproxy.server`): serve the API and the dashboard.

Safe by default: it binds 127.0.0.1; any other address needs the bearer token; working directories
and screenshots must lie under the allowed roots (default: the directory it starts in).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agentproxy.errors import UsageError

if TYPE_CHECKING:
    from agentproxy.options import ListenOptions
    from agentproxy.server.app import ServerConfig

EXIT_USAGE = 2

app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to bind; off loopback a bearer token is required.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to bind.")] = 8000,
    allow_root: Annotated[
        list[Path] | None,
        typer.Option("--allow-root", metavar="DIR", help="Where tasks may run (repeatable; default: this directory)."),
    ] = None,
    cors_origin: Annotated[
        list[str] | None, typer.Option("--cors-origin", metavar="ORIGIN", help="Allow this browser origin (CORS).")
    ] = None,
    claude_bin: Annotated[str | None, typer.Option("--claude-bin", metavar="CMD", help="The Claude Code CLI.")] = None,
    listen: Annotated[
        str | None,
        typer.Option("--listen", metavar="tcp://ADDR:PORT", help="Take remote workers (pa-worker) for every task."),
    ] = None,
    listen_insecure: Annotated[
        str | None,
        typer.Option("--listen-insecure", metavar="tcp://127.0.0.1:PORT", help="--listen without keys: loopback only."),
    ] = None,
    authorized_keys: Annotated[
        Path | None, typer.Option("--authorized-keys", metavar="DIR", help="The workers' public certificates.")
    ] = None,
    local_slots: Annotated[
        int | None,
        typer.Option("--local-slots", metavar="N", min=0, max=64, help="With --listen: agents here at once per task."),
    ] = None,
    heartbeat: Annotated[float, typer.Option("--heartbeat", metavar="SECONDS", min=0.05)] = 1.0,
    liveness: Annotated[int, typer.Option("--liveness", metavar="N", min=1, max=100)] = 3,
) -> None:
    """Serve agentproxy over HTTP: POST /task, /health, /sessions, /session/{id}, /stop, and the dashboard at /."""
    from agentproxy.launch import listen_options

    try:
        workers = listen_options(
            {
                "listen": listen,
                "listen_insecure": listen_insecure,
                "authorized_keys": authorized_keys,
                "local_slots": local_slots,
                "heartbeat": heartbeat,
                "liveness": liveness,
            }
        )
        config, banner = configure(host, allow_root or [], cors_origin or [], claude_bin, workers)
    except UsageError as exc:
        typer.echo(f"pa-server: error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    import uvicorn

    from agentproxy.server.app import create_app

    for line in banner:
        typer.echo(line, err=True)
    try:
        uvicorn.run(create_app(config), host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
    finally:
        if config.fleet is not None:
            config.fleet.stop()


def configure(
    host: str, roots: list[Path], origins: list[str], claude_bin: str | None, workers: ListenOptions | None
) -> tuple[ServerConfig, list[str]]:
    from agentproxy import config
    from agentproxy.server.app import ServerConfig
    from agentproxy.server.security import AllowedRoots, server_token

    for root in roots:
        if not root.expanduser().resolve().is_dir():
            raise UsageError(f"--allow-root {root}: not an existing directory")
    allowed = AllowedRoots.of([root.expanduser() for root in roots], Path.cwd())
    banner = [f"pa-server: tasks may run under {', '.join(map(str, allowed.roots))}"]
    token = None
    if not loopback(host):
        found = server_token(config.config_dir())
        token = found.value
        if found.made_now:
            banner.append(f"pa-server: bearer token (printed once, kept in {found.where}): {token}")
        else:
            banner.append(f"pa-server: bearer token required (from {found.where})")
    config.load_dotenv_files(Path.cwd())
    fleet = None
    if workers is not None:
        from agentproxy.bridge.fleet import Fleet  # lazy: zmq only with --listen

        fleet = Fleet(workers)  # bound now: a bad or busy address is exit 2 before the server starts
        banner.append(f"pa-server: {fleet.about}")
    server = ServerConfig(
        roots=allowed, token=token, cors_origins=tuple(origins), claude_bin=claude_bin, fleet=fleet, listen=workers
    )
    return server, banner


def loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main() -> None:
    app(prog_name="pa-server")
