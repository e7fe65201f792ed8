"""``liteflow worker``: run a host for the user's workflows until SIGINT or SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import Any

import click

from liteflow.core import WorkflowHost

from ._app import Backends, backend_options, cli
from ._loader import load_target, register_all

logger = logging.getLogger("liteflow")
_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@cli.command(short_help="Run workflows until stopped.")
@click.argument("target", metavar="MODULE[:ATTR]")
@click.option(
    "--concurrency", "-c", type=click.IntRange(min=1), default=None, help="Threads running steps (default 4)."
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.01),
    default=None,
    help="Seconds between looks at the store for due work and events published elsewhere (default 5).",
)
@click.option(
    "--stop-timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="On SIGINT/SIGTERM, seconds to let running steps finish before handing them back (default 10).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=1, max=65535),
    default=None,
    help="Serve Prometheus metrics at http://ADDR:PORT/metrics (needs the prometheus extra).",
)
@click.option("--metrics-addr", default="127.0.0.1", show_default=True, help="Address the metrics server listens on.")
@backend_options
def worker(
    target: str,
    concurrency: int | None,
    poll_interval: float | None,
    stop_timeout: float | None,
    metrics_port: int | None,
    metrics_addr: str,
    backends: Backends,
) -> None:
    """Run the workflows of MODULE until SIGINT or SIGTERM.

    Without ATTR, every Workflow subclass defined in MODULE is registered; ATTR may name a
    configured WorkflowHost, a workflow, a list of workflows, or a function returning one of them.
    MODULE may also be a path to a .py file. Workers on the same store, queue and lock form a
    cluster.

    On the first SIGINT or SIGTERM the worker takes no new work and gives running steps up to
    --stop-timeout seconds to finish and be saved; a step still running then is handed back:
    another worker, or this one after a restart, runs it again from its last saved state. A second
    signal exits at once, handing back every running step.
    """
    # A worker runs for long: what it does (INFO) and what its drivers warn about are worth a log.
    for name, level in (("liteflow", logging.INFO), ("", logging.WARNING), ("psycopg", logging.WARNING)):
        logging.getLogger(name).setLevel(min(logging.getLogger(name).getEffectiveLevel(), level))
    options: dict[str, Any] = {
        name: value
        for name, value in (
            ("max_concurrent_workflows", concurrency),
            ("poll_interval", poll_interval),
            ("stop_timeout", stop_timeout),
        )
        if value is not None
    }
    # Threads inherit their creator's signal mask: with SIGINT and SIGTERM blocked until the host
    # runs, every thread made meanwhile (the host's, the drivers') refuses them, so the kernel hands
    # them to this thread, the one Python runs handlers in, even while it waits in a join.
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        host, names = _host(target, backends, options)
        if metrics_port is not None:
            from liteflow.metrics import enable_metrics, serve_metrics

            enable_metrics(host)
            serve_metrics(metrics_port, addr=metrics_addr)
            click.echo(f"liteflow worker metrics at http://{metrics_addr}:{metrics_port}/metrics", err=True)
        _run(host, names)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)


def _host(target: str, backends: Backends, options: dict[str, Any]) -> tuple[WorkflowHost, list[str]]:
    loaded = load_target(target)
    if isinstance(loaded, WorkflowHost):
        if backends.store or backends.queue or backends.lock or options:
            raise click.UsageError(
                f"{target} is a configured host: its own store, queue, lock and options apply; "
                "drop --store/--queue/--lock/--concurrency/--poll-interval/--stop-timeout (and the LITEFLOW_ variables)"
            )
        return loaded, register_all(loaded, loaded)
    host = Backends(backends.store, backends.queue, backends.lock, None).host(create=True, **options)
    return host, register_all(host, loaded)


def _run(host: WorkflowHost, names: list[str]) -> None:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            # The usual second Ctrl+C: leave now. Running steps are handed back as if this
            # process had died: they run again elsewhere once their locks lapse.
            click.echo("liteflow worker: second signal, exiting now; running steps are handed back", err=True)
            os._exit(1)
        stop.set()

    for signum in _SIGNALS:
        signal.signal(signum, on_signal)
    host.start()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)  # a signal that came meanwhile is handled now
    click.echo(
        f"liteflow worker ready: {', '.join(names)}; {host.options.max_concurrent_workflows} threads "
        "(stop with Ctrl+C or SIGTERM)",
        err=True,
    )
    stop.wait()  # the signal handler runs in this thread, interrupting the wait
    click.echo(
        f"liteflow worker stopping: running steps have {host.options.stop_timeout.total_seconds():g} s to finish",
        err=True,
    )
    host.stop()
    host.persistence.close()
    click.echo("liteflow worker stopped", err=True)
