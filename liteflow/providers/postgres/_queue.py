"""A reliable :class:`QueueProvider` on one PostgreSQL table, woken by ``LISTEN``/``NOTIFY``.

Rows of ``<schema>.queue_item``
    One row per delivery: ``(id, queue, item_id, visible_at, taken_by)``. A waiting row has
    ``taken_by`` NULL and ``visible_at`` = when it was queued; a taken row has the delivery's token
    in ``taken_by`` and ``visible_at`` = when it will be handed out again unless acknowledged.

Delivery (at least once)
    ``enqueue`` inserts a waiting row, unless one for that id is already waiting (a partial unique
    index and ``ON CONFLICT``: then only a higher priority is written to it), and in the same
    statement sends
    ``pg_notify('liteflow_queue_<schema>', <queue>)``, delivered when it commits. ``dequeue`` takes
    the first visible row, oldest ``visible_at`` first, with ``FOR UPDATE SKIP LOCKED`` (so consumers
    on any node never block one another or take the same row) and in the same statement marks it
    taken until ``now() + visibility_timeout``. ``acknowledge`` deletes that delivery's row (in the
    statement of the provider's next take, so that a host's acknowledge-then-dequeue is one commit,
    or within 10 ms). A row
    whose consumer died (or worked past the timeout) becomes visible again and is handed out to the
    next ``dequeue``. All times are the database server's clock, so the nodes' clocks do not matter.
    An id queued again while taken gets a new waiting row: a workflow re-queued while it runs runs
    again. ``close`` makes this provider's unacknowledged deliveries visible at once.

Waiting
    An empty ``dequeue`` waits on a condition fed by one listener thread per provider (a dedicated
    connection that ``LISTEN``s): it wakes as soon as any node's enqueue commits, without holding a
    pool connection and without polling. Each notification wakes one waiting ``dequeue`` of this
    provider, not all of them (a notification is one new row: waking every idle worker made them
    race for it, with one query each and all but one finding nothing). An enqueue of this process
    wakes its waiter as soon as it commits, and the notification that follows wakes no one
    (:class:`Listener` knows its sender's session). It re-checks every second
    as well (notifications missed while the listener reconnects), and sooner when a taken row is
    due to become visible again.

Durability
    By default the queue's commits return before their WAL reaches disk (``SET synchronous_commit =
    off`` on its pool; pass ``synchronous_commit=True`` to wait for the flush). The queue only
    announces work that is already durable in the store, so this is safe: a
    crash of the *database server* (not of a host) can then forget the last fraction of a second of
    enqueues, takes and acknowledgements, and nothing else (PostgreSQL stays consistent). Each such
    loss is one LiteFlow already recovers from: a forgotten acknowledgement or take is a redelivery;
    a forgotten enqueue is found again by the host's poller, because the instance or event it
    announced was saved first by the persistence provider, which always commits synchronously.
    What it buys is an fsync per queue operation (held, for an enqueue, under the server-wide lock
    that orders ``NOTIFY``ing commits): little where fsync is cheap (about 5-10 % more workflows/s
    on the 2-core development machine), more on disks with a slow fsync.

Items of one queue come out highest ``priority`` first (a column of the row, exact across nodes),
then first in, first out; redelivered items rejoin their priority by their redelivery time.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
from collections import defaultdict

from liteflow.providers.spi import Backoff, InvalidArgumentError, OutageLog, ProviderError, QueueProvider, QueueType

from ._common import (
    CONNECT_TIMEOUT,
    POOL_OPTIONS,
    STATEMENT_TIMEOUT,
    Statement,
    check_schema,
    conninfo_from_url,
    open_pool,
    translated,
)
from ._listener import Listener
from ._schema import migrate, quoted

logger = logging.getLogger("liteflow.providers.postgres")

_RECHECK = 1.0
"""Longest an empty ``dequeue`` waits without looking at the table again."""
_ACK_DELAY = 0.01
"""Longest an acknowledged row waits for a take to delete it before the flusher thread does."""


class PostgresQueueProvider(QueueProvider):
    """Reliable, de-duplicating priority queues in PostgreSQL (FIFO within a priority); see the
    module docstring.

    ``conninfo_or_url`` is a libpq connection string or a ``postgresql://`` URL. The table lives in
    ``schema`` (created and migrated on start). ``visibility_timeout`` (seconds) is how long a
    delivery may go unacknowledged before it is handed out again: pick it above your slowest step.
    ``synchronous_commit=True`` makes every queue commit wait for its WAL flush (see Durability).
    ``connect_timeout`` bounds opening a connection or waiting for a free one, ``statement_timeout``
    each call's wait for the server (seconds); past them a call raises
    :class:`ProviderUnavailableError`, as it does whenever the server cannot be reached.
    """

    def __init__(
        self,
        conninfo_or_url: str,
        *,
        schema: str = "liteflow",
        visibility_timeout: float = 30.0,
        min_size: int = 1,
        max_size: int = 8,
        synchronous_commit: bool = False,
        connect_timeout: float = CONNECT_TIMEOUT,
        statement_timeout: float = STATEMENT_TIMEOUT,
    ) -> None:
        if visibility_timeout <= 0:
            raise InvalidArgumentError(f"visibility_timeout must be positive, got {visibility_timeout}")
        self.schema = check_schema(schema)
        self.visibility_timeout = float(visibility_timeout)
        s = quoted(schema)
        channel = f"liteflow_queue_{schema}"
        self._enqueue_sql = (
            f"WITH added AS (INSERT INTO {s}.queue_item (queue, item_id, visible_at, priority)"
            " VALUES (%s, %s, now(), %s)"
            " ON CONFLICT (queue, item_id) WHERE taken_by IS NULL DO UPDATE SET priority = EXCLUDED.priority"
            f" WHERE {s}.queue_item.priority < EXCLUDED.priority RETURNING queue)"
            f" SELECT pg_notify('{channel}', queue) FROM added"
        )
        self._take_sql = (
            f"UPDATE {s}.queue_item SET taken_by = %s, visible_at = now() + %s * interval '1 second'"
            f" WHERE id = (SELECT id FROM {s}.queue_item WHERE queue = %s AND visible_at <= now()"
            " ORDER BY priority DESC, visible_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id, item_id"
        )
        self._next_visible_sql = (
            f"SELECT extract(epoch FROM min(visible_at) - now()) FROM {s}.queue_item"
            " WHERE queue = %s AND visible_at > now()"
        )
        # Acknowledged deliveries, deleted in the statement of this provider's next take (one
        # commit for both), or by the flusher thread if no take comes within _ACK_DELAY.
        acked = f"DELETE FROM {s}.queue_item AS q USING unnest(%s::bigint[], %s::text[]) AS a(id, token)"
        acked += " WHERE q.id = a.id AND q.taken_by = a.token"
        self._ack_many_sql = acked
        self._ack_sql = f"DELETE FROM {s}.queue_item WHERE id = %s AND taken_by = %s"
        self._ack_and_take_sql = (
            f"WITH acked AS ({acked}) UPDATE {s}.queue_item SET taken_by = %s,"
            " visible_at = now() + %s * interval '1 second'"
            f" WHERE id = (SELECT id FROM {s}.queue_item WHERE queue = %s AND visible_at <= now()"
            " AND id <> ALL(%s::bigint[]) ORDER BY priority DESC, visible_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)"
            " RETURNING id, item_id"
        )
        self._enqueue = Statement(self._enqueue_sql)
        self._take_one = Statement(self._take_sql, (int, str))
        self._ack_and_take = Statement(self._ack_and_take_sql, (int, str))
        self._ack_one = Statement(self._ack_sql)
        self._ack_many = Statement(self._ack_many_sql)
        # For a store on the same database and schema: the enqueue inside its create's
        # transaction, the notification sent after its COMMIT (see joint_enqueue).
        self._joint_sql = (
            f"INSERT INTO {s}.queue_item (queue, item_id, visible_at, priority) VALUES (%s, %s, now(), %s)"
            " ON CONFLICT (queue, item_id) WHERE taken_by IS NULL DO UPDATE SET priority = EXCLUDED.priority"
            f" WHERE {s}.queue_item.priority < EXCLUDED.priority"
        )
        self._joint_notify_sql = f"SELECT pg_notify('{channel}', %s)"
        self._joint = (Statement(self._joint_sql), Statement(self._joint_notify_sql))
        self._return_sql = f"UPDATE {s}.queue_item SET visible_at = now() WHERE id = ANY(%s) AND taken_by = ANY(%s)"
        self._node = secrets.token_hex(6)
        self._deliveries = itertools.count(1)
        # (queue, item) -> this provider's unacknowledged deliveries: (row id, token, thread id).
        self._taken: defaultdict[tuple[str, str], list[tuple[int, str, int]]] = defaultdict(list)
        self._taken_lock = threading.Lock()
        self._acked: list[tuple[int, str]] = []  # acknowledged, row not deleted yet: (row id, token)
        self._acked_ready = threading.Condition(self._taken_lock)
        # Per queue: (monotonic time a taken row becomes visible again, when that was looked up).
        self._redelivery: dict[str, tuple[float, float]] = {}
        self._closed = False
        self._pool = open_pool(
            conninfo_or_url,
            min_size=min_size,
            max_size=max_size,
            name=f"liteflow-queue-{schema}",
            synchronous_commit=synchronous_commit,
            connect_timeout=connect_timeout,
            statement_timeout=statement_timeout,
        )
        try:
            with translated("migrate the schema"), self._pool.connection() as conn:
                migrate(conn, schema)
            self._listener = Listener(self._pool.conninfo, channel, ready_timeout=connect_timeout)
        except BaseException:
            self._pool.close()
            raise
        self._flusher = threading.Thread(target=self._flush_loop, name="liteflow-pg-queue-acks", daemon=True)
        self._flusher.start()

    @classmethod
    def from_url(cls, url: str) -> PostgresQueueProvider:
        """``postgresql://user:password@host:port/database`` (or ``postgres://``); LiteFlow options
        as query parameters (``?schema=app&visibility_timeout=60``), any others go to libpq."""
        conninfo, values = conninfo_from_url(url, {**POOL_OPTIONS, "visibility_timeout": float})
        return cls(conninfo, **values)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(schema={self.schema!r})"

    def enqueue(self, queue: QueueType, item_id: str, priority: int = 0) -> None:
        name = QueueType(queue).value
        with translated("queue an item"), self._pool.connection() as conn:
            pid = conn.info.backend_pid
            self._listener.expect(name, pid)
            sent = False
            try:
                sent = self._enqueue.run(conn, (name, item_id, priority)).rowcount > 0
            finally:
                if not sent:
                    self._listener.unexpect(name, pid)
        if sent:
            self._listener.sent(name)  # a consumer of this process wakes now, not after the round trip

    def joint_enqueue(
        self, target: frozenset[tuple[str, object]], schema: str
    ) -> tuple[Statement, Statement, Listener] | None:
        """For :meth:`PostgresPersistenceProvider.create_workflow_queued`: the statement that queues
        an item (parameters: queue, item id, priority) inside another connection's transaction, the
        statement that notifies the consumers (parameter: queue) after its COMMIT, and the listener
        to tell (``expect``/``sent``/``unexpect``, as :meth:`enqueue` does); None unless this queue
        lives in the database ``target`` and the schema ``schema``."""
        if self._closed or schema != self.schema or target != self._pool.target:
            return None
        return (*self._joint, self._listener)

    def dequeue(self, queue: QueueType, timeout: float) -> str | None:
        name = QueueType(queue).value
        deadline = time.monotonic() + max(timeout, 0.0)
        ticketed = False  # whether this attempt was woken by a notification's ticket
        while not self._closed:
            epoch = self._listener.epoch()
            try:
                item = self._take(name)
                if item is not None:
                    if not ticketed:
                        self._listener.spend(name)  # its notification wakes no one for nothing
                    return item
                now = time.monotonic()
                if now >= deadline:
                    return None
                redelivery = self._next_redelivery(name, now)
                wait = min(deadline - now, _RECHECK, max(redelivery - now, 0.001))
            except ProviderError:
                if self._closed:  # the pool was closed under us: that is the wake-up close() promises
                    return None
                raise
            ticketed = self._listener.wait_ticket(name, epoch, wait)
        return None

    def _take(self, name: str) -> str | None:
        token = f"{self._node}-{next(self._deliveries)}"
        with self._taken_lock:
            acked, self._acked = self._acked, []
        try:
            with translated("take an item"), self._pool.connection() as conn:
                if acked:
                    ids, tokens = [a[0] for a in acked], [a[1] for a in acked]
                    parameters = (ids, tokens, token, self.visibility_timeout, name, ids)
                    row = self._ack_and_take.run(conn, parameters).fetchone()
                else:
                    row = self._take_one.run(conn, (token, self.visibility_timeout, name)).fetchone()
        except BaseException:
            if acked:
                with self._taken_lock:
                    self._acked[:0] = acked  # not deleted: the flusher (or the next take) tries again
            raise
        if row is None:
            return None
        row_id, item_id = int(row[0]), str(row[1])
        with self._taken_lock:
            self._taken[(name, item_id)].append((row_id, token, threading.get_ident()))
            # This row is visible again after the timeout unless acknowledged: waiters need not ask.
            due, looked_up = self._redelivery.get(name, (float("inf"), 0.0))
            self._redelivery[name] = (min(due, time.monotonic() + self.visibility_timeout), looked_up)
        return item_id

    def _next_redelivery(self, name: str, now: float) -> float:
        """When (monotonic) a taken row of this queue is next handed out again, as far as known:
        asked of the database at most every ``_RECHECK / 2`` seconds per provider (rows taken by
        other nodes), and kept up to date with this provider's own takes between."""
        with self._taken_lock:
            due, looked_up = self._redelivery.get(name, (float("inf"), 0.0))
        if due > now and now - looked_up < _RECHECK / 2:
            return due
        due = now + self._next_visible(name)
        with self._taken_lock:
            self._redelivery[name] = (due, now)
        return due

    def _next_visible(self, name: str) -> float:
        """Seconds until a taken row of this queue becomes visible again (inf if none)."""
        with translated("look at the queue"), self._pool.connection() as conn:
            row = conn.execute(self._next_visible_sql, (name,)).fetchone()
        if row is None or row[0] is None:
            return float("inf")
        return max(float(row[0]), 0.001)

    def acknowledge(self, queue: QueueType, item_id: str) -> None:
        """Forget a delivery for good. Its row is deleted by this provider's next take, in the same
        statement (the host dequeues again right after acknowledging, so one commit serves both),
        or within ``_ACK_DELAY`` seconds by a background thread, or by :meth:`close`. A node that
        dies in between has its acknowledged item delivered again after the visibility timeout:
        at least once, as for any crash before the acknowledgement."""
        key = (QueueType(queue).value, item_id)
        with self._taken_lock:
            deliveries = self._taken.get(key)
            if not deliveries:
                return
            # The host acknowledges on the thread that dequeued: prefer that thread's delivery.
            thread = threading.get_ident()
            index = next((i for i in range(len(deliveries) - 1, -1, -1) if deliveries[i][2] == thread), -1)
            row_id, token, _ = deliveries.pop(index)
            if not deliveries:
                del self._taken[key]
            self._acked.append((row_id, token))
            if len(self._acked) == 1:
                self._acked_ready.notify()

    def _flush_acks(self) -> None:
        with self._taken_lock:
            acked, self._acked = self._acked, []
        if not acked:
            return
        try:
            with translated("acknowledge items"), self._pool.connection() as conn:
                if len(acked) == 1:
                    self._ack_one.run(conn, acked[0])
                else:
                    self._ack_many.run(conn, ([a[0] for a in acked], [a[1] for a in acked]))
        except BaseException:
            with self._taken_lock:
                self._acked[:0] = acked
            raise

    def _flush_loop(self) -> None:
        """Delete acknowledged rows that no take carried away within ``_ACK_DELAY`` seconds."""
        backoff, outage = Backoff(initial=_ACK_DELAY), OutageLog("PostgreSQL queue acknowledgement flusher", logger)
        while not self._closed:
            try:
                with self._taken_lock:
                    while not self._acked and not self._closed:
                        self._acked_ready.wait()
                time.sleep(_ACK_DELAY)  # a take usually comes sooner and deletes them itself
                self._flush_acks()
            except Exception as error:  # the thread must outlive any failure: acks wait, and retry
                if self._closed:
                    return
                outage.failed(error)
                with self._taken_lock:
                    self._acked_ready.wait(backoff.next_delay())  # close() wakes it
            else:
                outage.recovered()
                backoff.reset()

    def close(self) -> None:
        """Wake blocked ``dequeue`` calls, hand back this provider's unacknowledged deliveries at
        once, and close the connections."""
        if self._closed:
            return
        with self._taken_lock:
            self._closed = True
            self._acked_ready.notify_all()
        self._listener.close()
        self._flusher.join()
        with self._taken_lock:
            held = [delivery for deliveries in self._taken.values() for delivery in deliveries]
            self._taken.clear()
        try:
            self._flush_acks()
            if held:
                with self._pool.connection() as conn:
                    conn.execute(self._return_sql, ([d[0] for d in held], [d[1] for d in held]))
        except Exception as error:
            logger.warning("could not hand back unacknowledged queue items on close: %s", error)
        finally:
            self._pool.close()
