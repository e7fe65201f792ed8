"""``liteflow dashboard``: serve the web dashboard over a store with uvicorn."""

from __future__ import annotations

import ipaddress
import logging
import signal
from types import FrameType

import click

from ._app import Backends, backend_options, cli

logger = logging.getLogger("liteflow")


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@cli.command(short_help="Serve the web dashboard.")
@click.option("--host", "bind", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True, help="Port to listen on.")
@click.option(
    "--token",
    envvar="LITEFLOW_DASHBOARD_TOKEN",
    metavar="T",
    help="Allow actions (suspend, resume, terminate, retry, publish) to whoever signs in with T "
    "(env LITEFLOW_DASHBOARD_TOKEN). Without it the dashboard is read-only.",
)
@backend_options
def dashboard(bind: str, port: int, token: str | None, backends: Backends) -> None:
    """Serve the dashboard at http://HOST:PORT until interrupted: workflows by status, each one's
    graph, steps, data and errors, definitions (with --app), events, /health and /metrics."""
    try:
        import uvicorn

        from liteflow.dashboard import create_app
    except ImportError as error:
        raise click.ClickException(
            f'the dashboard needs {error.name}: pip install "liteflow-engine[dashboard]"'
        ) from error
    host = backends.host()
    try:
        from liteflow.metrics import enable_metrics

        enable_metrics(host)  # /metrics then reports the store's runnable instances
    except Exception:
        logger.debug("no metrics for the dashboard", exc_info=True)
    app = create_app(host=host, token=token or None)
    if not _is_loopback(bind):
        click.echo(
            f"warning: listening on {bind}: anyone who can reach it can read your workflows' data"
            " (put it behind HTTPS and your own authentication)",
            err=True,
        )
    mode = "actions need the token" if token else "read-only (no --token)"
    click.echo(f"liteflow dashboard at http://{bind}:{port}/ ({mode})", err=True)
    # uvicorn stops gracefully on SIGTERM, then raises the signal again for the handler it found:
    # with this one in place the command ends with status 0, as ``liteflow worker`` does (and a
    # SIGTERM before uvicorn is listening ends it at once).
    signal.signal(signal.SIGTERM, _exit)
    uvicorn.run(app, host=bind, port=port, log_level="warning", access_log=False)


def _exit(signum: int, frame: FrameType | None) -> None:
    click.echo("liteflow dashboard stopped", err=True)
    raise SystemExit(0)
