"""A :class:`PersistenceProvider` on one SQLite file, with the standard library's ``sqlite3`` only.

Connections
    All writes go through one writer connection guarded by a ``threading.Lock``: SQLite admits one
    writer at a time anyway, and taking the lock in-process is cheaper than meeting SQLite's busy
    handler. Multi-statement writes run in ``BEGIN IMMEDIATE`` transactions, which take the write
    lock up front (no deadlock on lock upgrade with another process); single-statement writes run in
    autocommit. Reads use one connection per thread (``threading.local``): in WAL mode readers never
    block the writer or each other, and each read sees the last committed state.

    ``":memory:"`` gives a private in-memory database on one connection shared by every thread, with
    the lock around reads too. (``file::memory:?cache=shared`` would let readers run in parallel but
    would make every in-memory provider of the process the same database, surprising in tests.)

Durability
    The file is put in WAL mode. ``synchronous="NORMAL"`` (the default) keeps every committed write
    across a crash of the process; ``"FULL"`` also across a power loss or OS crash, at a cost of an
    fsync per commit (about 10x fewer commits per second).
"""

from __future__ import annotations

import functools
import json
import operator
import os
import sqlite3
import threading
import weakref
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from itertools import compress
from typing import Any

from liteflow.providers.spi import (
    ActivityCount,
    ActivityCounter,
    ConcurrencyError,
    Event,
    EventNotFoundError,
    EventSubscription,
    ExecutionError,
    InstanceQuery,
    InvalidArgumentError,
    InvalidOperationError,
    LockProvider,
    PersistenceProvider,
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
)

from ._checkpoint import Checkpointer
from ._connection import MEMORY, connect, parse_url, raise_translated, retry_busy, tune_writer, use_wal, writer_mutex
from ._lock import SqliteLockProvider
from ._schema import migrate

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")

# json.dumps builds a new encoder whenever it is given options; one shared encoder avoids that.
_dumps = json_text
_loads = json.loads


def _nothing() -> None:
    pass


def _micros(value: datetime) -> int:
    """Microseconds since the epoch, UTC. A naive datetime is taken to be UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return (value - _EPOCH) // _MICROSECOND


def _from_micros(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + value * _MICROSECOND


_INSERT_WORKFLOW = (
    "INSERT INTO workflow (id, definition_id, version, reference, status, next_execution, create_time,"
    " complete_time, revision, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE_WORKFLOW = (
    "UPDATE workflow SET definition_id = ?, version = ?, reference = ?, status = ?, next_execution = ?,"
    " complete_time = ?, revision = revision + 1, record = ? WHERE id = ? AND revision = ?"
)
# A save writes only the indexed columns whose values differ from the row's (see _Known): an index
# whose columns an UPDATE does not name is not touched, and each index touched is a page more in the
# WAL. Between two steps usually only next_execution changes (2.8 pages per save instead of 4.5).
_COLUMNS = ("definition_id", "version", "reference", "status", "next_execution", "complete_time")
_FINISHED_STATUSES = frozenset((WorkflowStatus.COMPLETE.value, WorkflowStatus.TERMINATED.value))


@functools.cache
def _update_sql(changed: tuple[bool, ...]) -> str:
    """The UPDATE of a save that writes the columns flagged in ``changed`` (of :data:`_COLUMNS`)."""
    sets = [f"{name} = ?" for name, flag in zip(_COLUMNS, changed) if flag]
    sets += ["revision = revision + 1", "record = ?"]
    return f"UPDATE workflow SET {', '.join(sets)} WHERE id = ? AND revision = ?"


class _Known:
    """The indexed columns of workflow rows, by id, as this provider last read or wrote them, with
    the revision they go with.

    A row's revision grows by one at every write of it (by any process), so a row at revision ``r``
    has the columns it had when it was read or written at ``r``; a save is applied only if the row is
    still at the revision of the instance saved (``WHERE revision = ?``). So when the columns known
    for that revision differ from the new values in only some columns, writing those leaves none
    stale; otherwise (not known, or known for another revision) the save writes them all.
    Finished instances are forgotten; the map is emptied if it ever holds more than ``limit`` ids
    (reads of many instances that are never saved here).
    """

    def __init__(self, limit: int = 100_000) -> None:
        self._rows: dict[str, tuple[int, tuple[Any, ...]]] = {}
        self._limit = limit

    def remember(self, workflow_id: str, revision: int, columns: tuple[Any, ...]) -> None:
        if columns[3] in _FINISHED_STATUSES:
            self._rows.pop(workflow_id, None)
            return
        rows = self._rows
        if len(rows) >= self._limit and workflow_id not in rows:
            rows.clear()
        rows[workflow_id] = (revision, columns)

    def forget(self, workflow_id: str) -> None:
        self._rows.pop(workflow_id, None)

    def update(self, update: tuple[Any, ...]) -> tuple[str, tuple[Any, ...]]:
        """The UPDATE statement and its parameters for ``update`` (a full save's parameters:
        the columns, the record, the id, the revision)."""
        known = self._rows.get(update[7])
        if known is None or known[0] != update[8]:
            return _UPDATE_WORKFLOW, update
        changed = tuple(map(operator.ne, update[:6], known[1]))
        return _update_sql(changed), (*compress(update, changed), *update[6:])


_WORKFLOW_REVISION = "SELECT revision FROM workflow WHERE id = ?"
# Beside the record, the columns a quarantined instance (one whose record cannot be decoded) is
# rebuilt from.
_WORKFLOW_COLUMNS = (
    "record, revision, id, definition_id, version, reference, status, next_execution, create_time, complete_time"
)
_SELECT_WORKFLOW = f"SELECT {_WORKFLOW_COLUMNS} FROM workflow WHERE id = ?"
# The poller's and purge's queries name their index: without ANALYZE statistics the planner would
# prefer workflow_status (an equality on its first column) and read every runnable or finished
# instance instead of just the due or old ones. INDEXED BY also fails loudly if the index is unusable.
_RUNNABLE_WORKFLOWS = (
    "SELECT id FROM workflow INDEXED BY workflow_runnable WHERE status = 'runnable' AND next_execution IS NOT NULL"
    " AND next_execution <= ? ORDER BY next_execution"
)
_UPSERT_SUBSCRIPTION = (
    "INSERT OR REPLACE INTO subscription (id, workflow_id, event_name, event_key, subscribe_as_of, record)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_DELETE_SUBSCRIPTION = "DELETE FROM subscription WHERE id = ?"
_SELECT_SUBSCRIPTIONS = (
    "SELECT record FROM subscription WHERE event_name = ? AND event_key = ? AND subscribe_as_of <= ?"
    " ORDER BY subscribe_as_of"
)
_INSERT_ERROR = "INSERT OR IGNORE INTO execution_error (id, workflow_id, record) VALUES (?, ?, ?)"
_SELECT_ERRORS = "SELECT record FROM execution_error WHERE workflow_id = ? ORDER BY seq"
_UPSERT_EVENT = (
    "INSERT OR REPLACE INTO event (id, event_name, event_key, event_time, is_processed, record)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_EVENT_COLUMNS = "record, is_processed, id, event_name, event_key, event_time"
_SELECT_EVENT = f"SELECT {_EVENT_COLUMNS} FROM event WHERE id = ?"
_SELECT_EVENTS = (
    f"SELECT {_EVENT_COLUMNS} FROM event WHERE event_name = ? AND event_key = ? AND event_time >= ? ORDER BY event_time"
)
# Each event is in exactly one of the two partial indexes on event_time: the newest of both.
_RECENT_EVENTS = (
    f"SELECT {_EVENT_COLUMNS} FROM event INDEXED BY event_processed WHERE is_processed = 1"
    " ORDER BY event_time DESC LIMIT ?",
    f"SELECT {_EVENT_COLUMNS} FROM event INDEXED BY event_unprocessed WHERE is_processed = 0"
    " ORDER BY event_time DESC LIMIT ?",
)
_RUNNABLE_EVENTS = "SELECT id FROM event WHERE is_processed = 0 AND event_time <= ? ORDER BY event_time"
_MARK_EVENT = "UPDATE event SET is_processed = ? WHERE id = ?"
_PURGE_EVENTS = "DELETE FROM event WHERE is_processed = 1 AND event_time < ?"
# Purge looks up the doomed ids first (formatted with one placeholder per status), then deletes by
# id: every step is an index lookup whatever the planner thinks of a subquery's size.
_FINISHED = "SELECT id FROM workflow INDEXED BY workflow_finished WHERE status IN ({}) AND complete_time < ?"
_PURGE_SUBSCRIPTIONS = "DELETE FROM subscription WHERE workflow_id = ?"
_PURGE_ERRORS = "DELETE FROM execution_error WHERE workflow_id = ?"
_PURGE_WORKFLOW = "DELETE FROM workflow WHERE id = ?"


def _query_sql(query: InstanceQuery) -> tuple[str, tuple[Any, ...]]:
    """The SELECT for :meth:`SqlitePersistenceProvider.query_instances`, and its parameters."""
    where, parameters = _query_where(query)
    order = "create_time DESC, id DESC" if query.newest_first else "create_time, id"
    sql = f"SELECT {_WORKFLOW_COLUMNS} FROM workflow{where} ORDER BY {order} LIMIT ? OFFSET ?"
    return sql, (*parameters, query.limit, query.offset)


# For workflow_activity: both read only an index (created, finished), never the records.
_STARTED = (
    "SELECT (create_time - ?) / ?, count(*) FROM workflow INDEXED BY workflow_created"
    " WHERE create_time >= ? AND create_time < ? GROUP BY 1"
)
_ENDED = (
    "SELECT (complete_time - ?) / ?, status, count(*) FROM workflow INDEXED BY workflow_finished"
    " WHERE complete_time >= ? AND complete_time < ? AND status IN ('complete', 'terminated') GROUP BY 1, 2"
)


def _query_where(query: InstanceQuery) -> tuple[str, list[Any]]:
    """The WHERE clause of :func:`_query_sql` and of counts, and its parameters."""
    clauses: list[str] = []
    parameters: list[Any] = []
    for clause, value in (
        ("status = ?", None if query.status is None else WorkflowStatus(query.status).value),
        ("definition_id = ?", query.workflow_definition_id),
        ("reference = ?", query.reference),
        ("create_time >= ?", None if query.created_from is None else _micros(query.created_from)),
        ("create_time < ?", None if query.created_to is None else _micros(query.created_to)),
    ):
        if value is not None:
            clauses.append(clause)
            parameters.append(value)
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), parameters


class SqlitePersistenceProvider(PersistenceProvider):
    """Workflow state in a SQLite file (or ``":memory:"``), safe to call from many threads.

    ``synchronous`` is SQLite's setting for the writer: ``"NORMAL"`` (durable across process
    crashes) or ``"FULL"`` (also across power loss). ``busy_timeout`` is how long, in seconds, a
    statement waits for another process holding the database lock before failing.
    """

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "NORMAL", busy_timeout: float = 5.0) -> None:
        mode = synchronous.upper()
        if mode not in _SYNCHRONOUS:
            raise InvalidArgumentError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, got {synchronous!r}")
        self._path = os.fspath(path)
        self._memory = self._path == MEMORY or self._path == ""
        self._busy_timeout = busy_timeout
        # A file's writer lock is shared with the other providers of this process on it (the lock).
        self._lock = threading.Lock() if self._memory else writer_mutex(self._path)
        self._local = threading.local()
        self._readers: list[tuple[weakref.ref[threading.Thread], sqlite3.Connection]] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        self._known = _Known()
        self._wrote = _nothing  # counts commits for the checkpointer (a file's)
        self._writer = self._connect()
        try:
            retry_busy(lambda: self._prepare(mode), busy_timeout)
        except sqlite3.Error as error:
            self._writer.close()
            raise_translated(error, self._path)
        except BaseException:
            self._writer.close()
            raise
        self._checkpointer: Checkpointer | None = None
        if not self._memory:
            self._checkpointer = Checkpointer(self._path, self._lock, busy_timeout=busy_timeout)
            self._wrote = self._checkpointer.wrote

    def _prepare(self, mode: str) -> None:
        """WAL mode, durability and schema: run again by ``retry_busy`` while another process
        opening the same new file holds it."""
        if not self._memory:
            use_wal(self._writer, self._path)
        self._writer.execute(f"PRAGMA synchronous = {mode}")
        tune_writer(self._writer)
        migrate(self._writer)

    @classmethod
    def from_url(cls, url: str) -> SqlitePersistenceProvider:
        """``sqlite:///relative.db``, ``sqlite:////absolute/path.db``, ``sqlite://:memory:`` or
        ``sqlite:///:memory:``; options as query parameters: ``?synchronous=FULL&busy_timeout=10``."""
        path, options = parse_url(url, {"synchronous": str, "busy_timeout": float, "timeout": float})
        if "timeout" in options:
            options["busy_timeout"] = options.pop("timeout")
        return cls(path, **options)

    def default_lock(self) -> LockProvider | None:
        """A :class:`SqliteLockProvider` in the same file, for processes sharing it; None in memory."""
        if self._memory:
            return None
        return SqliteLockProvider(self._path, busy_timeout=self._busy_timeout)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._path!r})"

    # -- connections ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # Autocommit; errors are translated by each method's ``except sqlite3.Error`` (see _connection).
        return connect(self._path, self._busy_timeout, translating=False)

    def _reader(self) -> sqlite3.Connection:
        try:
            connection: sqlite3.Connection = self._local.connection
            return connection
        except AttributeError:
            pass
        with self._readers_lock:
            if self._closed:
                raise InvalidOperationError(f"{self!r} is closed")
            # Close the connections of threads that have ended, so a host that starts many
            # short-lived threads does not accumulate them.
            alive = []
            for thread, old in self._readers:
                owner = thread()
                if owner is None or not owner.is_alive():
                    old.close()
                else:
                    alive.append((thread, old))
            connection = self._connect()
            try:
                connection.execute("PRAGMA query_only = ON")
            except sqlite3.Error as error:
                connection.close()
                raise_translated(error, self._path)
            alive.append((weakref.ref(threading.current_thread()), connection))
            self._readers = alive
        self._local.connection = connection
        return connection

    def _fetchall(self, sql: str, parameters: tuple[Any, ...]) -> list[Any]:
        try:
            if self._memory:
                with self._lock:
                    return self._writer.execute(sql, parameters).fetchall()
            return self._reader().execute(sql, parameters).fetchall()
        except sqlite3.Error as error:
            raise_translated(error, self._path)

    def _fetchone(self, sql: str, parameters: tuple[Any, ...]) -> Any:
        try:
            if self._memory:
                with self._lock:
                    return self._writer.execute(sql, parameters).fetchone()
            return self._reader().execute(sql, parameters).fetchone()
        except sqlite3.Error as error:
            raise_translated(error, self._path)

    def _write(self, sql: str, parameters: tuple[Any, ...]) -> int:
        """One statement in autocommit; the number of rows it changed."""
        try:
            with self._lock:
                changed: int = self._writer.execute(sql, parameters).rowcount
                self._wrote()
                return changed
        except sqlite3.Error as error:
            raise_translated(error, self._path)

    def close(self) -> None:
        with self._readers_lock:
            if self._closed:
                return
            self._closed = True
            readers, self._readers = self._readers, []
        for _, connection in readers:
            connection.close()
        if self._checkpointer is not None:
            self._checkpointer.close()
        with self._lock:
            self._writer.close()

    # -- workflows -----------------------------------------------------------------------------

    def create_workflow(self, instance: WorkflowInstance) -> None:
        row = (
            instance.id,
            instance.workflow_definition_id,
            instance.version,
            instance.reference,
            instance.status.value,
            None if instance.next_execution is None else _micros(instance.next_execution),
            _micros(instance.create_time),
            None if instance.complete_time is None else _micros(instance.complete_time),
            instance.revision,
            instance_record_text(instance),  # the start's data encoded once
        )
        try:
            with self._lock:
                self._writer.execute(_INSERT_WORKFLOW, row)
                self._wrote()
        except sqlite3.IntegrityError as error:
            raise ConcurrencyError(f"workflow {instance.id} already exists", workflow_id=instance.id) from error
        except sqlite3.Error as error:
            raise_translated(error, self._path)
        self._known.remember(instance.id, instance.revision, (*row[1:6], row[7]))

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
            instance, subscriptions, terminated_subscriptions, errors, events, time=_micros, dumps=_dumps, flag=int
        )
        update, parameters = self._known.update(rows.update)
        writer = self._writer
        try:
            with self._lock:
                if rows.only_update:
                    # One statement: autocommit is atomic and saves a BEGIN and a COMMIT.
                    if writer.execute(update, parameters).rowcount == 0:
                        self._raise_lost_update(instance.id, revision)
                else:
                    writer.execute("BEGIN IMMEDIATE")
                    try:
                        if writer.execute(update, parameters).rowcount == 0:
                            self._raise_lost_update(instance.id, revision)
                        writer.executemany(_UPSERT_SUBSCRIPTION, rows.subscriptions)
                        writer.executemany(_DELETE_SUBSCRIPTION, [(ended,) for ended in rows.ended])
                        writer.executemany(_INSERT_ERROR, rows.errors)
                        writer.executemany(_UPSERT_EVENT, rows.events)
                        writer.execute("COMMIT")
                    except BaseException:
                        if writer.in_transaction:
                            writer.execute("ROLLBACK")
                        raise
                self._wrote()
        except sqlite3.Error as error:
            raise_translated(error, self._path)
        instance.revision = revision + 1
        self._known.remember(instance.id, revision + 1, rows.update[:6])

    def _raise_lost_update(self, workflow_id: str, revision: int) -> None:
        """Called with the writer lock held, after an update that matched no row."""
        row = self._writer.execute(_WORKFLOW_REVISION, (workflow_id,)).fetchone()
        if row is None:
            raise WorkflowNotFoundError(f"no workflow instance with id {workflow_id}", workflow_id=workflow_id)
        raise ConcurrencyError(
            f"workflow {workflow_id} was saved by someone else (revision {row[0]}, this copy is {revision})",
            workflow_id=workflow_id,
        )

    @staticmethod
    def _instance(row: Any) -> WorkflowInstance:
        def columns() -> WorkflowInstance:
            create_time = _from_micros(row[8])
            assert create_time is not None
            return WorkflowInstance(
                id=row[2],
                workflow_definition_id=row[3],
                version=row[4],
                reference=row[5],
                status=WorkflowStatus(row[6]),
                next_execution=_from_micros(row[7]),
                create_time=create_time,
                complete_time=_from_micros(row[9]),
            )

        instance = read_instance(row[0], _loads, columns)
        instance.revision = row[1]
        return instance

    def get_workflow_instance(self, workflow_id: str) -> WorkflowInstance:
        row = self._fetchone(_SELECT_WORKFLOW, (workflow_id,))
        if row is None:
            raise WorkflowNotFoundError(f"no workflow instance with id {workflow_id}", workflow_id=workflow_id)
        self._known.remember(workflow_id, row[1], (*row[3:8], row[9]))
        return self._instance(row)

    def query_instances(self, query: InstanceQuery) -> list[WorkflowInstance]:
        return [self._instance(row) for row in self._fetchall(*_query_sql(query))]

    def count_instances(self, query: InstanceQuery) -> int:
        where, parameters = _query_where(query)
        count: int = self._fetchone(f"SELECT count(*) FROM workflow{where}", tuple(parameters))[0]
        return count

    def workflow_activity(self, start: datetime, end: datetime, period: timedelta) -> list[ActivityCount]:
        counter = ActivityCounter(start, end, period)
        bounds = (_micros(start), period // _MICROSECOND, _micros(start), _micros(end))
        for index, number in self._fetchall(_STARTED, bounds):
            counter.count(index, 0, number)
        for index, status, number in self._fetchall(_ENDED, bounds):
            counter.count(index, 1 if status == WorkflowStatus.COMPLETE.value else 2, number)
        return counter.counts()

    def get_runnable_instances(self, as_of: datetime) -> list[str]:
        return [row[0] for row in self._fetchall(_RUNNABLE_WORKFLOWS, (_micros(as_of),))]

    def get_subscriptions(self, event_name: str, event_key: str, as_of: datetime) -> list[EventSubscription]:
        rows = self._fetchall(_SELECT_SUBSCRIPTIONS, (event_name, event_key, _micros(as_of)))
        return [subscription_from_record(_loads(row[0])) for row in rows]

    # -- events --------------------------------------------------------------------------------

    @staticmethod
    def _event_row(event: Event) -> tuple[Any, ...]:
        return event_row(event, time=_micros, dumps=_dumps, flag=int)

    def create_event(self, event: Event) -> None:
        self._write(_UPSERT_EVENT, self._event_row(event))

    @staticmethod
    def _event(row: Any) -> Event:
        event_time = _from_micros(row[5])
        assert event_time is not None
        event = read_event(row[0], _loads, lambda: Event(row[3], row[4], id=row[2], event_time=event_time))
        event.is_processed = bool(row[1])  # the column is the truth; the record keeps the value at creation
        return event

    def get_event(self, event_id: str) -> Event:
        row = self._fetchone(_SELECT_EVENT, (event_id,))
        if row is None:
            raise EventNotFoundError(f"no event with id {event_id}")
        return self._event(row)

    def get_events(self, event_name: str, event_key: str, as_of: datetime) -> list[Event]:
        rows = self._fetchall(_SELECT_EVENTS, (event_name, event_key, _micros(as_of)))
        return [self._event(row) for row in rows]

    def recent_events(self, limit: int) -> list[Event]:
        rows = [row for sql in _RECENT_EVENTS for row in self._fetchall(sql, (limit,))]
        rows.sort(key=lambda row: row[5], reverse=True)
        return [self._event(row) for row in rows[:limit]]

    def get_runnable_events(self, as_of: datetime) -> list[str]:
        return [row[0] for row in self._fetchall(_RUNNABLE_EVENTS, (_micros(as_of),))]

    def mark_event_processed(self, event_id: str) -> None:
        if self._write(_MARK_EVENT, (1, event_id)) == 0:
            raise EventNotFoundError(f"no event with id {event_id}")

    def mark_event_unprocessed(self, event_id: str) -> None:
        if self._write(_MARK_EVENT, (0, event_id)) == 0:
            raise EventNotFoundError(f"no event with id {event_id}")

    # -- errors and housekeeping ---------------------------------------------------------------

    def get_errors(self, workflow_id: str) -> list[ExecutionError]:
        return [error_from_record(_loads(row[0])) for row in self._fetchall(_SELECT_ERRORS, (workflow_id,))]

    def purge(self, *, statuses: Sequence[WorkflowStatus], older_than: datetime) -> int:
        cutoff = _micros(older_than)
        values = list(dict.fromkeys(WorkflowStatus(status).value for status in statuses))
        marks = ", ".join("?" * len(values))
        finished = (*values, cutoff)
        writer = self._writer
        try:
            with self._lock:
                writer.execute("BEGIN IMMEDIATE")
                try:
                    doomed = writer.execute(_FINISHED.format(marks), finished).fetchall() if values else []
                    if doomed:
                        writer.executemany(_PURGE_SUBSCRIPTIONS, doomed)
                        writer.executemany(_PURGE_ERRORS, doomed)
                        writer.executemany(_PURGE_WORKFLOW, doomed)
                    writer.execute(_PURGE_EVENTS, (cutoff,))
                    writer.execute("COMMIT")
                    self._wrote()
                except BaseException:
                    if writer.in_transaction:
                        writer.execute("ROLLBACK")
                    raise
        except sqlite3.Error as error:
            raise_translated(error, self._path)
        for (workflow_id,) in doomed:
            self._known.forget(workflow_id)
        return len(doomed)
