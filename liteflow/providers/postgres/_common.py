"""What the PostgreSQL providers share: URLs, schema names, connection pools, and the listener
that turns ``NOTIFY`` into in-process wake-ups."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from liteflow.core._errors import ConfigurationError, ProviderError

logger = logging.getLogger("liteflow.providers.postgres")

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,47}\Z")
_SCHEMES = ("postgresql", "postgres")
CONNECT_TIMEOUT = 10.0
"""Seconds to wait for the pool's first connection, or for a free connection, before failing."""


def check_schema(schema: str) -> str:
    """The schema name, if it is a plain lower-case identifier: it is interpolated into SQL (quoted)
    and into ``NOTIFY`` channel names, which are limited to 63 bytes."""
    if not isinstance(schema, str) or not _SCHEMA_NAME.match(schema):
        raise ConfigurationError(
            f"schema must be a lower-case identifier of at most 48 characters ([a-z_][a-z0-9_]*), got {schema!r}"
        )
    return schema


def split_url(url: str, options: Mapping[str, Callable[[str], Any]]) -> tuple[str, dict[str, Any]]:
    """Take LiteFlow's own query parameters (``options``: name -> parser) out of a
    ``postgresql://`` or ``postgres://`` URL; the rest, libpq parameters included, is the
    connection string handed to psycopg."""
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise ConfigurationError(f"not a postgresql:// URL: {url!r}")
    ours: dict[str, Any] = {}
    theirs: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in options:
            try:
                ours[name] = options[name](value)
            except ValueError as error:
                raise ConfigurationError(f"bad value for {name!r} in {url!r}") from error
        else:
            theirs.append((name, value))
    clean = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(theirs)))
    return clean, ours


def flag(value: str) -> bool:
    """A boolean URL option."""
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


POOL_OPTIONS: dict[str, Callable[[str], Any]] = {
    "schema": str,
    "min_size": int,
    "max_size": int,
    "synchronous_commit": flag,
}
"""URL query options the queue and lock providers share (each adds its own)."""


def open_pool(
    conninfo: str, *, min_size: int, max_size: int, name: str, synchronous_commit: bool = True
) -> ConnectionPool:
    """An open pool of autocommit connections; fails with :class:`ProviderError` if the server
    cannot be reached within :data:`CONNECT_TIMEOUT`. ``synchronous_commit=False`` makes the
    pool's commits return before their WAL is flushed (see the queue and lock providers)."""
    if not 1 <= min_size <= max_size:
        raise ConfigurationError(f"need 1 <= min_size <= max_size, got min_size={min_size}, max_size={max_size}")

    def configure(connection: psycopg.Connection[Any]) -> None:
        if not synchronous_commit:
            connection.execute("SET synchronous_commit = off")

    pool: ConnectionPool = ConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        kwargs={"autocommit": True},
        configure=configure,
        timeout=CONNECT_TIMEOUT,
        name=name,
        open=False,
    )
    try:
        pool.open(wait=True, timeout=CONNECT_TIMEOUT)
    except PoolTimeout as error:
        pool.close()
        raise ProviderError(f"cannot connect to PostgreSQL ({_redacted(conninfo)}): {error}") from error
    return pool


def _redacted(conninfo: str) -> str:
    """The connection string without its password, for error messages."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", re.sub(r"password=\S+", "password=***", conninfo))


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn driver and pool failures into :class:`ProviderError` (the original as ``__cause__``)."""
    try:
        yield
    except psycopg.Error as error:
        raise ProviderError(f"PostgreSQL failed to {what}: {error}") from error
    except PoolTimeout as error:
        raise ProviderError(f"no PostgreSQL connection free to {what}: {error}") from error


def utc(value: datetime) -> datetime:
    """``value`` as an aware datetime; a naive one is taken to be UTC (as the SQLite provider does)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class Listener:
    r"""One background connection that ``LISTEN``s on one channel and counts notifications per
    payload, so that any number of threads can wait for "something new under this payload"
    without a connection each and without polling.

    Two ways to wait:

    * :meth:`generation` / :meth:`wait` (every waiter wakes on every notification): a waiter reads
      the generation *before* checking the database, and after finding nothing waits for it to
      change. The listener is subscribed before the first check is ever made, so a notification
      sent by a commit the check did not see always arrives after the generation was read: no
      wake-up is lost while the connection is up.
    * :meth:`epoch` / :meth:`wait_ticket` / :meth:`spend` (one waiter wakes per notification): each
      notification adds a *ticket* under its payload and wakes one waiter, which takes the ticket.
      For consumers that each want one item per notification (the queue: a notification is one
      enqueued row), so that an enqueue does not wake every idle worker of the process to race for
      one row. A consumer that takes an item without having waited calls :meth:`spend`, so
      tickets follow the items still waiting; stale tickets (items taken by another node) cost one
      wasted check each, never a lost wake-up: a ticket is only removed by a waiter that goes on
      to check, or for an item that was taken.

    When the connection drops, every waiter of both kinds is woken (they re-check) and the listener
    reconnects; callers also re-check every second or so to cover notifications missed while it
    was down.
    """

    def __init__(self, conninfo: str, channel: str) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._mutex = threading.Lock()
        # One condition per payload (on one lock), so that a ticket wakes a waiter of its payload.
        self._conditions: dict[str, threading.Condition] = {}
        self._generations: dict[str, int] = {}
        self._tickets: dict[str, int] = {}
        self._generation_waiters: dict[str, int] = {}
        self._epoch = 0
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._connection: psycopg.Connection[Any] | None = None
        self._thread = threading.Thread(target=self._run, name=f"liteflow-pg-listen-{channel}", daemon=True)
        self._thread.start()
        # Wait for the first LISTEN so that callers never check before being subscribed; if the
        # server is down the callers still work, by re-checking on a timer.
        self._ready.wait(CONNECT_TIMEOUT)

    def _condition(self, payload: str) -> threading.Condition:
        condition = self._conditions.get(payload)
        if condition is None:
            condition = self._conditions[payload] = threading.Condition(self._mutex)
        return condition

    def generation(self, payload: str) -> int:
        with self._mutex:
            return self._generations.get(payload, 0)

    def wait(self, payload: str, seen: int, timeout: float) -> bool:
        """Wait until a notification for ``payload`` arrives after ``seen`` was read, the listener is
        closed or reconnects, or ``timeout`` seconds pass; True unless it timed out."""
        with self._mutex:
            self._generation_waiters[payload] = self._generation_waiters.get(payload, 0) + 1
            try:
                return self._condition(payload).wait_for(
                    lambda: self._stopping.is_set() or self._generations.get(payload, 0) != seen, timeout
                )
            finally:
                self._generation_waiters[payload] -= 1

    def epoch(self) -> int:
        """Changes whenever every waiter must re-check (reconnection, close): read it before
        checking the database, and pass it to :meth:`wait_ticket`."""
        with self._mutex:
            return self._epoch

    def wait_ticket(self, payload: str, seen_epoch: int, timeout: float) -> bool:
        """Wait until a ticket for ``payload`` is free (and take it), the epoch moved on from
        ``seen_epoch``, the listener is closed, or ``timeout`` seconds pass. True if a ticket was
        taken: the caller's next check stands for that notification."""
        with self._mutex:
            self._condition(payload).wait_for(
                lambda: self._tickets.get(payload, 0) > 0 or self._epoch != seen_epoch or self._stopping.is_set(),
                timeout,
            )
            if self._tickets.get(payload, 0) > 0:
                self._tickets[payload] -= 1
                return True
            return False

    def spend(self, payload: str) -> None:
        """An item of ``payload`` was taken without waiting for a ticket: drop one, if any."""
        with self._mutex:
            if self._tickets.get(payload, 0) > 0:
                self._tickets[payload] -= 1

    @property
    def closed(self) -> bool:
        return self._stopping.is_set()

    def _bump(self, payloads: list[str] | None) -> None:
        with self._mutex:
            if payloads is None:  # everyone re-checks
                self._epoch += 1
                for payload in self._generations:
                    self._generations[payload] += 1
                for condition in self._conditions.values():
                    condition.notify_all()
                return
            for payload in payloads:
                self._generations[payload] = self._generations.get(payload, 0) + 1
                self._tickets[payload] = self._tickets.get(payload, 0) + 1
                waiting = self._conditions.get(payload)
                if waiting is not None:
                    # Generation waiters all want to know; ticket waiters, one per ticket.
                    if self._generation_waiters.get(payload, 0):
                        waiting.notify_all()
                    else:
                        waiting.notify(1)

    def _run(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT)) as conn:
                    self._connection = conn
                    conn.execute(f'LISTEN "{self._channel}"')
                    self._ready.set()
                    backoff = 0.1
                    self._bump(None)  # anything sent while we were not listening: re-check
                    while not self._stopping.is_set():
                        # Each notification is passed on as it arrives (the generator only ends at
                        # the timeout); the short timeout bounds how long close() waits for us.
                        for notification in conn.notifies(timeout=0.25):
                            self._bump([notification.payload])
                            if self._stopping.is_set():
                                break
            except psycopg.Error as error:
                if self._stopping.is_set():
                    break
                logger.warning("LISTEN connection to PostgreSQL lost, reconnecting in %.1f s: %s", backoff, error)
                self._ready.set()
                self._bump(None)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                self._connection = None

    def close(self) -> None:
        """Stop listening and wake every waiter."""
        self._stopping.set()
        self._bump(None)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
