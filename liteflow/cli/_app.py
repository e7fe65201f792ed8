"""The ``liteflow`` command group, the options every command shares, and how failures become one
line on stderr and an exit status: 0 success, 1 a failed operation, 2 bad usage."""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import click

from liteflow import __version__
from liteflow.core import (
    ConfigurationError,
    InvalidArgumentError,
    LiteFlowError,
    LocalLockProvider,
    ProviderUnavailableError,
    WorkflowHost,
    WorkflowNotRegisteredError,
    configure_workflow_host,
)

from ._loader import load_target, register_all

EXIT_FAILED = 1
EXIT_USAGE = 2

logger = logging.getLogger("liteflow")
F = TypeVar("F", bound=Callable[..., Any])


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog='Shell completion (bash): eval "$(_LITEFLOW_COMPLETE=bash_source liteflow)"; '
    "zsh and fish: zsh_source, fish_source.",
)
@click.version_option(version=__version__, prog_name="liteflow")
def cli() -> None:
    """Run LiteFlow workers, see the workflows in a store, control and repair them.

    Every command reads the store given by --store (or LITEFLOW_STORE); commands that change
    workflows also use --queue and --lock (LITEFLOW_QUEUE, LITEFLOW_LOCK) when given, so that
    running workers hear of the change at once rather than at their next poll.
    """


@dataclass(frozen=True)
class Backends:
    """Where the workflows live, as given on the command line or in the environment."""

    store: str | None
    queue: str | None
    lock: str | None
    app: str | None

    def host(self, *, create: bool = False, **options: Any) -> WorkflowHost:
        """A host on these backends (not started: this process runs no step unless it is a worker),
        with the workflow definitions of ``--app`` registered when it is given. Only with ``create``
        may a SQLite store be a new file."""
        if not self.store:
            raise click.UsageError("no store given: pass --store URL or set LITEFLOW_STORE")
        if self.store.startswith("memory:"):
            raise click.UsageError("memory:// lives inside one process; give the store your workers use")
        if not create:
            _check_sqlite_file(self.store)
        host = configure_workflow_host(self.store, self.queue or None, self.lock or None, **options)
        # Closed when the command ends: connections end cleanly and any lock taken is released.
        click.get_current_context().call_on_close(lambda: _close(host))
        if self.app:
            target = load_target(self.app)
            register_all(host, target)
        return host


def _close(host: WorkflowHost) -> None:
    for resource in (host.queue, host.lock, host.persistence):
        try:
            resource.close()
        except Exception:
            logger.debug("closing %r failed", resource, exc_info=True)


def shares_lock(host: WorkflowHost) -> bool:
    """Whether this process's workflow locks are seen by the workers (an in-process lock is not)."""
    return not isinstance(host.lock, LocalLockProvider)


def _check_sqlite_file(url: str) -> None:
    """Opening a SQLite URL creates the file: a mistyped path would show an empty store."""
    if not url.startswith("sqlite:"):
        return
    location = url.partition("://")[2].partition("?")[0]
    if location.startswith("/") and location not in ("/", "/:memory:"):
        path = location[1:]
        if not os.path.exists(path):
            raise click.BadParameter(f"no SQLite database at {os.path.abspath(path)}", param_hint="--store")


_BACKEND_OPTIONS = [
    click.option("--store", metavar="URL", envvar="LITEFLOW_STORE", help="Store URL (env LITEFLOW_STORE)."),
    click.option("--queue", metavar="URL", envvar="LITEFLOW_QUEUE", help="Queue URL (env LITEFLOW_QUEUE)."),
    click.option("--lock", metavar="URL", envvar="LITEFLOW_LOCK", help="Lock URL (env LITEFLOW_LOCK)."),
    click.option(
        "--app",
        metavar="MODULE[:ATTR]",
        envvar="LITEFLOW_APP",
        help="Load your workflow definitions (as the worker does) for step names, resume and repair "
        "(env LITEFLOW_APP).",
    ),
    click.option("--debug", is_flag=True, help="Log debug output and show tracebacks of errors."),
]


def backend_options(func: F) -> F:
    """Add --store/--queue/--lock/--app/--debug to a command; it receives them as ``backends``."""

    @functools.wraps(func)
    def wrapper(*args: Any, store: str, queue: str, lock: str, app: str, debug: bool, **kwargs: Any) -> Any:
        return func(*args, backends=Backends(store, queue, lock, app), **kwargs)

    for option in reversed(_BACKEND_OPTIONS):
        wrapper = option(wrapper)
    return wrapper  # type: ignore[return-value]


if TYPE_CHECKING:
    _ParamType = click.ParamType[timedelta]  # generic in recent Click only
else:
    _ParamType = click.ParamType


class Duration(_ParamType):
    """A duration such as ``90s``, ``15m``, ``1h30m``, ``2d`` or ``1w``."""

    name = "duration"
    _UNITS: ClassVar[dict[str, str]] = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    _PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        text = str(value).strip().lower()
        parts = self._PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            self.fail(f"{value!r} is not a duration like 30s, 15m, 1h30m, 2d or 1w", param, ctx)
        total = timedelta()
        for number, unit in parts:
            total += timedelta(**{self._UNITS[unit]: float(number)})
        return total


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON only (for scripts).")(func)


def _exit_code(error: LiteFlowError) -> int:
    if isinstance(error, InvalidArgumentError):
        return EXIT_USAGE
    if isinstance(error, ConfigurationError) and not isinstance(error, ProviderUnavailableError):
        return EXIT_USAGE
    return EXIT_FAILED


def _one_line(message: str) -> str:
    return " ".join(message.split())


def _fail(message: str, code: int, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    click.echo(f"error: {_one_line(message)}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """The console script: run ``cli`` and turn any failure into one line and an exit status."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    # Drivers' own retry chatter (psycopg's pool, say) would bury the one line an error gets.
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.ERROR, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("liteflow").setLevel(logging.DEBUG if debug else logging.WARNING)
    logging.getLogger("psycopg").setLevel(logging.DEBUG if debug else logging.ERROR)  # else it picks WARNING
    try:
        result = cli.main(args=args, prog_name="liteflow", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as error:  # plain ``liteflow``: show what it can do
        click.echo(error.format_message())
        sys.exit(EXIT_USAGE)
    except click.UsageError as error:
        command = error.ctx.command_path if error.ctx is not None else "liteflow"
        _fail(f"{error.format_message()} (see '{command} --help')", EXIT_USAGE, debug)
    except click.ClickException as error:
        _fail(error.format_message(), error.exit_code, debug)
    except click.Abort:
        _fail("aborted", EXIT_FAILED, debug)
    except WorkflowNotRegisteredError as error:
        hint = "" if "--app" in args or os.environ.get("LITEFLOW_APP") else "; load your workflows with --app MODULE"
        _fail(f"{error}{hint}", EXIT_FAILED, debug)
    except LiteFlowError as error:
        _fail(str(error) or type(error).__name__, _exit_code(error), debug)
    except KeyboardInterrupt:
        _fail("interrupted", 130, debug)
    except Exception as error:
        _fail(f"{type(error).__name__}: {error} (run with --debug for the traceback)", EXIT_FAILED, debug)
    sys.exit(result if isinstance(result, int) else 0)
