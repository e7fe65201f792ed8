"""What every SQLite provider of one file shares: opening it, translating its errors, its URLs.

Errors
    No ``sqlite3`` exception that means "the database cannot be used now" reaches a caller. The
    lock's connections (``connect(..., translating=True)``) translate the driver's errors as they
    are raised; the persistence provider, which runs a statement or two per save, uses plain
    connections and translates in the ``except`` of each method (:func:`raise_translated`), so a
    statement costs no Python call of ours. Either way:

    - locked beyond the busy timeout, disk (or size limit) full, read-only, I/O error, cannot open
      the file: :class:`ProviderUnavailableError` (the call did not happen; retry when it is fixed);
    - not a database, or a corrupt one: :class:`ProviderError` naming the path.

    Every other error is left as it is: a constraint the provider catches itself
    (``IntegrityError``), or a plain ``SQLITE_ERROR`` such as a syntax error, which is a bug to
    fix, not an outage to wait out.

Opening
    Switching a fresh file to WAL mode needs an exclusive lock for a moment, and SQLite answers
    ``SQLITE_BUSY`` at once, without its busy handler, when another process is opening the same
    file. :func:`retry_busy` runs such set-up steps again after a short, growing, jittered pause
    until the busy timeout has passed, so several processes can open one new file together.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn, TypeVar
from urllib.parse import unquote

from liteflow.providers.spi import ConfigurationError, ProviderError, ProviderUnavailableError, split_url

MEMORY = ":memory:"
T = TypeVar("T")

# Primary result codes (the low byte of an extended code) that mean "not now", and how to say so.
_UNAVAILABLE = {
    sqlite3.SQLITE_BUSY: "is locked by another connection beyond the busy timeout",
    sqlite3.SQLITE_LOCKED: "is locked by another connection beyond the busy timeout",
    sqlite3.SQLITE_FULL: "cannot grow: the disk (or the database's size limit) is full",
    sqlite3.SQLITE_READONLY: "is read-only: the file, its directory or its file system cannot be written",
    sqlite3.SQLITE_IOERR: "could not be read or written (disk I/O error)",
    sqlite3.SQLITE_CANTOPEN: "could not be opened",
    sqlite3.SQLITE_PROTOCOL: "could not be locked (file locking protocol error)",
}
# ...and those that mean the file is not something LiteFlow can use at all.
_BROKEN = {
    sqlite3.SQLITE_NOTADB: "is not a SQLite database",
    sqlite3.SQLITE_CORRUPT: "is corrupt",
}


def _code(error: BaseException) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def translate(error: sqlite3.Error, path: str) -> ProviderError | None:
    """The LiteFlow error for a driver error on the database at ``path``, or None to let it be."""
    code = _code(error)
    if code in _UNAVAILABLE:
        return ProviderUnavailableError(f"SQLite database {path!r} {_UNAVAILABLE[code]} ({error})")
    if code in _BROKEN:
        return ProviderError(f"SQLite database {path!r} {_BROKEN[code]} ({error})")
    return None


def is_read_only(error: BaseException) -> bool:
    """Whether ``error`` (or the driver error it translates) says the database cannot be written."""
    cause = error.__cause__ if isinstance(error, ProviderUnavailableError) else error
    return isinstance(cause, sqlite3.OperationalError) and _code(cause) == sqlite3.SQLITE_READONLY


def is_busy(error: BaseException) -> bool:
    """Whether ``error`` (or the driver error it translates) says the database was locked."""
    cause = error.__cause__ if isinstance(error, ProviderUnavailableError) else error
    return isinstance(cause, sqlite3.OperationalError) and _code(cause) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def raise_translated(error: sqlite3.Error, path: str) -> NoReturn:
    """Raise what :func:`translate` makes of ``error`` (from it), or ``error`` itself."""
    translated = translate(error, path)
    if translated is None:
        raise error
    raise translated from error


class Cursor(sqlite3.Cursor):
    """A ``sqlite3`` cursor whose executes and fetches raise LiteFlow's errors (rows of a query
    after the first are read by the fetches, which can fail too)."""

    connection: Connection

    def execute(self, sql: str, parameters: Any = (), /) -> Cursor:
        try:
            return super().execute(sql, parameters)
        except sqlite3.Error as error:
            raise_translated(error, self.connection.path)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Cursor:
        try:
            return super().executemany(sql, parameters)
        except sqlite3.Error as error:
            raise_translated(error, self.connection.path)

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.Error as error:
            raise_translated(error, self.connection.path)

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.Error as error:
            raise_translated(error, self.connection.path)


class Connection(sqlite3.Connection):
    """A ``sqlite3`` connection whose ``execute`` and ``executemany`` (and the fetches of the
    cursors they return) raise LiteFlow's errors."""

    def __init__(self, database: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self.path = database

    def execute(self, sql: str, parameters: Any = (), /) -> Cursor:
        return self.cursor(Cursor).execute(sql, parameters)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Cursor:
        return self.cursor(Cursor).executemany(sql, parameters)


def connect(path: str, busy_timeout: float, *, translating: bool = True) -> sqlite3.Connection:
    """An autocommit connection (transactions are begun explicitly) usable from any thread; with
    ``translating``, a :class:`Connection` that raises LiteFlow's errors itself."""
    try:
        return sqlite3.connect(
            path,
            timeout=busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            factory=Connection if translating else sqlite3.Connection,
        )
    except sqlite3.Error as error:
        raise ProviderError(f"cannot open SQLite database {path!r}: {error}") from error


def retry_busy(action: Callable[[], T], busy_timeout: float) -> T:
    """Run ``action``; while it fails because the database is locked, pause and run it again, for up
    to ``busy_timeout`` seconds (then its last error is raised)."""
    deadline = time.monotonic() + busy_timeout
    pause = 0.002
    while True:
        try:
            return action()
        except (sqlite3.OperationalError, ProviderUnavailableError) as error:
            if not is_busy(error) or time.monotonic() + pause > deadline:
                raise
        # Jitter: processes that collided once should not collide again at the same instant.
        time.sleep(pause * random.uniform(0.5, 1.5))
        pause = min(pause * 2, 0.1)


def use_wal(connection: sqlite3.Connection, path: str) -> None:
    """Put the file in WAL mode (it stays so: later opens find it already set)."""
    mode = str(connection.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    if mode != "wal":
        mode = str(connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
    if mode != "wal":
        raise ProviderError(f"could not put SQLite database {path!r} in WAL mode (got {mode})")


# Pages of WAL after which a file provider's checkpointer thread (_checkpoint.py) copies them back
# into the database file, off the saving thread. At SQLite's default of 1,000 pages, run inside the
# commit that crosses it, publish-to-resume p99 was 6-7 ms; at 10,000 in the commit, CPU per
# workflow fell about 10 % (a page rewritten many times in between is copied once) but each
# checkpoint was a ~40 ms pause in some save (p99 39-40 ms). With the thread, p99 is 1.3-2.4 ms
# and checkpoints as rare as at 10,000 (the CPU difference was within the machine's noise).
CHECKPOINT_PAGES = 10_000
# Each writer connection's own wal_autocheckpoint: only a fallback, above the thread's mark, so the
# WAL cannot grow without bound if the thread falls behind or another process writes without one.
WAL_CHECKPOINT_PAGES = 2 * CHECKPOINT_PAGES
# After a checkpoint, a WAL larger than this (grown past the mark while readers held old pages) is
# truncated back to it, so the file does not keep the largest size it ever reached.
_WAL_SIZE_LIMIT = 64 * 1024 * 1024


def tune_writer(connection: sqlite3.Connection) -> None:
    """The checkpoint settings of a connection that writes the file (they are per connection: each
    writer of the file, in this process or another, checkpoints by its own)."""
    connection.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES:d}")
    connection.execute(f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT:d}")


# Weak values: a file's lock lives as long as a provider on the file holds it.
_mutexes: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
_mutexes_guard = threading.Lock()


def writer_mutex(path: str) -> threading.Lock:
    """The in-process lock that every writer on the file at ``path`` takes around its writes.

    SQLite admits one writer per file; writers of one process that wait on a ``threading.Lock``
    are woken as soon as it is free, while those that meet in SQLite's busy handler sleep for up to
    tens of milliseconds at a time. Keep a reference to it for as long as it is used.
    """
    key = os.path.realpath(path)
    with _mutexes_guard:
        mutex = _mutexes.get(key)
        if mutex is None:
            mutex = _mutexes[key] = threading.Lock()
        return mutex


def parse_url(url: str, options: Mapping[str, Callable[[str], Any]]) -> tuple[str, dict[str, Any]]:
    """Split ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``sqlite://:memory:`` into the
    path (:data:`MEMORY` for the in-memory forms) and the query options, converted by ``options``
    (option name -> converter; ``ValueError`` from a converter is a bad value)."""
    if "://" not in url:
        raise ConfigurationError(f"not a sqlite:// URL: {url!r}")
    _, values = split_url(url, options, schemes=("sqlite", "sqlite+"), others="refuse")
    location = url.partition("://")[2].partition("?")[0]
    if location in ("", MEMORY, "/" + MEMORY):
        return MEMORY, values
    if not location.startswith("/"):
        raise ConfigurationError(
            f"a sqlite URL has no host: use sqlite:///relative.db or sqlite:////absolute.db, not {url!r}"
        )
    return unquote(location[1:]), values
