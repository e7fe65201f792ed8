"""A :class:`LockProvider` on PostgreSQL: leased lock rows with renewal and fencing tokens.

Rows of ``<schema>.lock_lease``: ``(resource, owner, token, expires_at)``, one per lock held.
(Advisory locks would die with their session, but they belong to a connection, and a pooled
connection is shared between threads and calls; lease rows work with a pool and show who holds
what in plain SQL.)

Guarantees
    ``acquire`` is one ``INSERT ... ON CONFLICT (resource) DO UPDATE ... WHERE expires_at < now()``:
    it takes a free resource, or one whose lease has lapsed, and otherwise changes nothing; racing
    callers on any node queue on the row and exactly one wins. ``release`` deletes the row only if
    it still carries this grant's token, so a node never frees a lock that lapsed and was taken by
    another. A background thread extends this provider's leases every ``lease / 3`` (only those
    still unexpired and still carrying its tokens), so a lock stays held for as long as its node is
    alive and reaches the database, and a node that dies (or stalls past the lease) loses its locks
    at most ``lease`` seconds after its last renewal. A lock found lapsed at renewal is dropped and
    logged at WARNING. Every comparison uses the database server's clock.

Durability
    By default commits do not wait for their WAL flush (``synchronous_commit=True`` makes them wait):
    a crash of the database server can then forget grants made in its last fraction of a second, so such a lock is
    free again when the server comes back while its holder may still be working: the same overlap
    as a lease lapsing, caught the same way (next paragraph). Tokens still only grow, as the
    sequence is recovered ahead of any value handed out.

Fencing
    Every grant takes the next value of the ``lock_token`` sequence, so tokens grow with the order
    in which locks were granted; ``token(resource)`` returns it while this provider holds the lock.
    LiteFlow itself relies on the persistence provider's revision check for the case the token is
    for (a holder whose lease lapsed during a long step saves a stale instance: ConcurrencyError).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any, Literal

from liteflow.providers.spi import LeasedLockProvider, ProviderError

from ._common import (
    CONNECT_TIMEOUT,
    POOL_OPTIONS,
    STATEMENT_TIMEOUT,
    Statement,
    check_schema,
    conninfo_from_url,
    open_pool,
    run_script,
    translated,
)
from ._schema import migrate, quoted

logger = logging.getLogger("liteflow.providers.postgres")


class PostgresLockProvider(LeasedLockProvider[int]):
    """Leased, renewed, token-checked locks in PostgreSQL; see the module docstring.

    ``conninfo_or_url`` is a libpq connection string or a ``postgresql://`` URL. ``lease`` is in
    seconds. ``renew=False`` turns renewal off, so locks lapse after one lease even while held: for
    tests that stand in for a stalled node, not for production. ``synchronous_commit=True``
    makes every grant wait for its WAL flush (see Durability). ``connect_timeout`` and
    ``statement_timeout`` bound every call as for :class:`PostgresQueueProvider`.
    """

    def __init__(
        self,
        conninfo_or_url: str,
        *,
        schema: str = "liteflow",
        lease: float = 10.0,
        renew: bool = True,
        min_size: int = 1,
        max_size: int = 8,
        synchronous_commit: bool = False,
        connect_timeout: float = CONNECT_TIMEOUT,
        statement_timeout: float = STATEMENT_TIMEOUT,
    ) -> None:
        super().__init__(lease=float(lease), logger=logger, what="PostgreSQL lock")
        self.schema = check_schema(schema)
        s = quoted(schema)
        self._acquire_sql = (
            f"INSERT INTO {s}.lock_lease AS l (resource, owner, token, expires_at)"
            f" VALUES (%s, %s, nextval('{s}.lock_token'), now() + %s * interval '1 second')"
            " ON CONFLICT (resource) DO UPDATE SET owner = EXCLUDED.owner, token = EXCLUDED.token,"
            " expires_at = EXCLUDED.expires_at WHERE l.expires_at < now() RETURNING token"
        )
        self._release_sql = f"DELETE FROM {s}.lock_lease WHERE resource = %s AND token = %s"
        self._acquire = Statement(self._acquire_sql, (int,))
        self._table, self._sequence = f"{s}.lock_lease", f"{s}.lock_token"
        self._reads: dict[str, Statement] = {}  # acquire_and_read's, by the read they end with
        self._release = Statement(self._release_sql)
        self._renew_sql = (
            f"UPDATE {s}.lock_lease AS l SET expires_at = now() + %s * interval '1 second'"
            " FROM unnest(%s::text[], %s::bigint[]) AS h(resource, token)"
            " WHERE l.resource = h.resource AND l.token = h.token AND l.owner = %s AND l.expires_at >= now()"
            " RETURNING l.resource, l.token"
        )
        self._release_all_sql = f"DELETE FROM {s}.lock_lease WHERE owner = %s"
        self._owner = secrets.token_hex(12)
        self._pool = open_pool(
            conninfo_or_url,
            min_size=min_size,
            max_size=max_size,
            name=f"liteflow-lock-{schema}",
            synchronous_commit=synchronous_commit,
            connect_timeout=connect_timeout,
            statement_timeout=statement_timeout,
        )
        try:
            with translated("migrate the schema"), self._pool.connection() as conn:
                migrate(conn, schema)
        except BaseException:
            self._pool.close()
            raise
        if renew:
            self._start_renewal("liteflow-pg-lock-renewal")

    @classmethod
    def from_url(cls, url: str) -> PostgresLockProvider:
        """``postgresql://user:password@host:port/database`` (or ``postgres://``); LiteFlow options
        as query parameters (``?schema=app&lease=15``), any others go to libpq."""
        conninfo, values = conninfo_from_url(url, {**POOL_OPTIONS, "lease": float})
        return cls(conninfo, **values)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(schema={self.schema!r}, owner={self._owner!r})"

    def acquire(self, resource: str) -> bool:
        with translated(f"lock {resource}"), self._pool.connection() as conn:
            row = self._acquire.run(conn, (resource, self._owner, self.lease)).fetchone()
        if row is None:
            return False
        self._hold(resource, int(row[0]))
        return True

    def acquire_and_read(
        self,
        resource: str,
        where: tuple[frozenset[tuple[str, object]], str],
        select: str,
        parameters: tuple[Any, ...],
        columns: tuple[Callable[[bytes], Any], ...],
    ) -> list[tuple[Any, ...]] | Literal[False] | None:
        """:meth:`acquire`, then the read ``select`` (at most one row, whose first column is never
        NULL; read as ``columns``) once the lock is granted, in one round trip: the rows it read,
        or False if someone else holds the lock (nothing held); None, having done nothing, unless
        this provider lives in ``where`` (a ``Database.target`` and a schema). For
        :meth:`PostgresPersistenceProvider.acquire_and_load`.

        Two prepared statements in one simple query: the read has a snapshot of its own (read
        committed, the server's default), taken after the grant, so it sees every save committed
        before the previous holder's release; in one statement (a CTE) it would share the insert's,
        which may predate both. libpq gives back only the last statement's result, so the read
        also says whether the lock was granted: the row of ``resource`` holds the token this
        session just drew from the sequence (the insert draws one whether or not it is granted,
        and the sequence never repeats one: restarting it while leases exist would break this)."""
        if where != (self._pool.target, self.schema):
            return None
        read = self._reads.get(select)
        if read is None:
            read = self._reads[select] = Statement(
                f"SELECT (SELECT token FROM {self._table} WHERE resource = %s AND token = currval('{self._sequence}')),"
                f" r.* FROM (SELECT 1) AS one LEFT JOIN LATERAL ({select}) AS r ON true"
            )
        with translated(f"lock {resource}"), self._pool.connection() as conn:

            def both() -> list[bytes]:
                acquire = self._acquire.command(conn, (resource, self._owner, self.lease))
                return [acquire, read.command(conn, (resource, *parameters))]

            (granted, *row) = run_script(conn, both, (int, *columns)).rows[0]
        if granted is None:
            return False
        self._hold(resource, granted)
        return [] if row[0] is None else [tuple(row)]

    def token(self, resource: str) -> int | None:
        """The fencing token of this provider's lock on ``resource``, or None if it does not hold
        it (never took it, released it, or found it lapsed at renewal)."""
        return self._holding(resource)

    def _give_back(self, resource: str, token: int) -> None:
        try:
            with translated(f"unlock {resource}"), self._pool.connection() as conn:
                self._release.run(conn, (resource, token))
        except ProviderError as error:
            raise ProviderError(f"{error} (the lock lapses within {self.lease} s)") from error.__cause__

    def _extend(self, held: list[tuple[str, int]]) -> None:
        resources, tokens = [r for r, _ in held], [t for _, t in held]
        with translated("renew locks"), self._pool.connection() as conn:
            rows = conn.execute(self._renew_sql, (self.lease, resources, tokens, self._owner)).fetchall()
        kept = {(str(r), int(t)) for r, t in rows}
        for resource, token in held:
            if (resource, token) not in kept:
                self._drop_lost(resource, token)

    def _close_backend(self) -> None:
        self._forget_all()
        try:
            with translated("release locks"), self._pool.connection() as conn:
                conn.execute(self._release_all_sql, (self._owner,))
        except ProviderError as error:
            logger.warning("could not release PostgreSQL locks on close; they lapse within %s s: %s", self.lease, error)
        finally:
            self._pool.close()
