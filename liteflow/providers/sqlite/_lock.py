"""A :class:`LockProvider` in a SQLite file: leased lock rows with renewal and fencing tokens, so
that several processes on one machine sharing a SQLite store never run one workflow at once.

Tables (created on first use, beside the store's own if the file is also the store)::

    lock_lease (resource PRIMARY KEY, owner, token, expires_at)   one row per lock held
    lock_fence (id = 0, last)                                      the last token handed out

Guarantees
    ``acquire`` runs in a ``BEGIN IMMEDIATE`` transaction (SQLite's one writer at a time, across
    processes): it takes the next token and inserts the lease row, or takes over a row whose lease
    has lapsed, and otherwise changes nothing, so exactly one caller on any process wins. A lock
    seen held and unexpired is refused by a plain read, without taking the write lock.
    ``release`` deletes the row only if it still carries this grant's owner and token, so a process
    never frees a lock that lapsed and was taken by another. A background thread extends this
    provider's leases every ``lease / 3``, so a lock stays held while its process lives, and the
    locks of a process that dies (or stalls past the lease) lapse at most ``lease`` seconds after
    its last renewal, sooner when it is known to have exited (next paragraph). A lock found lapsed
    at renewal is dropped and logged at WARNING. The renewal thread survives every error: it logs
    the first failure of a run of them and the recovery, and retries sooner (never later than the
    next regular renewal) until the file answers again.

Dead processes
    A provider's owner id names its process: the machine's boot id, its PID namespace and its pid.
    A lock whose lease has not lapsed is taken over at once if its owner's process is known to have
    exited: same boot and namespace (so the pid means the same thing here), and no process with
    that pid. So a process that crashed and is restarted on the same file does not wait out the
    leases of its former self. Anything uncertain (another namespace, a pid in use again, no
    ``/proc``) counts as alive, and the lease decides.

Clock
    Lease times are the wall clock of the machine (microseconds since the epoch), which every
    process on it shares and which, unlike a monotonic clock, still means something after a
    reboot. A SQLite file shared over a network file system is not supported by SQLite's WAL mode,
    so there is only ever one machine's clock.

Fencing
    Tokens grow with the order in which locks were granted; ``token(resource)`` returns the one of
    this provider's lock. LiteFlow itself relies on the store's revision check for what fencing is
    for (a holder whose lease lapsed during a long step saves a stale instance: ConcurrencyError).
"""

from __future__ import annotations

import functools
import logging
import os
import random
import secrets
import threading
import time

from liteflow.core._errors import (
    ConfigurationError,
    InvalidArgumentError,
    InvalidOperationError,
    LiteFlowError,
    ProviderError,
    ProviderUnavailableError,
)
from liteflow.core._providers import LockProvider

from ._connection import MEMORY, connect, is_read_only, parse_url, retry_busy, use_wal, writer_mutex

logger = logging.getLogger("liteflow.providers.sqlite")

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS lock_lease (
        resource   TEXT PRIMARY KEY,
        owner      TEXT NOT NULL,
        token      INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    "CREATE TABLE IF NOT EXISTS lock_fence (id INTEGER PRIMARY KEY CHECK (id = 0), last INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO lock_fence (id, last) VALUES (0, 0)",
)
_TABLES = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('lock_lease', 'lock_fence')"
_HOLDER = "SELECT owner FROM lock_lease WHERE resource = ? AND expires_at >= ?"
_NEXT_TOKEN = "UPDATE lock_fence SET last = last + 1 WHERE id = 0 RETURNING last"
_TAKE = (
    "INSERT INTO lock_lease (resource, owner, token, expires_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (resource) DO UPDATE SET owner = excluded.owner, token = excluded.token,"
    " expires_at = excluded.expires_at WHERE lock_lease.expires_at < ? OR lock_lease.owner = ?"
)
_RELEASE = "DELETE FROM lock_lease WHERE resource = ? AND owner = ? AND token = ?"
_RENEW = "UPDATE lock_lease SET expires_at = ? WHERE resource = ? AND owner = ? AND token = ? AND expires_at >= ?"
_RELEASE_ALL = "DELETE FROM lock_lease WHERE owner = ?"


def _now() -> int:
    """Microseconds since the epoch, the unit of ``expires_at``."""
    return time.time_ns() // 1000


@functools.cache
def _pid_space() -> str:
    """Where a process id names one process: this boot of the machine and this PID namespace
    (containers sharing a volume see other pids); ``?`` where that cannot be known."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as file:
            boot = file.read().strip()
        namespace = os.stat("/proc/self/ns/pid")
    except OSError:
        return "?"
    return f"{boot}.{namespace.st_dev}.{namespace.st_ino}"


def _owner_id() -> str:
    return f"{_pid_space()}:{os.getpid()}:{secrets.token_hex(8)}"


def _owner_is_dead(owner: str) -> bool:
    """Whether ``owner`` (another provider's id) belongs to a process known to have exited.

    Only for a process of this machine's current boot and PID namespace, and only when no process
    has its pid: a reused pid, a zombie or another user's process all count as alive, which errs on
    the safe side (its lease then lapses as usual)."""
    space, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if space == "?" or space != _pid_space() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # PermissionError: it exists
    return False


class SqliteLockProvider(LockProvider):
    """Leased, renewed, owner-checked locks in a SQLite file; see the module docstring.

    Several processes on one machine that use the same file coordinate through it; it is the
    default lock of ``configure_workflow_host`` whenever the store is a SQLite file.

    Args:
        path: the database file (created if missing); usually the store's own file.
        lease: seconds a lock stays held without renewal (a dead process's locks lapse after it).
        renew: False turns renewal off, so locks lapse after one lease even while held: for tests
            that stand in for a stalled process, not for production.
        busy_timeout: seconds a call waits for another process's write transaction before it
            raises :class:`ProviderUnavailableError`.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, lease: float = 10.0, renew: bool = True, busy_timeout: float = 5.0
    ) -> None:
        if lease <= 0:
            raise InvalidArgumentError(f"lease must be positive, got {lease}")
        if busy_timeout < 0:
            raise InvalidArgumentError(f"busy_timeout must not be negative, got {busy_timeout}")
        self._path = os.fspath(path)
        if self._path in ("", MEMORY):
            raise ConfigurationError(
                "a SQLite lock needs a file that the processes share; within one process use memory://"
            )
        self.lease = float(lease)
        self._lease_us = max(1, round(lease * 1_000_000))
        self._busy_timeout = busy_timeout
        self._pid = os.getpid()
        self._owner = _owner_id()
        self._mutex = threading.Lock()  # guards _held
        self._held: dict[str, int] = {}
        self._stopping = threading.Event()
        self._closed = False
        self._write_mutex = writer_mutex(self._path)  # shared with the store on this file
        self._connection = connect(self._path, busy_timeout)
        self._schema_ready = False
        try:
            retry_busy(self._create_schema, busy_timeout)
        except ProviderUnavailableError as error:
            if not is_read_only(error):
                self._connection.close()
                raise
            # A read-only store can still be read by a host that runs nothing (a CLI, a dashboard);
            # taking a lock will say why it cannot.
            logger.debug("SQLite lock tables not created in read-only %r; retried at the first lock", self._path)
        except BaseException:
            self._connection.close()
            raise
        self._renewer: threading.Thread | None = None
        if renew:
            self._renewer = threading.Thread(target=self._renew_loop, name="liteflow-sqlite-lock-renewal", daemon=True)
            self._renewer.start()

    @classmethod
    def from_url(cls, url: str) -> SqliteLockProvider:
        """``sqlite:///relative.db`` or ``sqlite:////absolute.db``, options as query parameters:
        ``?lease=15&busy_timeout=10``."""
        path, options = parse_url(url, {"lease": float, "busy_timeout": float})
        return cls(path, **options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._path!r}, owner={self._owner!r})"

    def _create_schema(self) -> None:
        connection = self._connection
        with self._write_mutex:
            use_wal(connection, self._path)
            connection.execute("PRAGMA synchronous = NORMAL")  # a lease outlives no crash of the machine
            if connection.execute(_TABLES).fetchone()[0] == 2:
                self._schema_ready = True  # nothing to write: a read-only file opens too
                return
            connection.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA:
                    connection.execute(statement)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            self._schema_ready = True

    def acquire(self, resource: str) -> bool:
        if not self._schema_ready and not self._closed:
            retry_busy(self._create_schema, self._busy_timeout)
        connection = self._connection
        now = _now()
        with self._write_mutex:
            if self._closed:  # checked under the mutex, which close() holds to close the connection
                raise InvalidOperationError(f"{self!r} is closed")
            if os.getpid() != self._pid:  # its owner id names the parent, which may exit first
                raise InvalidOperationError(f"{self!r} was made in another process; make one in each process")
            holder = connection.execute(_HOLDER, (resource, now)).fetchone()
            dead = None
            if holder is not None:
                if not _owner_is_dead(holder[0]):
                    return False
                dead = holder[0]  # the process that held it has exited: no need to wait out its lease
            connection.execute("BEGIN IMMEDIATE")
            try:
                now = _now()  # BEGIN IMMEDIATE may have waited for another process
                token = int(connection.execute(_NEXT_TOKEN).fetchone()[0])
                values = (resource, self._owner, token, now + self._lease_us, now, dead)
                taken = connection.execute(_TAKE, values).rowcount
                connection.execute("COMMIT" if taken else "ROLLBACK")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        if not taken:
            return False
        if dead is not None:
            logger.info("lock on %s taken over from %s, whose process has exited", resource, dead)
        with self._mutex:
            self._held[resource] = token
        return True

    def token(self, resource: str) -> int | None:
        """The fencing token of this provider's lock on ``resource``, or None if it does not hold
        it (never took it, released it, or found it lapsed at renewal)."""
        with self._mutex:
            return self._held.get(resource)

    def release(self, resource: str) -> None:
        with self._mutex:
            token = self._held.pop(resource, None)
        if token is None:
            return
        try:
            with self._write_mutex:
                if self._closed:
                    return  # close() deleted every row of this owner
                self._connection.execute(_RELEASE, (resource, self._owner, token))
        except ProviderError as error:
            raise type(error)(f"could not unlock {resource} (it lapses within {self.lease} s): {error}") from error

    def renew_now(self) -> None:
        """Extend every lock held now by one lease (what the renewal thread does every lease / 3)."""
        with self._mutex:
            held = list(self._held.items())
        if not held:
            return
        connection = self._connection
        kept: list[bool] = []
        with self._write_mutex:
            if self._closed:
                return
            connection.execute("BEGIN IMMEDIATE")
            try:
                now = _now()
                for resource, token in held:
                    renewed = connection.execute(_RENEW, (now + self._lease_us, resource, self._owner, token, now))
                    kept.append(renewed.rowcount == 1)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
        for (resource, token), ok in zip(held, kept):
            if ok:
                continue
            with self._mutex:
                if self._held.get(resource) == token:  # not released or taken again meanwhile
                    del self._held[resource]
                    logger.warning("lock on %s lapsed before it was renewed; another process may hold it", resource)

    def _renew_loop(self) -> None:
        interval = self.lease / 3
        failures = 0
        delay = interval
        while not self._stopping.wait(delay):
            try:
                self.renew_now()
            except Exception as error:  # this thread must outlive any failure
                failures += 1
                if failures == 1:
                    level = logging.WARNING if isinstance(error, LiteFlowError) else logging.ERROR
                    logger.log(
                        level,
                        "renewing SQLite locks in %r failed; retrying, they lapse unless a retry succeeds: %s",
                        self._path,
                        error,
                        exc_info=not isinstance(error, LiteFlowError),
                    )
                # Sooner than the regular interval, since the leases are running out; jittered.
                delay = min(interval, 0.05 * 2 ** min(failures, 10)) * random.uniform(0.5, 1.0)
                continue
            if failures:
                logger.warning("renewing SQLite locks in %r works again after %d failed tries", self._path, failures)
                failures = 0
            delay = interval

    def close(self) -> None:
        """Stop renewal, release every lock this provider holds, and close the connection."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        if self._renewer is not None:
            self._renewer.join()
        with self._mutex:
            self._held.clear()
        with self._write_mutex:
            try:
                self._connection.execute(_RELEASE_ALL, (self._owner,))
            except ProviderError as error:
                logger.warning("could not release SQLite locks on close; they lapse within %s s: %s", self.lease, error)
            finally:
                self._connection.close()
