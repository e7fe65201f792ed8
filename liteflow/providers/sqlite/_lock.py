"""A :class:`LockProvider` in a SQLite file: leased lock rows with renewal and fencing tokens, so
that several processes on one machine sharing a SQLite store never run one workflow at once.

Tables (created on first use, beside the store's own if the file is also the store)::

    lock_lease  (resource PRIMARY KEY, owner, token, expires_at)   one row per lock held, shared mode
    lock_fence  (id = 0, last)                                      the last token handed out
    lock_member (owner PRIMARY KEY, expires_at, shared)             one row per live provider

Shared mode
    ``acquire`` runs in a ``BEGIN IMMEDIATE`` transaction (SQLite's one writer at a time, across
    processes): it takes the next token and inserts the lease row, or takes over a row whose lease
    has lapsed, and otherwise changes nothing, so exactly one caller on any process wins. A lock
    seen held and unexpired is refused by a plain read, without taking the write lock.
    ``release`` deletes the row only if it still carries this grant's owner and token, so a process
    never frees a lock that lapsed and was taken by another. A background thread extends this
    provider's leases every ``lease / 3``, so a lock stays held while its process lives, and the
    locks of a process that dies (or stalls past the lease) lapse at most ``lease`` seconds after
    its last renewal, sooner when it is known to have exited (see Dead processes). A lock found
    lapsed at renewal is dropped and logged at WARNING.

Solo mode
    Two writes per lock (take and give back) would cost a host alone on its file about a third of
    its throughput, for nothing. So every provider keeps a leased row in ``lock_member``, renewed
    with its locks, and one that finds no other live member there is *solo*: it keeps its locks in
    memory and writes nothing per lock. A provider that joins while a member is solo refuses every
    lock (``acquire`` returns False) until that member has seen it, which happens at the solo
    member's next ``acquire`` (one 25 ms after its last look: it reads nothing in between) or
    within a quarter of a second (its renewal thread): in one transaction it writes the
    lease rows of the locks it holds and marks itself shared. A shared member alone again (the
    others closed or lapsed) goes back to solo at its next renewal, deleting its rows in the same
    transaction. A solo member whose own membership lapsed (a stall, the file unwritable for a
    lease) may have been given up by the others: it drops its locks, as a lapsed lease would, and
    joins again. A member alone looks at no lease row, so every write of a lease row extends its
    owner's membership at least as far.

Dead processes
    A provider's owner id names its process: the machine's boot id, its PID namespace and its pid.
    A lease or a membership that has not lapsed is ignored at once if its owner's process is known
    to have exited: same boot and namespace (so the pid means the same thing here), and no process
    with that pid. So a process that crashed and is restarted on the same file does not wait out
    the leases of its former self. Anything uncertain (another namespace, a pid in use again, no
    ``/proc``) counts as alive, and the lease decides.

Renewal
    The renewal thread survives every error: it logs the first failure of a run of them and the
    recovery, and retries sooner (never later than the next regular renewal) until the file
    answers again.

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

import logging
import os
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from liteflow.providers.spi import (
    ConfigurationError,
    InvalidArgumentError,
    InvalidOperationError,
    LeasedLockProvider,
    LiteFlowError,
    OutageLog,
    ProviderError,
    ProviderUnavailableError,
)

from ._connection import MEMORY, connect, is_read_only, parse_url, retry_busy, tune_writer, use_wal, writer_mutex
from ._owners import owner_id, owner_is_dead

logger = logging.getLogger("liteflow.providers.sqlite")
T = TypeVar("T")

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
    """
    CREATE TABLE IF NOT EXISTS lock_member (
        owner      TEXT PRIMARY KEY,
        expires_at INTEGER NOT NULL,
        shared     INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
)
_TABLE_NAMES = ("lock_lease", "lock_fence", "lock_member")
_TABLES = f"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN {_TABLE_NAMES}"
_HOLDER = "SELECT owner FROM lock_lease WHERE resource = ? AND expires_at >= ?"
_LAST_TOKEN = "SELECT last FROM lock_fence WHERE id = 0"
_NEXT_TOKEN = "UPDATE lock_fence SET last = last + 1 WHERE id = 0 RETURNING last"
_RAISE_FENCE = "UPDATE lock_fence SET last = max(last, ?) WHERE id = 0"
_TAKE = (
    "INSERT INTO lock_lease (resource, owner, token, expires_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (resource) DO UPDATE SET owner = excluded.owner, token = excluded.token,"
    " expires_at = excluded.expires_at WHERE lock_lease.expires_at < ? OR lock_lease.owner = ?"
)
_RELEASE = "DELETE FROM lock_lease WHERE resource = ? AND owner = ? AND token = ?"
_RENEW = "UPDATE lock_lease SET expires_at = ? WHERE resource = ? AND owner = ? AND token = ? AND expires_at >= ?"
_RELEASE_ALL = "DELETE FROM lock_lease WHERE owner = ?"
_OTHERS = "SELECT owner, shared FROM lock_member WHERE owner != ? AND expires_at >= ?"
_JOIN = "INSERT OR REPLACE INTO lock_member (owner, expires_at, shared) VALUES (?, ?, ?)"
_LEAVE = "DELETE FROM lock_member WHERE owner = ?"
_FORGET_LAPSED = "DELETE FROM lock_member WHERE expires_at < ?"

_SOLO_CHECK = 0.25  # s: how often a solo member looks for newcomers, who wait for it meanwhile
_SOLO_WAIT = 2 * _SOLO_CHECK  # s: how long a newcomer's acquire waits for that before refusing
# s: how often a busy solo member's acquire looks too (a read of lock_member under the file's writer
# lock: at every acquire it was a sixth of a workflow's statements)
_SOLO_LOOK = _SOLO_CHECK / 10


class _Process:
    """This process's pid, kept up to date across forks without a system call per lock."""

    pid = os.getpid()

    @classmethod
    def forked(cls) -> None:
        cls.pid = os.getpid()


os.register_at_fork(after_in_child=_Process.forked)


def _now() -> int:
    """Microseconds since the epoch, the unit of ``expires_at``."""
    return time.time_ns() // 1000


def _in_transaction(connection: sqlite3.Connection, work: Callable[[], T]) -> T:
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = work()
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return result


@dataclass(frozen=True)
class _Mode:
    """What a committed membership write says about us: solo or shared, and until when."""

    solo: bool
    member_until: int
    solo_token: int = 0  # while solo: the last token handed out in the file


class _RenewalLog(OutageLog):
    """The renewal's outage log: an unexpected error (not a LiteFlowError) at ERROR, with its
    traceback; a locked or unwritable file at WARNING."""

    def failed(self, error: BaseException) -> None:
        self.failures += 1
        if self.failures > 1:
            return
        self.since = time.monotonic()
        expected = isinstance(error, LiteFlowError)
        self.logger.log(
            logging.WARNING if expected else logging.ERROR,
            "%s failed; retrying, they lapse unless a retry succeeds: %s",
            self.what,
            error,
            exc_info=not expected,
        )

    def recovered(self) -> None:
        if self.failures:
            self.logger.warning("%s works again after %d failed tries", self.what, self.failures)
        self.failures, self.since = 0, None


class SqliteLockProvider(LeasedLockProvider[int]):
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
        super().__init__(lease=float(lease), logger=logger, what="SQLite lock")
        if busy_timeout < 0:
            raise InvalidArgumentError(f"busy_timeout must not be negative, got {busy_timeout}")
        self._path = os.fspath(path)
        if self._path in ("", MEMORY):
            raise ConfigurationError(
                "a SQLite lock needs a file that the processes share; within one process use memory://"
            )
        self._lease_us = max(1, round(lease * 1_000_000))
        self._busy_timeout = busy_timeout
        self._pid = os.getpid()
        self._owner = owner_id()
        # Order: _write_mutex (the file's writer lock, shared with the store) before _mutex.
        self._joined = False  # our lock_member row is written
        self._solo = False
        self._solo_token = 0  # the last token handed out while solo
        self._publishing = False  # writing our locks as lease rows: none is taken or given back alone
        # While solo, acquire looks for newcomers at most this often (monotonic s); the renewal
        # thread looks every _SOLO_CHECK anyway. Without the thread, at every acquire.
        self._look_every = _SOLO_LOOK if renew else 0.0
        self._next_look = 0.0
        self._member_until = 0  # when our membership lapses unless renewed (microseconds)
        self._closed = False
        self._write_mutex = writer_mutex(self._path)
        self._connection = connect(self._path, busy_timeout)
        try:
            retry_busy(self._join, busy_timeout)
        except ProviderUnavailableError as error:
            if not is_read_only(error):
                self._connection.close()
                raise
            # A read-only store can still be read by a host that runs nothing (a CLI, a dashboard);
            # taking a lock will say why it cannot.
            logger.debug("SQLite lock not set up in read-only %r; tried again at the first lock", self._path)
        except BaseException:
            self._connection.close()
            raise
        if renew:
            self._start_renewal("liteflow-sqlite-lock-renewal")

    @classmethod
    def from_url(cls, url: str) -> SqliteLockProvider:
        """``sqlite:///relative.db`` or ``sqlite:////absolute.db``, options as query parameters:
        ``?lease=15&busy_timeout=10``."""
        path, options = parse_url(url, {"lease": float, "busy_timeout": float})
        return cls(path, **options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._path!r}, owner={self._owner!r})"

    # -- membership ----------------------------------------------------------------------------
    # _held and the mode (_solo, _member_until, _solo_token) change only with both mutexes held,
    # and only after the transaction that makes the file agree has committed.

    def _join(self) -> None:
        """Create the tables if missing and write our membership, solo if nobody else is live."""
        connection = self._connection
        with self._write_mutex:
            use_wal(connection, self._path)
            connection.execute("PRAGMA synchronous = NORMAL")  # a lease outlives no crash of the machine
            # Its commits (renewals) would otherwise checkpoint at SQLite's default of 1,000 pages,
            # under the file's writer lock that the store's saves wait on.
            tune_writer(connection)
            if connection.execute(_TABLES).fetchone()[0] != len(_TABLE_NAMES):  # read-only files open too
                _in_transaction(connection, self._create_tables)
            self._set_mode(_in_transaction(connection, self._write_membership))
            self._joined = True

    def _create_tables(self) -> None:
        for statement in _SCHEMA:
            self._connection.execute(statement)

    def _write_membership(self) -> _Mode:
        """Transaction body: (re)write our row, solo exactly when no other member is live."""
        connection, now = self._connection, _now()
        solo = not self._live_others(now)
        if solo:
            connection.execute(_RELEASE_ALL, (self._owner,))  # from now on our locks are kept here only
        connection.execute(_JOIN, (self._owner, now + self._lease_us, int(not solo)))
        last = int(connection.execute(_LAST_TOKEN).fetchone()[0])
        return _Mode(solo, now + self._lease_us, max(last, self._solo_token))  # tokens never go back

    def _set_mode(self, mode: _Mode) -> None:
        with self._mutex:
            self._solo, self._member_until = mode.solo, mode.member_until
            if mode.solo:  # a lock taken alone meanwhile (without the write mutex) has a later token
                self._solo_token = max(self._solo_token, mode.solo_token)

    def _live_others(self, now: int) -> list[tuple[str, bool]]:
        """The other members whose membership has not lapsed and whose process is not known dead."""
        rows = self._connection.execute(_OTHERS, (self._owner, now)).fetchall()
        return [(owner, bool(shared)) for owner, shared in rows if not owner_is_dead(owner)]

    def _go_shared(self) -> None:
        """With the write mutex: write the lease rows of the locks we hold alone, and mark us shared."""
        try:
            self._apply(*_in_transaction(self._connection, self._publish))
        finally:
            self._published()

    def _publish(self) -> tuple[_Mode, list[str]]:
        """Transaction body: our locks held alone become lease rows, and we are marked shared, at
        once (a member that sees us shared trusts the rows). Returns the mode and the locks lost.
        From here until :meth:`_published`, locks are taken and given back only with the write
        mutex (see :meth:`_take_if_alone`), so the rows written are all the locks we hold."""
        with self._mutex:
            self._publishing = True
        connection, now = self._connection, _now()
        lost: list[str] = []
        for resource, token in self._held.items():
            values = (resource, self._owner, token, now + self._lease_us, now, self._owner)
            if connection.execute(_TAKE, values).rowcount == 0:  # the others gave up on us (see Solo mode)
                lost.append(resource)
        connection.execute(_RAISE_FENCE, (self._solo_token,))
        connection.execute(_JOIN, (self._owner, now + self._lease_us, 1))
        return _Mode(False, now + self._lease_us), lost

    def _published(self) -> None:
        """After :meth:`_publish` committed (we are shared now) or failed (still solo, nothing written)."""
        with self._mutex:
            self._publishing = False

    def _apply(self, mode: _Mode, lost: list[str]) -> None:
        """After the commit: drop the locks found lost, and take the new mode."""
        with self._mutex:
            for resource in lost:
                del self._held[resource]
        for resource in lost:
            logger.warning(
                "lock on %s lapsed or was given up while this process held it; another may hold it", resource
            )
        self._set_mode(mode)

    def _rejoin_if_lapsed(self, now: int) -> None:
        """With the write mutex: if our membership lapsed, drop what we held alone, and join again."""
        if self._member_until > now:
            return
        if self._solo and self._held:
            logger.warning("this process's SQLite lock membership lapsed; dropping its %d locks", len(self._held))
            with self._mutex:
                self._held.clear()
        self._set_mode(_in_transaction(self._connection, self._write_membership))

    # -- locks ---------------------------------------------------------------------------------

    def acquire(self, resource: str) -> bool:
        taken = self._take_if_alone(resource)
        if taken is not None:
            return taken
        if not self._joined and not self._closed:
            retry_busy(self._join, self._busy_timeout)
        # A member that joined while another was solo waits (briefly) for it to write its locks,
        # rather than refuse work that the host would then only see again at its next poll.
        deadline = time.monotonic() + _SOLO_WAIT
        while True:
            with self._write_mutex:
                taken = self._try_acquire(resource)
            if taken is not None:
                return taken
            if time.monotonic() > deadline or self._stopping.wait(0.02):
                return False

    def _take_if_alone(self, resource: str) -> bool | None:
        """Without the file's write mutex (a save of the store may hold it): whether ``resource`` was
        taken in memory, or None to go the way of :meth:`_try_acquire`.

        Only while solo, not publishing, with our membership current and our last look for
        newcomers recent (a newcomer waits for the next look, which the slow path makes). Every
        change of mode takes ``_mutex``, held here, after the transaction that makes it; publishing
        sets its flag under ``_mutex`` before it reads the locks it writes, so no lock taken here is
        missing from the rows a newcomer trusts."""
        with self._mutex:
            if not self._solo or self._publishing or self._closed or _Process.pid != self._pid:
                return None
            if time.monotonic() >= self._next_look or _now() >= self._member_until:
                return None
            if resource in self._held:
                return False
            self._solo_token += 1
            self._held[resource] = self._solo_token
            return True

    def _try_acquire(self, resource: str) -> bool | None:
        """With the write mutex: whether ``resource`` was taken, or None while a solo member has
        not yet written its locks."""
        if self._closed:  # checked under the mutex, which close() holds to close the connection
            raise InvalidOperationError(f"{self!r} is closed")
        if _Process.pid != self._pid:  # its owner id names the parent, which may exit first
            raise InvalidOperationError(f"{self!r} was made in another process; make one in each process")
        now = _now()
        self._rejoin_if_lapsed(now)
        if self._solo and time.monotonic() < self._next_look:
            return self._take_alone(resource)  # a newcomer meanwhile waits for our next look
        others = self._live_others(now)
        if self._solo:
            self._next_look = time.monotonic() + self._look_every
            if not others:
                return self._take_alone(resource)
            self._go_shared()
        if any(not shared for _, shared in others):
            return None
        token = self._take_shared(resource, now)
        if token is None:
            return False
        self._hold(resource, token)
        return True

    def _take_alone(self, resource: str) -> bool:
        with self._mutex:
            if resource in self._held:
                return False
            self._solo_token += 1
            self._held[resource] = self._solo_token
        return True

    def _take_shared(self, resource: str, now: int) -> int | None:
        """With the write mutex: the token of a new lease row on ``resource``, or None if it is held."""
        connection = self._connection
        holder = connection.execute(_HOLDER, (resource, now)).fetchone()
        dead = None
        if holder is not None:
            if not owner_is_dead(holder[0]):
                return None
            dead = holder[0]  # the process that held it has exited: no need to wait out its lease
        connection.execute("BEGIN IMMEDIATE")
        try:
            now = _now()  # BEGIN IMMEDIATE may have waited for another process
            token = int(connection.execute(_NEXT_TOKEN).fetchone()[0])
            values = (resource, self._owner, token, now + self._lease_us, now, dead)
            taken = connection.execute(_TAKE, values).rowcount
            if taken:
                # Our membership must outlive each of our leases: a member alone trusts only the
                # lease rows of live members (see Solo mode).
                connection.execute(_JOIN, (self._owner, now + self._lease_us, 1))
            connection.execute("COMMIT" if taken else "ROLLBACK")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        if not taken:
            return None
        with self._mutex:
            self._member_until = now + self._lease_us
        if dead is not None:
            logger.info("lock on %s taken over from %s, whose process has exited", resource, dead)
        return token

    def token(self, resource: str) -> int | None:
        """The fencing token of this provider's lock on ``resource``, or None if it does not hold
        it (never took it, released it, or found it lapsed at renewal)."""
        return self._holding(resource)

    def release(self, resource: str) -> None:
        with self._mutex:  # solo and not publishing: held here only, nothing to write (no write mutex)
            if self._solo and not self._publishing:
                self._held.pop(resource, None)
                return
        try:
            with self._write_mutex:
                with self._mutex:
                    token = self._held.pop(resource, None)
                    if token is None or self._solo or self._closed:
                        return  # solo: it was only held here; closed: close() deleted our rows
                self._connection.execute(_RELEASE, (resource, self._owner, token))
        except ProviderError as error:
            raise type(error)(f"could not unlock {resource} (it lapses within {self.lease} s): {error}") from error

    # -- renewal -------------------------------------------------------------------------------

    def renew_now(self) -> None:
        """Extend our membership and every lock held now by one lease, and switch between solo and
        shared as the other members require (what the renewal thread does every lease / 3)."""
        with self._write_mutex:
            if self._closed or not self._joined:
                return
            self._rejoin_if_lapsed(_now())
            try:
                self._apply(*_in_transaction(self._connection, self._renew))
            finally:
                self._published()  # in case _renew published

    def _renew(self) -> tuple[_Mode, list[str]]:
        """Transaction body: extend our membership and leases. Solo with a newcomer: publish our
        locks; shared and alone again: go solo. Returns the mode and the locks found lapsed."""
        connection, now = self._connection, _now()
        lost: list[str] = []
        connection.execute(_FORGET_LAPSED, (now,))
        if self._solo:
            if self._live_others(now):
                return self._publish()  # someone joined: it waits for our locks
            return self._write_membership(), lost
        for resource, token in self._held.items():
            if connection.execute(_RENEW, (now + self._lease_us, resource, self._owner, token, now)).rowcount == 0:
                lost.append(resource)
        return self._write_membership(), lost

    # The renewal thread (the base's) looks for newcomers between renewals, and retries a failed
    # renewal sooner than the regular interval, since the leases are running out; jittered.
    _check_every = _SOLO_CHECK

    def _between_renewals(self) -> None:
        """While solo: if another member has joined, write our locks for it now (it waits for that)."""
        with self._write_mutex:
            if not self._closed and self._solo and self._live_others(_now()):
                self._go_shared()

    def _retry_after(self, failures: int) -> float:
        return min(self.lease / 3, 0.05 * 2.0 ** min(failures, 10)) * random.uniform(0.5, 1)

    def _renewal_log(self) -> OutageLog:
        return _RenewalLog(f"renewing SQLite locks in {self._path!r}", logger)

    def _close_backend(self) -> None:
        """Release every lock this provider holds, leave, and close the connection."""
        with self._write_mutex:
            self._closed = True
            self._forget_all()
            try:
                if self._joined:
                    _in_transaction(self._connection, self._leave)
            except ProviderError as error:
                logger.warning("could not release SQLite locks on close; they lapse within %s s: %s", self.lease, error)
            finally:
                self._connection.close()

    def _leave(self) -> None:
        self._connection.execute(_RELEASE_ALL, (self._owner,))
        self._connection.execute(_LEAVE, (self._owner,))
        self._joined = False
