"""A :class:`PersistenceProvider` on PostgreSQL, with psycopg 3 and a ``psycopg_pool`` pool.

Connections and round trips
    Every call borrows an autocommit connection from the pool for one statement, or for one
    explicit transaction when it writes more than one row (sent in pipeline mode: one round trip
    for BEGIN, the statements and COMMIT). Nothing is held between calls, so
    ``max_size`` bounds the connections one provider opens whatever the number of host threads.
    A plain save (the instance alone) is one UPDATE in autocommit.
    With a :class:`PostgresQueueProvider` on the same connection string and schema,
    :meth:`create_workflow_queued` stores a new instance and queues it in one transaction and one
    round trip, and :meth:`create_event_queued` does the same for a published event; with a
    :class:`PostgresLockProvider` there, :meth:`acquire_and_load` takes a workflow's lock and loads
    it in one round trip.

Consistency
    ``persist_workflow`` is one transaction: an ``UPDATE ... WHERE id = %s AND revision = %s`` (the
    optimistic concurrency check: a row lock makes racing saves of one revision queue up, and all
    but the first then find the revision changed and raise :class:`ConcurrencyError`), then the
    subscriptions, ended subscriptions, errors and outbox events. Everything that can fail on the
    caller's data (serialization) happens before the transaction begins.

Durability
    Commits wait for their WAL flush, except a save that only ends subscriptions (no new
    subscription, error or event): an event delivery, which hands an event to a waiting step. It
    commits with ``synchronous_commit = off``, so the step runs one fsync sooner. Nothing is lost to
    a crash of the server: the host marks the event processed only after the delivery, in a
    synchronous commit that the WAL orders after it, so either both are on disk or neither is, and
    an event still unprocessed is delivered again (the poller queues it). The resumed step's own
    save is synchronous as well, and makes the delivery durable before anything it did is.

Wake-ups (optional)
    With ``notify=True``, a save that leaves an instance runnable now, or that stores events, also
    sends ``NOTIFY liteflow_work_<schema>`` in its transaction, and :meth:`wait_for_work` lets a
    process block until some host's save makes work (or a timeout). Off by default: PostgreSQL
    serializes the commits of notifying transactions, and the host's own wake-ups come from its
    queue provider (see :class:`PostgresQueueProvider`, which notifies on every enqueue).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import psycopg
from psycopg import errors as pg_errors

from liteflow.providers.spi import (
    ActivityCount,
    ActivityCounter,
    ConcurrencyError,
    Event,
    EventNotFoundError,
    EventSubscription,
    ExecutionError,
    InstanceQuery,
    LockProvider,
    PersistenceProvider,
    QueueProvider,
    QueueType,
    WorkflowInstance,
    WorkflowNotFoundError,
    WorkflowStatus,
    error_from_record,
    event_row,
    instance_record_text,
    json_text,
    read_event,
    read_instance,
    save_rows,
    subscription_from_record,
    utcnow,
)

from ._common import (
    CONNECT_TIMEOUT,
    POOL_OPTIONS,
    STATEMENT_TIMEOUT,
    Statement,
    check_schema,
    conninfo_from_url,
    cursor,
    flag,
    open_pool,
    run_script,
    translated,
    utc,
)
from ._listener import Listener
from ._lock import PostgresLockProvider
from ._queue import PostgresQueueProvider
from ._schema import migrate, quoted

_Joint = tuple[Statement, Statement, Listener]
"""What :meth:`PostgresQueueProvider.joint_enqueue` gives a store."""

# json.dumps builds a new encoder whenever it is given options; one shared encoder avoids that.
_dumps = json_text
_loads = json.loads
_RUNNABLE = WorkflowStatus.RUNNABLE.value
# Beside the record, the columns a quarantined instance or event (one whose record cannot be
# decoded) is rebuilt from.
_WORKFLOW_COLUMNS = (
    "record, revision, id, definition_id, version, reference, status, next_execution, create_time, complete_time"
)
_EVENT_COLUMNS = "record, is_processed, id, event_name, event_key, event_time"


def _flag(value: bytes) -> bool:
    return value == b"t"


def _time(value: bytes) -> datetime:
    """A time the statement wrote as UTC text (``to_char``)."""
    return datetime.fromisoformat(value.decode()).replace(tzinfo=UTC)


class _Sql:
    """The statements, qualified with one schema."""

    def __init__(self, schema: str) -> None:
        s = quoted(schema)
        self.insert_workflow = (
            f"INSERT INTO {s}.workflow (id, definition_id, version, reference, status, next_execution, create_time,"
            " complete_time, revision, record) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        )
        self.update_workflow = (
            f"UPDATE {s}.workflow SET definition_id = %s, version = %s, reference = %s, status = %s,"
            " next_execution = %s, complete_time = %s, revision = revision + 1, record = %s"
            " WHERE id = %s AND revision = %s"
        )
        # The update of a save that writes more rows: fails (division by zero) if the revision moved on.
        self.checked_update_workflow = (
            f"WITH saved AS ({self.update_workflow} RETURNING 1) SELECT 1 / count(*) FROM saved"
        )
        self.workflow_revision = f"SELECT revision FROM {s}.workflow WHERE id = %s"
        self.select_workflow = f"SELECT {_WORKFLOW_COLUMNS} FROM {s}.workflow WHERE id = %s"
        self.select_workflows = f"SELECT {_WORKFLOW_COLUMNS} FROM {s}.workflow"
        self.runnable_workflows = (
            f"SELECT id FROM {s}.workflow WHERE status = 'runnable' AND next_execution IS NOT NULL"
            " AND next_execution <= %s ORDER BY next_execution"
        )
        self.upsert_subscription = (
            f"INSERT INTO {s}.subscription AS t (id, workflow_id, event_name, event_key, subscribe_as_of, record)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET workflow_id = EXCLUDED.workflow_id,"
            " event_name = EXCLUDED.event_name, event_key = EXCLUDED.event_key,"
            " subscribe_as_of = EXCLUDED.subscribe_as_of, record = EXCLUDED.record"
        )
        self.delete_subscriptions = f"DELETE FROM {s}.subscription WHERE id = ANY(%s)"
        self.select_subscriptions = (
            f"SELECT record FROM {s}.subscription WHERE event_name = %s AND event_key = %s"
            " AND subscribe_as_of <= %s ORDER BY subscribe_as_of, id"
        )
        self.insert_error = (
            f"INSERT INTO {s}.execution_error (id, workflow_id, record) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING"
        )
        self.select_errors = f"SELECT record FROM {s}.execution_error WHERE workflow_id = %s ORDER BY seq"
        self.upsert_event = (
            f"INSERT INTO {s}.event AS t (id, event_name, event_key, event_time, is_processed, record)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET event_name = EXCLUDED.event_name,"
            " event_key = EXCLUDED.event_key, event_time = EXCLUDED.event_time,"
            " is_processed = EXCLUDED.is_processed, record = EXCLUDED.record"
        )
        self.select_event = f"SELECT {_EVENT_COLUMNS} FROM {s}.event WHERE id = %s"
        self.select_events = (
            f"SELECT {_EVENT_COLUMNS} FROM {s}.event WHERE event_name = %s AND event_key = %s"
            " AND event_time >= %s ORDER BY event_time, id"
        )
        self.runnable_events = (
            f"SELECT id FROM {s}.event WHERE NOT is_processed AND event_time <= %s ORDER BY event_time, id"
        )
        self.mark_event = f"UPDATE {s}.event SET is_processed = %s WHERE id = %s"
        self.purge_workflows = (
            f"DELETE FROM {s}.workflow WHERE complete_time IS NOT NULL AND complete_time < %s"
            " AND status = ANY(%s) RETURNING id"
        )
        self.purge_subscriptions = f"DELETE FROM {s}.subscription WHERE workflow_id = ANY(%s)"
        self.purge_errors = f"DELETE FROM {s}.execution_error WHERE workflow_id = ANY(%s)"
        self.purge_events = f"DELETE FROM {s}.event WHERE is_processed AND event_time < %s"
        self.notify = "SELECT pg_notify(%s, '')"
        self.asynchronous = "SET LOCAL synchronous_commit = off"
        # The hot paths' statements through libpq itself (see Statement): a start, a plain save,
        # a load (its record and revision; the other columns only if the record cannot be read).
        self.insert = Statement(self.insert_workflow)
        self.update = Statement(self.update_workflow)
        self.load_sql = f"SELECT record, revision FROM {s}.workflow WHERE id = %s"
        self.load = Statement(self.load_sql, (str, int))
        self.notify_work = Statement(self.notify)
        # And an event's way to the step that waits for it.
        event_columns = (str, _flag, str, str, str, _time)
        utc_text = "to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"  # whatever the DateStyle
        as_text = f"{_EVENT_COLUMNS.replace('event_time', utc_text)} FROM"
        self.store_event = Statement(self.upsert_event)
        self.load_event = Statement(self.select_event.replace(f"{_EVENT_COLUMNS} FROM", as_text), event_columns)
        self.find_events = Statement(self.select_events.replace(f"{_EVENT_COLUMNS} FROM", as_text), event_columns)
        self.find_subscriptions = Statement(self.select_subscriptions, (str,))
        self.mark = Statement(self.mark_event)


def _query_where(query: InstanceQuery) -> tuple[str, list[Any]]:
    """The WHERE clause of :meth:`PostgresPersistenceProvider.query_instances`, and its parameters."""
    clauses: list[str] = []
    parameters: list[Any] = []
    for clause, value in (
        ("status = %s", None if query.status is None else WorkflowStatus(query.status).value),
        ("definition_id = %s", query.workflow_definition_id),
        ("reference = %s", query.reference),
        ("create_time >= %s", None if query.created_from is None else utc(query.created_from)),
        ("create_time < %s", None if query.created_to is None else utc(query.created_to)),
    ):
        if value is not None:
            clauses.append(clause)
            parameters.append(value)
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), parameters


class PostgresPersistenceProvider(PersistenceProvider):
    """Workflow state in PostgreSQL, safe to call from many threads and many hosts at once.

    ``conninfo_or_url`` is a libpq connection string or a ``postgresql://`` URL. Tables live in
    ``schema`` (created and migrated on start). ``min_size``/``max_size`` size the connection
    pool. ``notify`` turns on the work notifications read by :meth:`wait_for_work`.
    ``connect_timeout`` bounds opening a connection or waiting for a free one, ``statement_timeout``
    each call's wait for the server (seconds); past them a call raises
    :class:`ProviderUnavailableError`, as it does whenever the server cannot be reached.
    """

    def __init__(
        self,
        conninfo_or_url: str,
        *,
        schema: str = "liteflow",
        min_size: int = 1,
        max_size: int = 8,
        notify: bool = False,
        connect_timeout: float = CONNECT_TIMEOUT,
        statement_timeout: float = STATEMENT_TIMEOUT,
    ) -> None:
        self.schema = check_schema(schema)
        self._conninfo = conninfo_or_url
        self._sql = _Sql(schema)
        self._notify = notify
        self._channel = f"liteflow_work_{schema}"
        self._listener: Listener | None = None
        self._listener_lock = threading.Lock()
        self._pool = open_pool(
            conninfo_or_url,
            min_size=min_size,
            max_size=max_size,
            name=f"liteflow-{schema}",
            connect_timeout=connect_timeout,
            statement_timeout=statement_timeout,
        )
        try:
            with translated("migrate the schema"), self._pool.connection() as conn:
                migrate(conn, schema)
        except BaseException:
            self._pool.close()
            raise

    @classmethod
    def from_url(cls, url: str) -> PostgresPersistenceProvider:
        """``postgresql://user:password@host:port/database`` (or ``postgres://``); LiteFlow options
        as query parameters (``?schema=app&max_size=16&notify=true``), any others go to libpq."""
        options = {name: POOL_OPTIONS[name] for name in POOL_OPTIONS if name != "synchronous_commit"}
        options["notify"] = flag
        conninfo, values = conninfo_from_url(url, options)
        return cls(conninfo, **values)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(schema={self.schema!r})"

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        self._pool.close()

    # -- workflows -----------------------------------------------------------------------------

    def _runnable_now(self, instance: WorkflowInstance) -> bool:
        return (
            self._notify
            and instance.status is WorkflowStatus.RUNNABLE
            and instance.next_execution is not None
            and utc(instance.next_execution) <= utcnow()
        )

    def create_workflow_queued(self, instance: WorkflowInstance, queue: QueueProvider) -> bool:
        """Store ``instance`` and queue its id, in one transaction and one round trip, when ``queue``
        is a :class:`PostgresQueueProvider` on this database (same connection string) and schema;
        otherwise return False having done nothing. See :meth:`create_workflow`."""
        joint = self._joint_queue(queue)
        if joint is None:
            return False
        self.create_workflow(instance, _joint=joint)
        return True

    def _joint_queue(self, queue: QueueProvider) -> _Joint | None:
        if not isinstance(queue, PostgresQueueProvider):
            return None
        return queue.joint_enqueue(self._pool.target, self.schema)

    def create_workflow(self, instance: WorkflowInstance, *, _joint: _Joint | None = None) -> None:
        row = (
            instance.id,
            instance.workflow_definition_id,
            instance.version,
            instance.reference,
            instance.status.value,
            None if instance.next_execution is None else utc(instance.next_execution),
            utc(instance.create_time),
            None if instance.complete_time is None else utc(instance.complete_time),
            instance.revision,
            instance_record_text(instance),  # the start's data encoded once
        )
        notify = self._runnable_now(instance)
        if _joint is not None:
            with translated("create a workflow"):
                try:
                    self._insert_queued(self._sql.insert, row, QueueType.WORKFLOW, instance.priority, notify, _joint)
                except pg_errors.UniqueViolation as error:
                    raise ConcurrencyError(f"workflow {instance.id} already exists", workflow_id=instance.id) from error
            return
        with translated("create a workflow"), self._pool.connection() as conn:
            try:
                if notify:
                    with conn.transaction():
                        conn.execute(self._sql.insert_workflow, row)
                        conn.execute(self._sql.notify, (self._channel,))
                else:
                    self._sql.insert.run(conn, row)
            except pg_errors.UniqueViolation as error:
                raise ConcurrencyError(f"workflow {instance.id} already exists", workflow_id=instance.id) from error

    def _insert_queued(
        self, insert: Statement, row: tuple[Any, ...], queue: QueueType, priority: int, notify: bool, joint: _Joint
    ) -> None:
        """``insert`` of ``row`` (whose first column is the id) and its queue row in one explicit
        transaction, then the notifications in a second one that does not wait for its WAL flush
        (a notifying transaction gets an xid, so its commit is written, and it holds the server's
        lock that orders notifying commits until it is flushed: the queue's own enqueue commits
        asynchronously for that reason), all one simple query of prepared statements (see
        ``run_script``): one round trip. Skipped if the first one fails (the connection is given
        back rolled back)."""
        enqueue, notify_queue, listener = joint
        name = queue.value
        with self._pool.connection() as conn:

            def commands() -> list[bytes]:
                script = [
                    b"BEGIN",
                    insert.command(conn, row),
                    enqueue.command(conn, (name, row[0], priority)),
                    b"COMMIT",
                    b"BEGIN",
                    self._sql.asynchronous.encode(),
                    notify_queue.command(conn, (name,)),
                ]
                if notify:
                    script.append(self._sql.notify_work.command(conn, (self._channel,)))
                return [*script, b"COMMIT"]

            pid = conn.info.backend_pid
            listener.expect(name, pid)
            committed = False
            try:
                run_script(conn, commands)
                committed = True
            finally:
                if not committed:
                    listener.unexpect(name, pid)
        listener.sent(name)  # a consumer of this process wakes now, not after the round trip

    def persist_workflow(
        self,
        instance: WorkflowInstance,
        *,
        subscriptions: Sequence[EventSubscription] = (),
        terminated_subscriptions: Sequence[str] = (),
        errors: Sequence[ExecutionError] = (),
        events: Sequence[Event] = (),
    ) -> None:
        # Everything that can fail on the caller's data happens before the transaction.
        revision = instance.revision
        rows = save_rows(
            instance, subscriptions, terminated_subscriptions, errors, events, time=utc, dumps=_dumps, flag=bool
        )
        notify = self._runnable_now(instance) or (self._notify and bool(rows.events))
        sql = self._sql
        if rows.only_update and not notify:
            with translated("save a workflow"), self._pool.connection() as conn:
                if sql.update.run(conn, rows.update).rowcount == 0:  # one UPDATE, autocommit
                    self._raise_lost_update(conn, instance.id, revision)
            instance.revision = revision + 1
            return
        with translated("save a workflow"), self._pool.connection() as conn:
            # One round trip for the whole transaction (pipeline mode, statements rather than
            # conn.transaction(), which waits for an answer to BEGIN and to COMMIT): a lost update
            # fails the checked UPDATE (a division by its zero row count), which aborts the rest.
            try:
                with conn.pipeline(), conn.cursor() as statements:
                    statements.execute("BEGIN")
                    if rows.ended and not (rows.subscriptions or rows.errors or rows.events):
                        statements.execute(sql.asynchronous)  # a delivery: see Durability
                    statements.execute(sql.checked_update_workflow, rows.update)
                    if rows.subscriptions:
                        statements.executemany(sql.upsert_subscription, rows.subscriptions)
                    if rows.ended:
                        statements.execute(sql.delete_subscriptions, (rows.ended,))
                    if rows.errors:
                        statements.executemany(sql.insert_error, rows.errors)
                    if rows.events:
                        statements.executemany(sql.upsert_event, rows.events)
                    if notify:
                        statements.execute(sql.notify, (self._channel,))
                    statements.execute("COMMIT")
            except pg_errors.DivisionByZero:
                conn.execute("ROLLBACK")
                self._raise_lost_update(conn, instance.id, revision)
        instance.revision = revision + 1

    def _raise_lost_update(self, conn: psycopg.Connection[Any], workflow_id: str, revision: int) -> None:
        row = conn.execute(self._sql.workflow_revision, (workflow_id,)).fetchone()
        if row is None:
            raise WorkflowNotFoundError(f"no workflow instance with id {workflow_id}", workflow_id=workflow_id)
        raise ConcurrencyError(
            f"workflow {workflow_id} was saved by someone else (revision {row[0]}, this copy is {revision})",
            workflow_id=workflow_id,
        )

    def _fetchall(self, what: str, sql: str, parameters: Sequence[Any]) -> list[tuple[Any, ...]]:
        with translated(what), self._pool.connection() as conn:
            return cursor(conn).execute(sql, parameters).fetchall()

    def _run(self, what: str, statement: Statement, parameters: Sequence[Any]) -> list[tuple[Any, ...]]:
        with translated(what), self._pool.connection() as conn:
            return statement.run(conn, parameters).rows

    @staticmethod
    def _instance(row: tuple[Any, ...]) -> WorkflowInstance:
        instance = read_instance(row[0], _loads, lambda: PostgresPersistenceProvider._from_columns(row))
        instance.revision = row[1]
        return instance

    @staticmethod
    def _from_columns(row: tuple[Any, ...]) -> WorkflowInstance:
        """A quarantined instance's fields, from a row of ``_WORKFLOW_COLUMNS``."""
        return WorkflowInstance(
            id=row[2],
            workflow_definition_id=row[3],
            version=row[4],
            reference=row[5],
            status=WorkflowStatus(row[6]),
            next_execution=row[7],
            create_time=row[8],
            complete_time=row[9],
        )

    def get_workflow_instance(self, workflow_id: str) -> WorkflowInstance:
        rows = self._run("load a workflow", self._sql.load, (workflow_id,))
        if not rows:
            raise WorkflowNotFoundError(f"no workflow instance with id {workflow_id}", workflow_id=workflow_id)
        return self._loaded(workflow_id, rows[0])

    def _loaded(self, workflow_id: str, row: tuple[Any, ...]) -> WorkflowInstance:
        """The instance of a row of ``load_sql`` (its record and revision)."""

        def columns() -> WorkflowInstance:  # only for a record that cannot be read: rare
            rows = self._fetchall("load a workflow", self._sql.select_workflow, (workflow_id,))
            if not rows:
                raise WorkflowNotFoundError(f"no workflow instance with id {workflow_id}", workflow_id=workflow_id)
            return self._from_columns(rows[0])

        instance = read_instance(row[0], _loads, columns)
        instance.revision = row[1]
        return instance

    def acquire_and_load(self, lock: LockProvider, workflow_id: str) -> WorkflowInstance | Literal[False] | None:
        """Take ``lock`` on ``workflow_id`` and load the instance in one round trip, when ``lock``
        is a :class:`PostgresLockProvider` on this database (same connection string) and schema:
        the load runs on the lock's connection, after the grant, in its transaction; otherwise
        return None having done nothing. See :meth:`PostgresLockProvider.acquire_and_read`."""
        if not isinstance(lock, PostgresLockProvider):
            return None
        where = (self._pool.target, self.schema)
        read = lock.acquire_and_read(workflow_id, where, self._sql.load_sql, (workflow_id,), (str, int))
        if read is None or read is False:
            return read
        try:
            if not read:
                raise WorkflowNotFoundError(f"no workflow instance with id {workflow_id}", workflow_id=workflow_id)
            return self._loaded(workflow_id, read[0])
        except BaseException:
            lock.release(workflow_id)  # the contract: not held when the load fails
            raise

    def query_instances(self, query: InstanceQuery) -> list[WorkflowInstance]:
        where, parameters = _query_where(query)
        order = "create_time DESC, id DESC" if query.newest_first else "create_time, id"
        sql = f"{self._sql.select_workflows}{where} ORDER BY {order} LIMIT %s OFFSET %s"
        rows = self._fetchall("query workflows", sql, (*parameters, query.limit, query.offset))
        return [self._instance(row) for row in rows]

    def count_instances(self, query: InstanceQuery) -> int:
        where, parameters = _query_where(query)
        table = self._sql.select_workflows.rpartition(" FROM ")[2]
        rows = self._fetchall("count workflows", f"SELECT count(*) FROM {table}{where}", parameters)
        return int(rows[0][0])

    def workflow_activity(self, start: datetime, end: datetime, period: timedelta) -> list[ActivityCount]:
        counter = ActivityCounter(start, end, period)
        table = self._sql.select_workflows.rpartition(" FROM ")[2]
        bucket = "floor(extract(epoch FROM {0} - %s) / %s)::bigint"
        bounds = (utc(start), period.total_seconds(), utc(start), utc(end))
        started = (
            f"SELECT {bucket.format('create_time')}, count(*) FROM {table}"
            " WHERE create_time >= %s AND create_time < %s GROUP BY 1"
        )
        ended = (
            f"SELECT {bucket.format('complete_time')}, status, count(*) FROM {table}"
            " WHERE complete_time >= %s AND complete_time < %s AND status IN ('complete', 'terminated') GROUP BY 1, 2"
        )
        for index, number in self._fetchall("count started workflows", started, bounds):
            counter.count(int(index), 0, int(number))
        for index, status, number in self._fetchall("count ended workflows", ended, bounds):
            counter.count(int(index), 1 if status == WorkflowStatus.COMPLETE.value else 2, int(number))
        return counter.counts()

    def get_runnable_instances(self, as_of: datetime) -> list[str]:
        rows = self._fetchall("find runnable workflows", self._sql.runnable_workflows, (utc(as_of),))
        return [row[0] for row in rows]

    def get_subscriptions(self, event_name: str, event_key: str, as_of: datetime) -> list[EventSubscription]:
        rows = self._run("find subscriptions", self._sql.find_subscriptions, (event_name, event_key, utc(as_of)))
        return [subscription_from_record(_loads(row[0])) for row in rows]

    # -- events --------------------------------------------------------------------------------

    @staticmethod
    def _event_row(event: Event) -> tuple[Any, ...]:
        return event_row(event, time=utc, dumps=_dumps, flag=bool)

    def create_event(self, event: Event) -> None:
        row = self._event_row(event)
        with translated("store an event"), self._pool.connection() as conn:
            if self._notify:
                with conn.transaction():
                    conn.execute(self._sql.upsert_event, row)
                    conn.execute(self._sql.notify, (self._channel,))
            else:
                self._sql.store_event.run(conn, row)

    def create_event_queued(self, event: Event, queue: QueueProvider) -> bool:
        """Store ``event`` and queue its id, in one transaction and one round trip, when ``queue`` is
        a :class:`PostgresQueueProvider` on this database (same connection string) and schema;
        otherwise return False having done nothing. See :meth:`create_event`."""
        joint = self._joint_queue(queue)
        if joint is None:
            return False
        with translated("store an event"):
            self._insert_queued(self._sql.store_event, self._event_row(event), QueueType.EVENT, 0, self._notify, joint)
        return True

    @staticmethod
    def _event(row: tuple[Any, ...]) -> Event:
        event = read_event(row[0], _loads, lambda: Event(row[3], row[4], id=row[2], event_time=row[5]))
        event.is_processed = bool(row[1])  # the column is the truth; the record keeps the value at creation
        return event

    def get_event(self, event_id: str) -> Event:
        rows = self._run("load an event", self._sql.load_event, (event_id,))
        if not rows:
            raise EventNotFoundError(f"no event with id {event_id}")
        return self._event(rows[0])

    def get_events(self, event_name: str, event_key: str, as_of: datetime) -> list[Event]:
        rows = self._run("find events", self._sql.find_events, (event_name, event_key, utc(as_of)))
        return [self._event(row) for row in rows]

    def recent_events(self, limit: int) -> list[Event]:
        table = self._sql.select_event.partition(" FROM ")[2].partition(" WHERE ")[0]
        rows = [
            row
            # Each event is in exactly one of the two partial indexes on event_time.
            for flag in ("is_processed", "NOT is_processed")
            for row in self._fetchall(
                "list recent events",
                f"SELECT {_EVENT_COLUMNS} FROM {table} WHERE {flag} ORDER BY event_time DESC LIMIT %s",
                (limit,),
            )
        ]
        rows.sort(key=lambda row: row[5], reverse=True)
        return [self._event(row) for row in rows[:limit]]

    def get_runnable_events(self, as_of: datetime) -> list[str]:
        return [row[0] for row in self._fetchall("find runnable events", self._sql.runnable_events, (utc(as_of),))]

    def _mark(self, event_id: str, processed: bool) -> None:
        with translated("mark an event"), self._pool.connection() as conn:
            changed = self._sql.mark.run(conn, (processed, event_id)).rowcount
        if changed == 0:
            raise EventNotFoundError(f"no event with id {event_id}")

    def mark_event_processed(self, event_id: str) -> None:
        self._mark(event_id, True)

    def mark_event_unprocessed(self, event_id: str) -> None:
        self._mark(event_id, False)

    # -- errors, housekeeping, wake-ups --------------------------------------------------------

    def get_errors(self, workflow_id: str) -> list[ExecutionError]:
        rows = self._fetchall("load errors", self._sql.select_errors, (workflow_id,))
        return [error_from_record(_loads(row[0])) for row in rows]

    def purge(self, *, statuses: Sequence[WorkflowStatus], older_than: datetime) -> int:
        cutoff = utc(older_than)
        values = list(dict.fromkeys(WorkflowStatus(status).value for status in statuses))
        sql = self._sql
        with translated("purge"), self._pool.connection() as conn, conn.transaction():
            doomed = [row[0] for row in conn.execute(sql.purge_workflows, (cutoff, values)).fetchall()]
            if doomed:
                conn.execute(sql.purge_subscriptions, (doomed,))
                conn.execute(sql.purge_errors, (doomed,))
            conn.execute(sql.purge_events, (cutoff,))
        return len(doomed)

    def wait_for_work(self, timeout: float) -> bool:
        """Block until a save by any provider on this schema with ``notify=True`` makes an instance
        runnable now or stores an event, or ``timeout`` seconds pass; True if woken by such a save.

        Not part of the persistence contract: a hint for processes that would otherwise poll.
        Notifications sent before the first call (which starts listening) are not seen, so check
        the store first, then wait, then check again.
        """
        with self._listener_lock:
            if self._listener is None:
                self._listener = Listener(self._pool.conninfo, self._channel)
        seen = self._listener.generation("")
        return self._listener.wait("", seen, timeout) and not self._listener.closed
