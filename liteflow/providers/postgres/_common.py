"""What the PostgreSQL providers share: URLs, schema names, error translation, and connection
pools whose every wait is bounded (the ``NOTIFY`` listener is in ``_listener``)."""

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
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.errors import error_from_result
from psycopg_pool import ConnectionPool, PoolTimeout

from liteflow.providers.spi import (
    ConfigurationError,
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
                    # Deadlines only grow with registration order, so no new call can be due sooner
                    # than the earliest one here; with none, none can be due within ``limit``. So a
                    # call never has to wake the watchdog up (a hand-off of the GIL per call).
                    wait = self.limit if not self._calls else max(min(d for d, _ in self._calls.values()) - now, 0.01)
                    self._wakeup.wait(wait)
                except Exception:  # never let the watchdog die: calls would hang again
                    logger.exception("PostgreSQL deadline watchdog failed; carrying on")
                    self._wakeup.wait(1.0)


def _break(conn: psycopg.Connection[Any]) -> None:
    """Shut the socket down under a blocked call: its wait wakes up to a closed connection."""
    if shut_down(conn):
        logger.warning("no answer from PostgreSQL in time; dropping the connection")


def shut_down(conn: psycopg.Connection[Any]) -> bool:
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
            # psycopg prepares no statement of its own here: whenever it has some, a rollback makes it
            # send DEALLOCATE ALL, which drops Statement's too. The hot statements are Statement's.
            kwargs={"autocommit": True, "prepare_threshold": None},
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


def _str(value: str) -> bytes:
    if "\x00" in value:  # libpq would cut the text short there
        raise psycopg.DataError("PostgreSQL text cannot contain NUL (0x00) characters")
    return value.encode()


def _array(values: list[Any]) -> bytes:
    """A one-dimensional array literal of strings or integers (every element quoted, so any text)."""
    quoted = (_str(str(v)).replace(b"\\", b"\\\\").replace(b'"', b'\\"') for v in values)
    return b"{" + b",".join(b'"' + v + b'"' for v in quoted) + b"}"


# Parameters go to the server as text, which it reads as the type the statement expects there.
_TEXT: dict[type, Callable[[Any], bytes]] = {
    str: _str,
    int: b"%d".__mod__,
    float: lambda value: repr(value).encode(),
    bool: lambda value: b"t" if value else b"f",
    datetime: lambda value: value.isoformat().encode(),
    list: _array,
}


def _text(value: Any) -> bytes | None:
    """``value`` as a parameter's text (None for NULL); a subclass (a ``StrEnum``, an ``IntEnum``)
    as its base type."""
    if value is None:
        return None
    encode = _TEXT.get(type(value))
    if encode is None:
        encode = next((_TEXT[base] for base in type(value).__mro__ if base in _TEXT), None)
        if encode is None:
            raise psycopg.ProgrammingError(f"cannot send a {type(value).__name__} to PostgreSQL as a parameter")
    return encode(value)


_FORGOTTEN = b"26000"  # invalid_sql_statement_name: no prepared statement of that name
_SUCCEEDED = frozenset({pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK})


class Rows:
    """What :meth:`Statement.run` and :func:`run_script` return: the rows (text columns decoded by
    the statement's column types) and the number of rows the statement changed or returned."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rowcount: int, rows: list[tuple[Any, ...]]) -> None:
        self.rowcount, self.rows = rowcount, rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None


class Statement:
    """A short statement run through libpq itself (psycopg's ``pgconn``) rather than a cursor,
    prepared on each connection the first time it runs there, its parameters sent as text and its
    result columns read as ``columns`` (``str``, ``int``; one per column it returns).

    A cursor's execute spends about three times libpq's own CPU on such a statement (adapting each
    parameter, its prepared-statement cache, the result's wrappers: 70-100 µs against 25 µs here;
    see bench/README.md), and the providers' hot paths run several per workflow. libpq's call lets
    go of the GIL while it waits, like the cursor's; errors are psycopg's own classes (a broken
    connection an ``OperationalError``, a server error the class of its SQLSTATE), so callers and
    :func:`unavailable` read them as before. ``sql`` has ``%s`` placeholders and no other ``%``;
    parameters are ``str`` (without NUL, which libpq cannot send: ``DataError``), ``int``,
    ``float``, ``bool``, aware ``datetime`` (subclasses of these too), ``None`` or lists of strings
    or integers; anything else is a ``ProgrammingError``. Text goes both ways as UTF-8 (the
    sessions' client encoding, see ``with_timeouts``); a ``timestamptz`` column is read as the
    server writes it under the session's DateStyle, so a statement that reads one converts it to
    fixed text itself (see the store's event statements)."""

    __slots__ = ("_columns", "_name", "_numbered")

    _names = itertools.count()

    def __init__(self, sql: str, columns: tuple[Callable[[bytes], Any], ...] = ()) -> None:
        parts = sql.split("%s")
        numbered = "".join(f"{part}${n}" for n, part in enumerate(parts[:-1], 1)) + parts[-1]
        self._numbered = numbered.encode()
        self._name = f"liteflow_pq_{next(Statement._names)}".encode()
        self._columns = tuple(map(_reader, columns))

    def run(self, conn: psycopg.Connection[Any], parameters: Sequence[Any]) -> Rows:
        """Run it on ``conn`` (autocommit, so in a transaction of its own) with ``parameters``."""
        ready = self._prepare(conn)
        pgconn = conn.pgconn
        text: Any = list(map(_text, parameters))  # None stands for NULL
        result = pgconn.exec_prepared(self._name, text)
        if result.error_field(pq.DiagnosticField.SQLSTATE) == _FORGOTTEN:
            # The server no longer has it (DEALLOCATE ALL or DISCARD ALL on this session): it did
            # not run, and no other of this connection's statements is prepared any more either.
            ready.clear()
            self._prepare(conn)
            result = pgconn.exec_prepared(self._name, text)
        return _rows(_check(conn, result), self._columns)

    def command(self, conn: psycopg.Connection[Any], parameters: Sequence[Any]) -> bytes:
        """An ``EXECUTE`` of it with ``parameters`` written as literals, for :func:`run_script`."""
        self._prepare(conn)
        quote = pq.Escaping(conn.pgconn).escape_literal
        literals = b", ".join(b"NULL" if (text := _text(v)) is None else quote(text) for v in parameters)
        return b"EXECUTE " + self._name + (b"(" + literals + b")" if parameters else b"")

    def _prepare(self, conn: psycopg.Connection[Any]) -> set[bytes]:
        """Prepare it on ``conn`` unless it is already; the names prepared there."""
        ready = _prepared_on(conn)
        if self._name not in ready:
            _check(conn, conn.pgconn.prepare(self._name, self._numbered))
            ready.add(self._name)
        return ready


def run_script(
    conn: psycopg.Connection[Any],
    build: Callable[[], Sequence[bytes]],
    columns: tuple[Callable[[bytes], Any], ...] = (),
) -> Rows:
    """The commands ``build()`` returns (:meth:`Statement.command`, ``BEGIN``, ...) sent as one
    simple query: one round trip, one implicit transaction unless they begin and commit their own.
    Stops at the first that fails, raising its error; the rows of the last one, read as ``columns``.

    A script's statements are prepared together, the first time it runs on a connection, so when
    the server has forgotten them (DEALLOCATE ALL, DISCARD ALL) its first ``EXECUTE`` fails before
    anything of it is committed: it is rolled back, and ``build()`` prepares them again for one
    more run."""
    pgconn = conn.pgconn
    result = pgconn.exec_(b"; ".join(build()))
    if result.error_field(pq.DiagnosticField.SQLSTATE) == _FORGOTTEN:
        if pgconn.transaction_status == pq.TransactionStatus.INERROR:
            _check(conn, pgconn.exec_(b"ROLLBACK"))
        _prepared_on(conn).clear()
        result = pgconn.exec_(b"; ".join(build()))
    return _rows(_check(conn, result), tuple(map(_reader, columns)))


def _prepared_on(conn: psycopg.Connection[Any]) -> set[bytes]:
    """The names of the statements prepared on ``conn``."""
    ready: set[bytes] | None = getattr(conn, "_liteflow_statements", None)
    if ready is None:
        ready = conn._liteflow_statements = set()  # type: ignore[attr-defined]
    return ready


def _reader(column: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    return bytes.decode if column is str else column


def _rows(result: pq.abc.PGresult, columns: tuple[Callable[[bytes], Any], ...]) -> Rows:
    if result.status != pq.ExecStatus.TUPLES_OK:
        return Rows(int(result.command_tuples or 0), [])
    get = result.get_value
    rows = [
        tuple(None if (value := get(row, n)) is None else read(value) for n, read in enumerate(columns))
        for row in range(result.ntuples)
    ]
    return Rows(len(rows), rows)


def _check(conn: psycopg.Connection[Any], result: pq.abc.PGresult) -> pq.abc.PGresult:
    """``result``, or the error it reports raised as psycopg would raise it."""
    if result.status in _SUCCEEDED:
        return result
    if conn.pgconn.status != pq.ConnStatus.OK:
        message = result.error_message.decode(errors="replace").strip()
        raise psycopg.OperationalError(f"consuming input failed: {message}")
    raise error_from_result(result, encoding=conn.info.encoding)


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
    them) and the session settings (after any the string gives, so they win), sent with the startup
    packet so they cost no round trip."""
    given = conninfo_to_dict(conninfo)
    extra: dict[str, Any] = {k: v for k, v in _KEEPALIVES.items() if k not in given}
    # libpq counts whole seconds and at least 2.
    extra["connect_timeout"] = str(max(2, math.ceil(connect_timeout)))
    settings = f"-c statement_timeout={round(statement_timeout * 1000)}"
    # Read committed whatever the server's or the connection string's default: the joint lock and
    # load (PostgresLockProvider.acquire_and_read) reads after the grant with a snapshot of its own.
    settings += r" -c default_transaction_isolation=read\ committed"
    # Statement sends and reads text as UTF-8, whatever the URL or PGCLIENTENCODING ask for (a
    # keyword, not an option: the startup packet's own client_encoding would win over an option).
    extra["client_encoding"] = "UTF8"
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
