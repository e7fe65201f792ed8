"""What the PostgreSQL providers share: URLs, schema names, connection pools, and the listener
that turns ``NOTIFY`` into in-process wake-ups."""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from liteflow.providers.spi import (
    Backoff,
    ConfigurationError,
    OutageLog,
    ProviderError,
    ProviderUnavailableError,
    split_url,
)

logger = logging.getLogger("liteflow.providers.postgres")

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,47}\Z")
_SCHEMES = ("postgresql", "postgres")


def check_schema(schema: str) -> str:
    """The schema name, if it is a plain lower-case identifier: it is interpolated into SQL (quoted)
    and into ``NOTIFY`` channel names, which are limited to 63 bytes."""
    if not isinstance(schema, str) or not _SCHEMA_NAME.match(schema):
        raise ConfigurationError(
            f"schema must be a lower-case identifier of at most 48 characters ([a-z_][a-z0-9_]*), got {schema!r}"
        )
    return schema


def conninfo_from_url(url: str, options: Mapping[str, Callable[[str], Any]]) -> tuple[str, dict[str, Any]]:
    """Take LiteFlow's own query parameters (``options``: name -> parser) out of a
    ``postgresql://`` or ``postgres://`` URL; the rest, libpq parameters included, is the
    connection string handed to psycopg."""
    clean, ours = split_url(url, options, schemes=_SCHEMES)
    return urlunsplit(urlsplit(clean)._replace(scheme="postgresql")), ours


def flag(value: str) -> bool:
    """A boolean URL option."""
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


def seconds(value: str) -> float:
    """A positive number of seconds, as a URL option."""
    number = float(value)
    if not number > 0:
        raise ValueError(value)
    return number


POOL_OPTIONS: dict[str, Callable[[str], Any]] = {
    "schema": str,
    "min_size": int,
    "max_size": int,
    "synchronous_commit": flag,
    "connect_timeout": seconds,
    "statement_timeout": seconds,
}
"""URL query options the providers share (each adds its own)."""

CONNECT_TIMEOUT = 5.0
"""Default seconds to open a connection, or to wait for a free one in the pool, before failing."""
STATEMENT_TIMEOUT = 15.0
"""Default seconds one call may wait for the server: the server cancels a statement running longer,
and a call with no answer a little after that has its connection broken (a hung server or network)."""
_CLIENT_GRACE = 2.0
"""Seconds the client waits past ``statement_timeout`` for the server's own cancellation."""
_SUSPECT_WINDOW = 30.0
"""Seconds after a connection failure during which pooled connections are checked before use: a
server restart leaves every idle pooled connection dead, and each would otherwise fail one call."""
_KEEPALIVES = {"keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "5", "keepalives_count": "3"}
"""TCP keepalives, unless the connection string sets them: a connection to a server that vanished
without closing it (power loss, a network partition) fails within about 25 s instead of never."""

# SQLSTATE classes and codes meaning "the server cannot do it now", not "this call is wrong":
# connection exception, insufficient resources (disk full, out of memory, too many connections),
# operator intervention (shutdown, statement timeout, cancel), system error; read-only transaction
# (a standby, or default_transaction_read_only), lock not available, deadlock.
_UNAVAILABLE_CLASSES = frozenset({"08", "53", "57", "58"})
_UNAVAILABLE_CODES = frozenset({"25006", "55P03", "40P01"})


def unavailable(error: BaseException) -> bool:
    """Whether a driver error means the server is unreachable, down, full, read-only or locked."""
    if isinstance(error, PoolTimeout):
        return True
    if not isinstance(error, psycopg.Error):
        return False
    state = error.sqlstate
    if state is None:  # raised by the client: the connection broke, or could not be made
        return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)
    return state[:2] in _UNAVAILABLE_CLASSES or state in _UNAVAILABLE_CODES


class _Watch:
    """The block :meth:`Deadlines.watch` bounds; a class rather than a @contextmanager generator,
    since it wraps every call."""

    __slots__ = ("_conn", "_deadlines", "_key")

    def __init__(self, deadlines: Deadlines, conn: psycopg.Connection[Any]) -> None:
        self._deadlines, self._conn = deadlines, conn

    def __enter__(self) -> None:
        self._key = self._deadlines._start(self._conn)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: Any) -> None:
        expired = self._deadlines._end(self._key)
        if expired and isinstance(error, psycopg.Error):
            raise ProviderUnavailableError(
                f"PostgreSQL did not answer within {self._deadlines.limit:g} s; the connection was dropped"
            ) from error


class Deadlines:
    """Breaks the connection of a call that has waited for the server longer than ``limit`` seconds.

    psycopg's blocking calls have no client-side timeout: a server (or network) that stops
    answering without closing the connection would hang the caller for good, and the server's
    ``statement_timeout`` cannot help since the server never sees the statement. One watchdog
    thread per pool shuts the socket down under an overdue call, which then fails at once with
    :class:`ProviderUnavailableError`; the pool discards the broken connection.
    """

    def __init__(self, limit: float, name: str) -> None:
        self.limit = limit
        self._name = name
        self._keys = itertools.count()
        self._wakeup = threading.Condition()
        self._calls: dict[int, tuple[float, psycopg.Connection[Any]]] = {}
        self._expired: set[int] = set()
        self._idle = True
        self._closed = False
        self._thread: threading.Thread | None = None

    def watch(self, conn: psycopg.Connection[Any]) -> _Watch:
        """Break ``conn`` if the block has not ended ``limit`` seconds from now; a call whose
        connection was broken raises :class:`ProviderUnavailableError` saying so."""
        return _Watch(self, conn)

    def _start(self, conn: psycopg.Connection[Any]) -> int:
        key = next(self._keys)
        with self._wakeup:
            self._calls[key] = (time.monotonic() + self.limit, conn)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"{self._name}-deadlines", daemon=True)
                self._thread.start()
            elif self._idle:
                self._wakeup.notify()
        return key

    def _end(self, key: int) -> bool:
        """Forget the call ``key``; whether its deadline had passed (its connection broken)."""
        with self._wakeup:
            self._calls.pop(key, None)
            if key not in self._expired:
                return False
            self._expired.discard(key)
            return True

    def close(self) -> None:
        with self._wakeup:
            self._closed = True
            self._wakeup.notify()

    def _run(self) -> None:
        with self._wakeup:
            while not self._closed:
                try:
                    now = time.monotonic()
                    for key, (deadline, conn) in list(self._calls.items()):
                        if deadline <= now:
                            del self._calls[key]
                            self._expired.add(key)
                            _break(conn)
                    self._idle = not self._calls
                    # Deadlines only grow with registration order, so no new call can be due sooner.
                    wait = None if self._idle else max(min(d for d, _ in self._calls.values()) - now, 0.01)
                    self._wakeup.wait(wait)
                except Exception:  # never let the watchdog die: calls would hang again
                    logger.exception("PostgreSQL deadline watchdog failed; carrying on")
                    self._wakeup.wait(1.0)


def _break(conn: psycopg.Connection[Any]) -> None:
    """Shut the socket down under a blocked call: its wait wakes up to a closed connection."""
    if _shut_down(conn):
        logger.warning("no answer from PostgreSQL in time; dropping the connection")


def _shut_down(conn: psycopg.Connection[Any]) -> bool:
    """Shut down the socket of ``conn`` (which must not be closed meanwhile: its descriptor could
    be another socket's by then); False if it was closed already."""
    try:
        duplicate = socket.socket(fileno=os.dup(conn.pgconn.socket))
        try:
            duplicate.shutdown(socket.SHUT_RDWR)
        finally:
            duplicate.close()
    except (OSError, psycopg.Error):
        return False  # closed meanwhile: nothing to break
    return True


class Database:
    """A pool of autocommit connections whose every wait is bounded: opening a connection or
    waiting for a free one (``connect_timeout``), and each call (``statement_timeout``, enforced by
    the server and, should it not answer at all, by :class:`Deadlines`).

    Use :meth:`connection` as ``psycopg_pool.ConnectionPool.connection`` is used.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        min_size: int,
        max_size: int,
        name: str,
        synchronous_commit: bool = True,
        connect_timeout: float = CONNECT_TIMEOUT,
        statement_timeout: float = STATEMENT_TIMEOUT,
    ) -> None:
        if not 1 <= min_size <= max_size:
            raise ConfigurationError(f"need 1 <= min_size <= max_size, got min_size={min_size}, max_size={max_size}")
        if not connect_timeout > 0 or not statement_timeout > 0:
            raise ConfigurationError(
                f"timeouts must be positive, got connect_timeout={connect_timeout}, "
                f"statement_timeout={statement_timeout}"
            )
        self.connect_timeout = float(connect_timeout)
        self.statement_timeout = float(statement_timeout)
        self.conninfo = with_timeouts(conninfo, connect_timeout, statement_timeout, synchronous_commit)
        # Which server, database and role: providers given the same connection string share them.
        self.target: frozenset[tuple[str, object]] = frozenset(conninfo_to_dict(conninfo).items())
        self._deadlines = Deadlines(statement_timeout + _CLIENT_GRACE, name)
        self._failed_at = -_SUSPECT_WINDOW
        self._pool: ConnectionPool = ConnectionPool(
            self.conninfo,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True},
            check=self._check,
            timeout=connect_timeout,
            name=name,
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=max(connect_timeout, 2.0))
        except PoolTimeout as error:
            self.close()
            raise ProviderUnavailableError(f"cannot connect to PostgreSQL ({_redacted(conninfo)}): {error}") from error

    def connection(self) -> _Lease:
        """A pooled connection for one call (or one transaction), its waits bounded: ``with
        database.connection() as conn:``."""
        return _Lease(self)

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        """The pool's check before handing out a connection: a round trip, but only shortly after
        a failure, when idle connections may be dead (otherwise a call costs no extra round trip)."""
        if time.monotonic() - self._failed_at < _SUSPECT_WINDOW:
            try:
                with self._deadlines.watch(conn):
                    ConnectionPool.check_connection(conn)
            except ProviderUnavailableError as error:  # the pool discards only on a driver error
                raise psycopg.OperationalError(str(error)) from error

    def close(self) -> None:
        self._deadlines.close()
        self._pool.close()


def cursor(conn: psycopg.Connection[Any]) -> psycopg.Cursor[Any]:
    """The connection's own cursor, kept with it for the next call: ``conn.execute`` makes a new
    one each time, which costs about a third of a short statement's client time."""
    kept: psycopg.Cursor[Any] | None = getattr(conn, "_liteflow_cursor", None)
    if kept is None or kept.closed:
        kept = conn.cursor()
        conn._liteflow_cursor = kept  # type: ignore[attr-defined]
    return kept


_IN_TRANSACTION = frozenset({psycopg.pq.TransactionStatus.INTRANS, psycopg.pq.TransactionStatus.INERROR})


class _Lease:
    """The block :meth:`Database.connection` lends a connection to: the pool's ``getconn`` and
    ``putconn`` (which rolls back a connection returned inside a transaction, and replaces a broken
    one) around :class:`Deadlines`' watch. A class rather than the pool's ``connection()`` inside a
    @contextmanager generator: it wraps every call, and those cost two generators and a
    ``with conn`` (a commit that has nothing to do in autocommit) more each time."""

    __slots__ = ("_conn", "_database", "_key")

    def __init__(self, database: Database) -> None:
        self._database = database

    def __enter__(self) -> psycopg.Connection[Any]:
        database = self._database
        try:
            conn = self._conn = database._pool.getconn()
        except psycopg.Error as error:
            if unavailable(error):
                database._failed_at = time.monotonic()
            raise
        self._key = database._deadlines._start(conn)
        return conn

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: Any) -> None:
        database = self._database
        expired = database._deadlines._end(self._key)
        if error is not None and self._conn.pgconn.transaction_status in _IN_TRANSACTION:
            # As ``with conn`` did (the pool would, with a warning); a broken one the pool replaces.
            with contextlib.suppress(psycopg.Error):
                self._conn.rollback()
        database._pool.putconn(self._conn)
        if expired and isinstance(error, psycopg.Error):
            database._failed_at = time.monotonic()
            raise ProviderUnavailableError(
                f"PostgreSQL did not answer within {database._deadlines.limit:g} s; the connection was dropped"
            ) from error
        if isinstance(error, ProviderUnavailableError) or (isinstance(error, psycopg.Error) and unavailable(error)):
            database._failed_at = time.monotonic()


def with_timeouts(conninfo: str, connect_timeout: float, statement_timeout: float, synchronous_commit: bool) -> str:
    """The connection string with libpq's ``connect_timeout`` and TCP keepalives (unless it sets
    them) and the session settings, sent with the startup packet so they cost no round trip."""
    given = conninfo_to_dict(conninfo)
    extra: dict[str, Any] = {k: v for k, v in _KEEPALIVES.items() if k not in given}
    # libpq counts whole seconds and at least 2.
    extra["connect_timeout"] = str(max(2, math.ceil(connect_timeout)))
    settings = f"-c statement_timeout={round(statement_timeout * 1000)}"
    if not synchronous_commit:
        settings += " -c synchronous_commit=off"
    extra["options"] = f"{given['options']} {settings}" if given.get("options") else settings
    return make_conninfo(conninfo, **extra)


def open_pool(
    conninfo: str,
    *,
    min_size: int,
    max_size: int,
    name: str,
    synchronous_commit: bool = True,
    connect_timeout: float = CONNECT_TIMEOUT,
    statement_timeout: float = STATEMENT_TIMEOUT,
) -> Database:
    """An open :class:`Database`; fails with :class:`ProviderUnavailableError` if the server
    cannot be reached within ``connect_timeout``. ``synchronous_commit=False`` makes its commits
    return before their WAL is flushed (see the queue and lock providers)."""
    return Database(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        name=name,
        synchronous_commit=synchronous_commit,
        connect_timeout=connect_timeout,
        statement_timeout=statement_timeout,
    )


def _redacted(conninfo: str) -> str:
    """The connection string without its password, for error messages."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", re.sub(r"password=\S+", "password=***", conninfo))


class translated:  # a class named as the function it replaced: ``with translated(what):``
    """Turn driver and pool failures into :class:`ProviderError`, or :class:`ProviderUnavailableError`
    when the server is unreachable, down, full, read-only or locked (the original as ``__cause__``).
    A class rather than a @contextmanager generator: it wraps every call, and a generator costs
    several Python calls more each time."""

    __slots__ = ("_what",)

    def __init__(self, what: str) -> None:
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: Any) -> None:
        if isinstance(error, PoolTimeout):
            raise ProviderUnavailableError(f"no PostgreSQL connection to {self._what} in time: {error}") from error
        if isinstance(error, psycopg.Error):
            if unavailable(error):
                raise ProviderUnavailableError(f"PostgreSQL is unavailable to {self._what}: {error}") from error
            raise ProviderError(f"PostgreSQL failed to {self._what}: {error}") from error


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

    A notification sent by this process can be passed on at once, without its trip through the
    server and this thread (two wake-ups on a busy machine): the sender calls :meth:`expect` with
    its connection's backend pid before sending, then :meth:`sent` (or :meth:`unexpect` if nothing
    was sent). The notification itself, when it arrives from that pid, is then skipped, so each
    still adds one ticket.
    """

    def __init__(self, conninfo: str, channel: str, *, ready_timeout: float = CONNECT_TIMEOUT) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._mutex = threading.Lock()
        # One condition per payload (on one lock), so that a ticket wakes a waiter of its payload.
        self._conditions: dict[str, threading.Condition] = {}
        self._generations: dict[str, int] = {}
        self._tickets: dict[str, int] = {}
        self._generation_waiters: dict[str, int] = {}
        self._epoch = 0
        # (payload, backend pid) -> notifications sent by this process, already passed on here.
        self._expected: dict[tuple[str, int], int] = {}
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._connection: psycopg.Connection[Any] | None = None
        self._connection_lock = threading.Lock()  # held while the connection may not be closed
        self._thread = threading.Thread(target=self._run, name=f"liteflow-pg-listen-{channel}", daemon=True)
        self._thread.start()
        # Wait for the first LISTEN so that callers never check before being subscribed; if the
        # server is down the callers still work, by re-checking on a timer.
        self._ready.wait(ready_timeout)

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

    def expect(self, payload: str, pid: int) -> None:
        """A notification of ``payload`` is about to be sent by the session ``pid`` of this process."""
        with self._mutex:
            self._expected[payload, pid] = self._expected.get((payload, pid), 0) + 1

    def unexpect(self, payload: str, pid: int) -> None:
        """The notification announced by :meth:`expect` was not sent after all."""
        with self._mutex:
            self._unexpect((payload, pid))

    def sent(self, payload: str) -> None:
        """The notification announced by :meth:`expect` was committed: pass it on now."""
        self._bump([payload])

    def _unexpect(self, key: tuple[str, int]) -> bool:
        """Drop one expected notification; False if there was none. Mutex held."""
        count = self._expected.get(key, 0)
        if count <= 1:
            return self._expected.pop(key, None) is not None
        self._expected[key] = count - 1
        return True

    def _received(self, payload: str, pid: int) -> None:
        with self._mutex:
            if self._unexpect((payload, pid)):
                return  # passed on by its sender already
        self._bump([payload])

    @property
    def closed(self) -> bool:
        return self._stopping.is_set()

    def _bump(self, payloads: list[str] | None) -> None:
        with self._mutex:
            if payloads is None:  # everyone re-checks
                self._epoch += 1
                self._expected.clear()  # lost with the connection, or not: the re-check covers both
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
        backoff, outage = Backoff(initial=0.1), OutageLog(f"PostgreSQL LISTEN {self._channel}", logger)
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    with self._connection_lock:
                        self._connection = conn
                    try:
                        self._listen(conn, backoff, outage)
                    finally:
                        with self._connection_lock:  # before the connection closes
                            self._connection = None
            except Exception as error:  # any failure: the thread must outlive it and reconnect
                if self._stopping.is_set():
                    break
                outage.failed(error)
                self._ready.set()
                self._bump(None)
                self._stopping.wait(backoff.next_delay())

    def _listen(self, conn: psycopg.Connection[Any], backoff: Backoff, outage: OutageLog) -> None:
        conn.execute(f'LISTEN "{self._channel}"')
        self._ready.set()
        backoff.reset()
        outage.recovered()
        self._bump(None)  # anything sent while we were not listening: re-check
        while not self._stopping.is_set():
            # Each notification is passed on as it arrives (the generator only ends at the
            # timeout); close() shuts the socket down rather than wait for that timeout.
            for notification in conn.notifies(timeout=0.25):
                self._received(notification.payload, notification.pid)
                if self._stopping.is_set():
                    break

    def close(self) -> None:
        """Stop listening and wake every waiter."""
        self._stopping.set()
        self._bump(None)
        with self._connection_lock:
            if self._connection is not None:
                _shut_down(self._connection)  # its wait for notifications ends now, not at its timeout
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
