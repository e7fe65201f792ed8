"""The PostgreSQL providers' shortcuts on the hot path keep their guarantees: a start and its queue
row commit together or not at all (``create_workflow_queued``), and so do a published event and its
queue row (``create_event_queued``); a lock and the load that follows it are one call that takes
both or neither (``acquire_and_load``); a pooled connection broken under a call is replaced.

The server is ``LITEFLOW_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``);
tests skip when it is unreachable, except with ``CI=true``, where they fail.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple

import pytest

psycopg = pytest.importorskip("psycopg")

from conftest import Schema  # type: ignore[import-not-found]
from polling import wait_until

from liteflow.core import (
    ConcurrencyError,
    Event,
    EventNotFoundError,
    ExecutionError,
    ProviderError,
    ProviderUnavailableError,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowInstance,
    WorkflowNotFoundError,
    WorkflowStatus,
    configure_workflow_host,
)
from liteflow.core._providers import QueueType
from liteflow.providers.postgres import PostgresLockProvider, PostgresPersistenceProvider, PostgresQueueProvider


def sql(url: str, statement: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement, parameters or None)
        return cursor.fetchall() if cursor.description else []


def rows(url: str, schema: str) -> tuple[list[str], list[tuple[str, str, int]]]:
    """The stored workflow ids, and the queue rows (queue, item id, priority)."""
    workflows = [r[0] for r in sql(url, f'SELECT id FROM "{schema}".workflow ORDER BY id')]
    queued = sql(url, f'SELECT queue, item_id, priority FROM "{schema}".queue_item ORDER BY item_id')
    return workflows, [(str(q), str(i), int(p)) for q, i, p in queued]


class Joined(NamedTuple):
    """A store and a queue on one schema (``name``), and a queue on another (``elsewhere``)."""

    name: str
    elsewhere: str
    store: PostgresPersistenceProvider
    queue: PostgresQueueProvider
    other: PostgresQueueProvider


@pytest.fixture
def joined(postgres_url: str, schema: Schema) -> Iterator[Joined]:
    name, elsewhere = schema(), schema()
    store = PostgresPersistenceProvider(postgres_url, schema=name)
    queue = PostgresQueueProvider(postgres_url, schema=name)
    other = PostgresQueueProvider(postgres_url, schema=elsewhere)
    try:
        yield Joined(name, elsewhere, store, queue, other)
    finally:
        for provider in (other, queue, store):
            provider.close()


def test_a_store_and_a_queue_on_one_schema_create_and_queue_in_one_transaction(
    postgres_url: str, joined: Joined
) -> None:
    name, elsewhere, store, queue, other = joined
    instance = WorkflowInstance(workflow_definition_id="flow", version=1, priority=7)
    assert store.create_workflow_queued(instance, queue) is True
    assert rows(postgres_url, name) == ([instance.id], [("workflow", instance.id, 7)])
    # This process's consumer is woken at once, and the notification's trip back adds nothing.
    wait_until(lambda: not queue._listener._expected, "the listener to see its own notification come back")
    assert queue._listener._tickets == {"workflow": 1}
    assert queue.dequeue(QueueType.WORKFLOW, 0) == instance.id

    # The same id again: nothing is stored or queued, and the connection is usable after.
    with pytest.raises(ConcurrencyError):
        store.create_workflow_queued(WorkflowInstance(id=instance.id, workflow_definition_id="x", version=1), queue)
    assert queue._listener._expected == {}
    assert rows(postgres_url, name)[0] == [instance.id]
    assert store.get_workflow_instance(instance.id).workflow_definition_id == "flow"

    # A queue in another schema (or database) is not joined: the host queues on its own.
    assert store.create_workflow_queued(WorkflowInstance(workflow_definition_id="flow", version=1), other) is False
    assert rows(postgres_url, name)[0] == [instance.id]
    assert rows(postgres_url, elsewhere) == ([], [])


def test_a_start_whose_queue_row_fails_stores_nothing(postgres_url: str, schema: Schema) -> None:
    """Without the joint transaction the instance would be stored and the failed enqueue only
    reported (the poll finds it); with it, neither row is written and the start raises."""
    name = schema()
    url = f"{postgres_url}?schema={name}"
    check = f'ALTER TABLE "{name}".queue_item ADD CONSTRAINT no_doomed CHECK (item_id <> %s)'
    with configure_workflow_host(url, url, url, poll_interval=60) as host:
        host.register_workflow(Count())
        sql(postgres_url, check.replace("%s", "'doomed'"))
        try:
            with pytest.raises(ProviderError):
                host.start_workflow("Count", 1, {}, instance_id="doomed")
            assert rows(postgres_url, name) == ([], [])
            started = host.start_workflow("Count", 1, {}, instance_id="fine")
            assert host.wait_for_workflow(started, 10).status is WorkflowStatus.COMPLETE
        finally:
            sql(postgres_url, f'ALTER TABLE "{name}".queue_item DROP CONSTRAINT no_doomed')


def test_a_store_and_a_queue_on_one_schema_store_and_queue_an_event_in_one_transaction(
    postgres_url: str, joined: Joined
) -> None:
    name, elsewhere, store, queue, other = joined
    event = Event("go", "k1", {"n": 1})
    assert store.create_event_queued(event, queue) is True
    assert store.get_event(event.id).event_data == {"n": 1}
    assert rows(postgres_url, name)[1] == [("event", event.id, 0)]
    assert queue.dequeue(QueueType.EVENT, 0) == event.id

    # A queue in another schema (or database) is not joined: nothing is stored or queued.
    stray = Event("go", "k2")
    assert store.create_event_queued(stray, other) is False
    with pytest.raises(EventNotFoundError):
        store.get_event(stray.id)
    assert rows(postgres_url, elsewhere) == ([], [])


def test_a_joint_publish_wakes_a_store_waiting_for_work(postgres_url: str, schema: Schema) -> None:
    name = schema()
    waiter = PostgresPersistenceProvider(postgres_url, schema=name, notify=True)
    store = PostgresPersistenceProvider(postgres_url, schema=name, notify=True)
    queue = PostgresQueueProvider(postgres_url, schema=name)
    try:
        assert waiter.wait_for_work(0.01) is False  # listening from now on
        woke: list[bool] = []
        thread = threading.Thread(target=lambda: woke.append(waiter.wait_for_work(10)))
        thread.start()
        wait_until(lambda: waiter._listener._generation_waiters.get("") == 1, "the thread to wait")
        assert store.create_event_queued(Event("go", "k"), queue) is True
        thread.join(10)
        assert woke == [True]
    finally:
        for provider in (queue, store, waiter):
            provider.close()


def test_a_publish_whose_queue_row_fails_stores_nothing(postgres_url: str, schema: Schema) -> None:
    """Without the joint transaction the event would be stored and the failed enqueue only reported
    (the poll finds it); with it, neither row is written and the publish raises. Once the queue
    takes rows again, a publish resumes a waiting workflow through the joint path."""
    name = schema()
    url = f"{postgres_url}?schema={name}"
    with configure_workflow_host(url, url, url, poll_interval=60) as host:
        host.register_workflow(WaitsForGo())
        waiting = host.start_workflow("WaitsForGo", 1, {})
        sql(postgres_url, f"""ALTER TABLE "{name}".queue_item ADD CONSTRAINT no_events CHECK (queue <> 'event')""")
        try:
            with pytest.raises(ProviderError):
                host.publish_event("go", "k")
            assert sql(postgres_url, f'SELECT count(*) FROM "{name}".event') == [(0,)]
        finally:
            sql(postgres_url, f'ALTER TABLE "{name}".queue_item DROP CONSTRAINT no_events')
        host.publish_event("go", "k")
        finished = host.wait_for_workflow(waiting, 10)
        assert finished.status is WorkflowStatus.COMPLETE and finished.data == {"n": 2}


def test_a_joint_start_or_publish_reports_the_queue_healthy(postgres_url: str, schema: Schema) -> None:
    """The queue answered inside the store's transaction: a queue reported failed earlier (by a
    queueing that failed alone) is healthy again, as after a queueing of its own."""
    name = schema()
    url = f"{postgres_url}?schema={name}"
    with configure_workflow_host(url, url, url, poll_interval=60) as host:
        host.register_workflow(Count())
        for act in (lambda: host.publish_event("go", "k"), lambda: host.start_workflow("Count", 1, {})):
            host._health.failed("queue", "refused")
            assert host.health().components["queue"].ok is False
            act()
            assert host.health().components["queue"].ok is True


class Counting(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        context.workflow.data["n"] = context.workflow.data.get("n", 0) + 1


class Count(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Counting).then(Counting)


class WaitsForGo(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Counting).wait_for("go", lambda data, context: "k").then(Counting)


def test_a_pooled_connection_killed_under_the_store_is_replaced(postgres_url: str, schema: Schema) -> None:
    store = PostgresPersistenceProvider(postgres_url, schema=schema(), min_size=2, max_size=2)
    try:
        instance = WorkflowInstance(workflow_definition_id="flow", version=1)
        store.create_workflow(instance)
        with store._pool.connection() as first, store._pool.connection() as second:
            pids = [first.info.backend_pid, second.info.backend_pid]
        sql(postgres_url, "SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))
        failures = 0
        for _ in range(6):  # at most one call fails per dead connection; the pool replaces them
            try:
                assert store.get_workflow_instance(instance.id).id == instance.id
            except ProviderUnavailableError:
                failures += 1
        assert failures <= 2
        assert store.get_workflow_instance(instance.id).id == instance.id
        with store._pool.connection() as conn:
            assert conn.info.backend_pid not in pids
    finally:
        store.close()


def test_a_failed_transaction_gives_its_connection_back_clean(postgres_url: str, schema: Schema) -> None:
    store = PostgresPersistenceProvider(postgres_url, schema=schema(), min_size=1, max_size=1)
    try:
        with pytest.raises(psycopg.errors.UndefinedTable), store._pool.connection() as conn:
            conn.execute("BEGIN")
            conn.execute("SELECT * FROM no_such_table")
        with store._pool.connection() as conn:  # the one connection, rolled back on the way in
            assert conn.info.transaction_status is psycopg.pq.TransactionStatus.IDLE
        store.create_workflow(WorkflowInstance(workflow_definition_id="flow", version=1))
    finally:
        store.close()


def xmins(postgres_url: str, store: PostgresPersistenceProvider, instances: list[WorkflowInstance]) -> set[str]:
    """The transactions that last wrote these instances' rows."""
    rows = sql(
        postgres_url,
        f'SELECT xmin::text FROM "{store.schema}".workflow WHERE id = ANY(%s)',
        ([i.id for i in instances],),
    )
    return {row[0] for row in rows}


def created(store: PostgresPersistenceProvider, count: int, **fields: Any) -> list[WorkflowInstance]:
    instances = [WorkflowInstance(workflow_definition_id="flow", version=1, **fields) for _ in range(count)]
    for instance in instances:
        store.create_workflow(instance)
        instance.data = {"saved": True}
    return instances


def test_a_save_that_writes_more_rows_is_checked_and_atomic(postgres_url: str, schema: Schema) -> None:
    """Such a save is one round trip: its UPDATE fails when the revision moved on, and nothing of
    it is written."""
    store = PostgresPersistenceProvider(postgres_url, schema=schema())
    try:
        (instance,) = created(store, 1)
        stale = store.get_workflow_instance(instance.id)
        error = ExecutionError(workflow_id=instance.id, execution_pointer_id="p", step_id=0, message="boom")
        store.persist_workflow(instance, errors=[error])
        with pytest.raises(ConcurrencyError):
            store.persist_workflow(
                stale,
                errors=[ExecutionError(workflow_id=instance.id, execution_pointer_id="p", step_id=0, message="stale")],
            )
        assert [e.message for e in store.get_errors(instance.id)] == ["boom"]
        store.persist_workflow(
            instance,
            errors=[ExecutionError(workflow_id=instance.id, execution_pointer_id="p", step_id=0, message="again")],
        )
        assert [e.message for e in store.get_errors(instance.id)] == ["boom", "again"]
        assert store.get_workflow_instance(instance.id).revision == 2
    finally:
        store.close()


def test_a_store_and_a_lock_on_one_schema_lock_and_load_in_one_call(postgres_url: str, schema: Schema) -> None:
    name, elsewhere = schema(), schema()
    store = PostgresPersistenceProvider(postgres_url, schema=name)
    lock = PostgresLockProvider(postgres_url, schema=name, lease=30)
    rival = PostgresLockProvider(postgres_url, schema=name, lease=30)
    other = PostgresLockProvider(postgres_url, schema=elsewhere, lease=30)
    try:
        instance = WorkflowInstance(workflow_definition_id="flow", version=1, reference="r1")
        store.create_workflow(instance)
        store.persist_workflow(instance)  # revision 1 -> 2: the load reads what was committed
        loaded = store.acquire_and_load(lock, instance.id)
        assert isinstance(loaded, WorkflowInstance)
        assert (loaded.id, loaded.reference, loaded.revision) == (instance.id, "r1", instance.revision)
        assert lock.token(instance.id) is not None
        token = lock.token(instance.id)
        # Held: a second joint call, by the holder or a rival, takes nothing, as its acquire would.
        assert store.acquire_and_load(lock, instance.id) is False
        assert lock.token(instance.id) == token
        assert store.acquire_and_load(rival, instance.id) is False
        assert rival.token(instance.id) is None
        lock.release(instance.id)
        assert isinstance(store.acquire_and_load(rival, instance.id), WorkflowInstance)
        rival.release(instance.id)
        # A lock in another schema, or any other lock provider: nothing done, the host does both.
        assert store.acquire_and_load(other, instance.id) is None
        assert other.token(instance.id) is None
    finally:
        for provider in (other, rival, lock, store):
            provider.close()


def test_a_missing_instance_gives_the_joint_lock_back(postgres_url: str, schema: Schema) -> None:
    name = schema()
    store = PostgresPersistenceProvider(postgres_url, schema=name)
    lock = PostgresLockProvider(postgres_url, schema=name, lease=30)
    try:
        with pytest.raises(WorkflowNotFoundError):
            store.acquire_and_load(lock, "nobody")
        assert lock.token("nobody") is None
        assert sql(postgres_url, f'SELECT resource FROM "{name}".lock_lease') == []
    finally:
        lock.close()
        store.close()


def test_the_joint_lock_and_load_prepares_again_on_a_new_connection(postgres_url: str, schema: Schema) -> None:
    """Its statements are prepared once per connection; a connection that replaced a dead one has
    none, and prepares them again."""
    name = schema()
    store = PostgresPersistenceProvider(postgres_url, schema=name)
    lock = PostgresLockProvider(postgres_url, schema=name, lease=30, min_size=1, max_size=1)
    try:
        instance = WorkflowInstance(workflow_definition_id="flow", version=1)
        store.create_workflow(instance)
        for _ in range(2):
            assert isinstance(store.acquire_and_load(lock, instance.id), WorkflowInstance)
            lock.release(instance.id)
        with lock._pool.connection() as conn:
            pid = conn.info.backend_pid
        sql(postgres_url, "SELECT pg_terminate_backend(%s)", (pid,))
        loaded: WorkflowInstance | bool | None = None
        for _ in range(3):  # the call on the dead connection fails; the pool replaces it
            try:
                loaded = store.acquire_and_load(lock, instance.id)
                break
            except ProviderUnavailableError:
                continue
        assert isinstance(loaded, WorkflowInstance) and loaded.id == instance.id
        assert lock.token(instance.id) is not None
    finally:
        lock.close()
        store.close()


def test_the_providers_connections_read_committed_whatever_the_url_says(postgres_url: str, schema: Schema) -> None:
    """The joint lock and load reads after the grant with a snapshot of its own, which only read
    committed gives: a connection string asking for repeatable read does not change the providers'."""
    separator = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{separator}options=-c%20default_transaction_isolation%3Drepeatable%5C%20read"
    assert sql(url, "SHOW transaction_isolation") == [("repeatable read",)]  # the URL's own setting
    name = schema()
    store = PostgresPersistenceProvider(url, schema=name)
    lock = PostgresLockProvider(url, schema=name, lease=30)
    try:
        for provider in (store, lock):
            with provider._pool.connection() as conn:
                assert conn.execute("SHOW transaction_isolation").fetchone() == ("read committed",)
                assert conn.execute("SHOW statement_timeout").fetchone() != ("0",)  # the URL's options kept ours
    finally:
        lock.close()
        store.close()


def test_prepared_statements_outlive_a_rolled_back_save(postgres_url: str, schema: Schema) -> None:
    """A save that loses its revision check is rolled back on its connection; the statements
    prepared there (the plain ones, and the start's joint one) still run afterwards. psycopg, when
    it has prepared statements of its own, answers a rollback with DEALLOCATE ALL, which dropped
    the joint start's too: the next start on that connection failed."""
    name = schema()
    store = PostgresPersistenceProvider(postgres_url, schema=name, min_size=1, max_size=1)
    queue = PostgresQueueProvider(postgres_url, schema=name)
    try:
        for _ in range(6):  # past psycopg's own threshold for preparing a statement (5 uses)
            instance = WorkflowInstance(workflow_definition_id="flow", version=1)
            assert store.create_workflow_queued(instance, queue) is True
            store.persist_workflow(store.get_workflow_instance(instance.id))
        stale = store.get_workflow_instance(instance.id)
        error = ExecutionError(workflow_id=instance.id, execution_pointer_id="p", step_id=0, message="boom")
        store.persist_workflow(store.get_workflow_instance(instance.id), errors=[error])
        with pytest.raises(ConcurrencyError):  # the multi-row save: BEGIN ... ROLLBACK on the one connection
            store.persist_workflow(stale, errors=[error])
        after = WorkflowInstance(workflow_definition_id="flow", version=1)
        assert store.create_workflow_queued(after, queue) is True
        assert store.get_workflow_instance(after.id).id == after.id
    finally:
        queue.close()
        store.close()


def test_a_statement_the_server_forgot_is_prepared_again(postgres_url: str, schema: Schema) -> None:
    """DEALLOCATE ALL (or a pooler's DISCARD ALL) on a connection: the next call prepares again."""
    store = PostgresPersistenceProvider(postgres_url, schema=schema(), min_size=1, max_size=1)
    try:
        (instance,) = created(store, 1)
        store.persist_workflow(instance)
        with store._pool.connection() as conn:
            conn.execute("DEALLOCATE ALL")
        store.persist_workflow(instance)
        assert store.get_workflow_instance(instance.id).revision == instance.revision == 2
    finally:
        store.close()


def test_the_joint_calls_prepare_again_what_the_server_forgot(postgres_url: str, schema: Schema) -> None:
    """DEALLOCATE ALL on the one connection of each pool: the joint start and the joint lock and
    load prepare their statements again and run once more; nothing is stored twice."""
    name = schema()
    store = PostgresPersistenceProvider(postgres_url, schema=name, min_size=1, max_size=1)
    queue = PostgresQueueProvider(postgres_url, schema=name, min_size=1, max_size=1)
    lock = PostgresLockProvider(postgres_url, schema=name, lease=30, min_size=1, max_size=1)
    try:
        first = WorkflowInstance(workflow_definition_id="flow", version=1)
        assert store.create_workflow_queued(first, queue) is True
        assert isinstance(store.acquire_and_load(lock, first.id), WorkflowInstance)
        lock.release(first.id)
        for provider in (store, lock):
            with provider._pool.connection() as conn:
                conn.execute("DEALLOCATE ALL")
        second = WorkflowInstance(workflow_definition_id="flow", version=1)
        assert store.create_workflow_queued(second, queue) is True
        assert rows(postgres_url, name) == (
            sorted([first.id, second.id]),
            sorted([("workflow", first.id, 0), ("workflow", second.id, 0)], key=lambda row: row[1]),
        )
        loaded = store.acquire_and_load(lock, second.id)
        assert isinstance(loaded, WorkflowInstance) and loaded.id == second.id
        assert lock.token(second.id) is not None
    finally:
        lock.close()
        queue.close()
        store.close()


class Colour(enum.StrEnum):
    RED = "red"


def test_parameters_keep_their_text_whatever_the_session_asks_for(postgres_url: str, schema: Schema) -> None:
    """The statements send and read text themselves: a URL asking for another client encoding or
    date style changes nothing stored or read; a str subclass goes as its text; a NUL, which libpq
    would cut the text at, is refused instead of stored short."""
    separator = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{separator}client_encoding=LATIN1&options=-c%20datestyle%3DSQL%2CDMY"
    name = schema()
    store = PostgresPersistenceProvider(url, schema=name)
    try:
        instance = WorkflowInstance(workflow_definition_id="flüss", version=1, reference="Ærø ✓")
        store.create_workflow(instance)
        loaded = store.get_workflow_instance(instance.id)
        assert (loaded.workflow_definition_id, loaded.reference) == ("flüss", "Ærø ✓")
        # As stored: what any other client reads, not only this provider.
        assert sql(postgres_url, f'SELECT definition_id, reference FROM "{name}".workflow') == [("flüss", "Ærø ✓")]
        when = datetime(2026, 12, 2, 3, 4, 5, 678901, tzinfo=UTC)
        event = Event(Colour.RED, "clé ✓", event_data={"ü": 1}, event_time=when)
        store.create_event(event)
        (found,) = store.get_events("red", "clé ✓", when)
        assert (found.id, found.event_name, found.event_time, found.event_data) == (event.id, "red", when, {"ü": 1})
        assert store.get_event(event.id).event_time == when
        with pytest.raises(ProviderError, match="NUL"):
            store.get_events("red", "k\x00ey", when)
        with pytest.raises(ProviderError, match="NUL"):
            store.create_workflow(WorkflowInstance(workflow_definition_id="flow", version=1, reference="a\x00b"))
    finally:
        store.close()
