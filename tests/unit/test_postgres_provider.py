"""What the PostgreSQL providers do beyond the generic contracts: schema migrations (also when hosts
start together), query plans, URLs, queue redelivery and wake-ups, lock leases and fencing, and
a real host running on all three.

The server is ``LITEFLOW_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``);
tests skip when it is unreachable, except with ``CI=true``, where they fail.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

psycopg = pytest.importorskip("psycopg")

from liteflow.core import (
    ConfigurationError,
    ProviderError,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowInstance,
    WorkflowStatus,
    configure_workflow_host,
)
from liteflow.core._config import _LOCK_URLS, _PERSISTENCE_URLS, _QUEUE_URLS, _from_url
from liteflow.core._providers import InstanceQuery, QueueType
from liteflow.providers import postgres as postgres_package
from liteflow.providers.postgres import (
    PostgresLockProvider,
    PostgresPersistenceProvider,
    PostgresQueueProvider,
    _schema,
)

T0 = datetime(2024, 5, 17, 12, 0, 0, 123456, tzinfo=UTC)

from conftest import Schema  # type: ignore[import-not-found]
from polling import wait_until


def sql(url: str, statement: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement, parameters or None)
        return cursor.fetchall() if cursor.description else []


def test_public_names() -> None:
    assert postgres_package.__all__ == ["PostgresLockProvider", "PostgresPersistenceProvider", "PostgresQueueProvider"]


# -- schema ----------------------------------------------------------------------------------------


def versions(url: str, name: str) -> list[int]:
    return [row[0] for row in sql(url, f'SELECT version FROM "{name}".schema_version ORDER BY version')]


def test_migrations_are_applied_once_and_reopening_keeps_data(postgres_url: str, schema: Schema) -> None:
    name = schema(new=True)
    first = PostgresPersistenceProvider(postgres_url, schema=name)
    first.create_workflow(wf := WorkflowInstance(workflow_definition_id="flow", version=1, data={"n": 1}))
    first.close()
    for provider in (PostgresPersistenceProvider, PostgresQueueProvider, PostgresLockProvider):
        provider(postgres_url, schema=name).close()
    again = PostgresPersistenceProvider(postgres_url, schema=name)
    try:
        assert again.get_workflow_instance(wf.id).data == {"n": 1}
    finally:
        again.close()
    assert versions(postgres_url, name) == list(range(1, len(_schema.MIGRATIONS) + 1))
    tables = {row[0] for row in sql(postgres_url, "SELECT tablename FROM pg_tables WHERE schemaname = %s", (name,))}
    expected = {"schema_version", "workflow", "subscription", "event", "execution_error", "queue_item", "lock_lease"}
    assert tables == expected


def test_hosts_starting_together_on_a_new_schema_migrate_it_once(postgres_url: str, schema: Schema) -> None:
    name = schema(new=True)
    kinds = [PostgresPersistenceProvider, PostgresQueueProvider, PostgresLockProvider] * 2
    barrier = threading.Barrier(len(kinds))
    opened: list[Any] = []
    failures: list[BaseException] = []

    def start(kind: Any) -> None:
        try:
            barrier.wait()
            opened.append(kind(postgres_url, schema=name))
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=start, args=(kind,)) for kind in kinds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for provider in opened:
        provider.close()
    assert not failures, failures
    assert len(opened) == len(kinds)
    assert versions(postgres_url, name) == list(range(1, len(_schema.MIGRATIONS) + 1))


def test_a_new_migration_is_applied_once_to_an_existing_schema(
    postgres_url: str, schema: Schema, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = schema()
    PostgresLockProvider(postgres_url, schema=name).close()
    extended = [*_schema.MIGRATIONS, ("CREATE TABLE {s}.extra (x integer)", "INSERT INTO {s}.extra VALUES (1)")]
    monkeypatch.setattr(_schema, "MIGRATIONS", extended)
    PostgresLockProvider(postgres_url, schema=name).close()
    PostgresLockProvider(postgres_url, schema=name).close()
    assert versions(postgres_url, name) == list(range(1, len(extended) + 1))
    assert sql(postgres_url, f'SELECT count(*) FROM "{name}".extra') == [(1,)]


def test_a_schema_newer_than_this_liteflow_is_refused(postgres_url: str, schema: Schema) -> None:
    name = schema()
    PostgresLockProvider(postgres_url, schema=name).close()
    sql(postgres_url, f'INSERT INTO "{name}".schema_version (version) VALUES (99)')
    with pytest.raises(ProviderError, match="newer than this LiteFlow"):
        PostgresLockProvider(postgres_url, schema=name)


@pytest.mark.parametrize("bad", ["", "Upper", "has-dash", 'quo"te', "x" * 49, "1starts_with_digit"])
def test_schema_names_are_checked(postgres_url: str, bad: str) -> None:
    with pytest.raises(ConfigurationError):
        PostgresQueueProvider(postgres_url, schema=bad)


# -- URLs ------------------------------------------------------------------------------------------


def test_providers_from_urls(postgres_url: str, schema: Schema) -> None:
    name = schema()
    parts = urlsplit(postgres_url)
    short = parts._replace(scheme="postgres").geturl()  # postgres:// is accepted too
    persistence = _from_url("persistence", f"{postgres_url}?schema={name}&max_size=3", _PERSISTENCE_URLS)
    queue = _from_url("queue", f"{short}?schema={name}&visibility_timeout=7&connect_timeout=5", _QUEUE_URLS)
    lock = _from_url("lock", f"{short}?schema={name}&lease=3", _LOCK_URLS)
    try:
        assert isinstance(persistence, PostgresPersistenceProvider) and persistence.schema == name
        assert isinstance(queue, PostgresQueueProvider)
        assert (queue.schema, queue.visibility_timeout) == (name, 7.0)
        assert isinstance(lock, PostgresLockProvider) and (lock.schema, lock.lease) == (name, 3.0)
        queue.enqueue(QueueType.WORKFLOW, "x")
        assert queue.dequeue(QueueType.WORKFLOW, 1.0) == "x"
        assert lock.acquire("r") is True
        persistence.create_workflow(WorkflowInstance(workflow_definition_id="flow", version=1))
        assert len(persistence.query_instances(InstanceQuery())) == 1
    finally:
        for provider in (persistence, queue, lock):
            provider.close()
    with pytest.raises(ConfigurationError, match="bad value"):
        PostgresLockProvider.from_url(f"{postgres_url}?lease=soon")
    with pytest.raises(ConfigurationError, match="not a postgresql"):
        PostgresQueueProvider.from_url("redis://localhost/0")


def test_only_queue_and_lock_commit_asynchronously_unless_told_otherwise(postgres_url: str, schema: Schema) -> None:
    name = schema()
    providers: list[Any] = [
        PostgresPersistenceProvider(postgres_url, schema=name),
        PostgresQueueProvider.from_url(f"{postgres_url}?schema={name}&synchronous_commit=true"),
        PostgresLockProvider(postgres_url, schema=name, synchronous_commit=True),
        PostgresQueueProvider(postgres_url, schema=name),
        PostgresLockProvider(postgres_url, schema=name),
    ]
    try:
        settings = []
        for provider in providers:
            with provider._pool.connection() as conn:
                settings.append(conn.execute("SHOW synchronous_commit").fetchone()[0])
        server = sql(postgres_url, "SHOW synchronous_commit")[0][0]
        assert settings == [server, server, server, "off", "off"]
    finally:
        for provider in providers:
            provider.close()


# -- query plans -----------------------------------------------------------------------------------


def plan(conn: Any, statement: str, parameters: tuple[Any, ...]) -> str:
    return "\n".join(row[0] for row in conn.execute(f"EXPLAIN {statement}", parameters).fetchall())


def test_main_queries_use_indexes_on_a_realistic_store(postgres_url: str, schema: Schema) -> None:
    name = schema(new=True)  # tables that never held other rows: the plans depend on their statistics
    store = PostgresPersistenceProvider(postgres_url, schema=name)
    queue = PostgresQueueProvider(postgres_url, schema=name)
    lock = PostgresLockProvider(postgres_url, schema=name)
    s = f'"{name}"'
    try:
        # 5,000 instances, nearly all finished, as in a store that has run for a while; as many
        # subscriptions, events, errors, queue rows and lock rows.
        rows = 5000
        sql(
            postgres_url,
            f"""
            INSERT INTO {s}.workflow (id, definition_id, version, reference, status, next_execution, create_time,
                                      complete_time, revision, record)
            SELECT 'wf-' || n, 'def-' || (n % 20), 1, 'ref-' || n,
                   CASE WHEN n % 100 = 0 THEN 'runnable' ELSE 'complete' END,
                   CASE WHEN n % 100 = 0 THEN now() + n * interval '1 second' END,
                   now() - n * interval '1 second',
                   CASE WHEN n % 100 = 0 THEN NULL ELSE now() - n * interval '1 second' END, 0, '{{}}'
            FROM generate_series(1, {rows}) AS n""",
        )
        sql(
            postgres_url,
            f"""
            INSERT INTO {s}.subscription SELECT 's-' || n, 'wf-' || n, 'ev-' || (n % 50), 'k-' || n,
                now() - n * interval '1 second', '{{}}' FROM generate_series(1, {rows}) AS n""",
        )
        sql(
            postgres_url,
            f"""
            INSERT INTO {s}.event SELECT 'e-' || n, 'ev-' || (n % 50), 'k-' || n, now() - n * interval '1 second',
                n % 100 <> 0, '{{}}' FROM generate_series(1, {rows}) AS n""",
        )
        sql(
            postgres_url,
            f"""
            INSERT INTO {s}.execution_error (id, workflow_id, record)
            SELECT 'x-' || n, 'wf-' || (n % 1000), '{{}}' FROM generate_series(1, {rows}) AS n""",
        )
        sql(
            postgres_url,
            f"""
            INSERT INTO {s}.queue_item (queue, item_id, visible_at, taken_by)
            SELECT CASE WHEN n % 2 = 0 THEN 'workflow' ELSE 'event' END, 'i-' || n,
                   now() + interval '1 hour', 'someone' FROM generate_series(1, {rows}) AS n""",
        )
        sql(
            postgres_url,
            f"""
            INSERT INTO {s}.lock_lease SELECT 'r-' || n, 'o-' || (n % 10), n, now() + interval '1 hour'
            FROM generate_series(1, {rows}) AS n""",
        )
        sql(
            postgres_url,
            f"ANALYZE {s}.workflow, {s}.subscription, {s}.event, {s}.execution_error, {s}.queue_item, {s}.lock_lease",
        )

        statements: dict[str, tuple[str, tuple[Any, ...]]] = {
            "runnable workflows": (store._sql.runnable_workflows, (datetime.now(UTC),)),
            "load workflow": (store._sql.select_workflow, ("wf-7",)),
            "save workflow": (store._sql.update_workflow, ("d", 1, None, "complete", None, None, "{}", "wf-7", 0)),
            "subscriptions": (store._sql.select_subscriptions, ("ev-1", "k-1", datetime.now(UTC))),
            "events by key": (store._sql.select_events, ("ev-1", "k-1", T0)),
            "runnable events": (store._sql.runnable_events, (datetime.now(UTC),)),
            "errors": (store._sql.select_errors, ("wf-1",)),
            "purge": (store._sql.purge_workflows, (T0, ["complete"])),
            "dequeue": (queue._take_sql, ("t", 30.0, "workflow")),
            "acknowledge": (queue._ack_sql, (17, "t")),
            "lock": (lock._acquire_sql, ("r-1", "me", 10.0)),
            "unlock": (lock._release_sql, ("r-1", 1)),
        }
        page = " ORDER BY create_time, id LIMIT 100 OFFSET 0"
        for label, where, parameters in (
            ("by definition", "definition_id = %s", ("def-3",)),
            ("by reference", "reference = %s", ("ref-3",)),
            ("by status", "status = %s", ("runnable",)),
            ("by creation time", "create_time >= %s", (datetime.now(UTC) - timedelta(seconds=60),)),
            ("all", "TRUE", ()),
        ):
            statements[f"query {label}"] = (f"{store._sql.select_workflows} WHERE {where}{page}", parameters)
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            plans = {label: plan(conn, statement, parameters) for label, (statement, parameters) in statements.items()}
        scans = {label: text for label, text in plans.items() if "Seq Scan" in text}
        assert scans == {}, "\n\n".join(f"{label}:\n{text}" for label, text in scans.items())
        assert "workflow_definition" in plans["query by definition"]
        assert "workflow_reference" in plans["query by reference"]
        assert "workflow_runnable" in plans["runnable workflows"]
        assert "event_unprocessed" in plans["runnable events"]
        assert "queue_item_next" in plans["dequeue"]
    finally:
        for provider in (store, queue, lock):
            provider.close()


# -- persistence -----------------------------------------------------------------------------------


def test_naive_times_are_taken_as_utc(postgres_url: str, schema: Schema) -> None:
    store = PostgresPersistenceProvider(postgres_url, schema=schema())
    try:
        wf = WorkflowInstance(workflow_definition_id="flow", version=1, next_execution=T0, create_time=T0)
        store.create_workflow(wf)
        naive = T0.replace(tzinfo=None)
        assert store.get_runnable_instances(naive) == [wf.id]
        assert [i.id for i in store.query_instances(InstanceQuery(created_from=naive))] == [wf.id]
    finally:
        store.close()


def test_wait_for_work_wakes_on_another_hosts_save(postgres_url: str, schema: Schema) -> None:
    name = schema()
    waiter = PostgresPersistenceProvider(postgres_url, schema=name, notify=True)
    saver = PostgresPersistenceProvider(postgres_url, schema=name, notify=True)
    try:
        assert waiter.wait_for_work(0.1) is False
        woke: list[float] = []
        thread = threading.Thread(target=lambda: woke.append(time.monotonic()) if waiter.wait_for_work(5) else None)
        thread.start()
        # The thread has read the listener's generation once it counts as a waiter: a save now wakes it.
        wait_until(lambda: waiter._listener._generation_waiters.get("") == 1, "the thread to wait")
        saved = time.monotonic()
        saver.create_workflow(WorkflowInstance(workflow_definition_id="flow", version=1, next_execution=T0))  # due
        thread.join(5)
        assert woke and woke[0] - saved < 0.5
    finally:
        waiter.close()
        saver.close()


# -- queue -----------------------------------------------------------------------------------------


def test_item_of_a_dead_consumer_comes_back_after_the_visibility_timeout(postgres_url: str, schema: Schema) -> None:
    name = schema()
    dead = PostgresQueueProvider(postgres_url, schema=name, visibility_timeout=0.5)
    alive = PostgresQueueProvider(postgres_url, schema=name, visibility_timeout=0.5)
    try:
        dead.enqueue(QueueType.WORKFLOW, "wf-1")
        assert dead.dequeue(QueueType.WORKFLOW, 1.0) == "wf-1"
        taken = time.monotonic()
        # `dead` never acknowledges (nor closes, until the end: a crashed node does neither).
        assert alive.dequeue(QueueType.WORKFLOW, 0.2) is None
        # Not before the visibility timeout (the lease is timed by the server clock); the deadline
        # only guards against its never coming back: a loaded machine may deliver it late.
        deadline = taken + 30.0
        while (item := alive.dequeue(QueueType.WORKFLOW, 1.0)) is None and time.monotonic() < deadline:
            pass
        assert item == "wf-1", "the item never came back after the visibility timeout"
        assert time.monotonic() - taken >= 0.45
        dead.acknowledge(QueueType.WORKFLOW, "wf-1")  # too late: the new delivery is not touched
        alive.acknowledge(QueueType.WORKFLOW, "wf-1")
        assert alive.dequeue(QueueType.WORKFLOW, 0.8) is None  # acknowledged: gone for good
        assert sql(postgres_url, f'SELECT count(*) FROM "{name}".queue_item') == [(0,)]
    finally:
        alive.close()
        dead.close()


def test_close_hands_back_unacknowledged_items_at_once(postgres_url: str, schema: Schema) -> None:
    name = schema()
    first = PostgresQueueProvider(postgres_url, schema=name)
    second = PostgresQueueProvider(postgres_url, schema=name)
    try:
        first.enqueue(QueueType.EVENT, "ev-1")
        assert first.dequeue(QueueType.EVENT, 1.0) == "ev-1"
        first.close()
        assert second.dequeue(QueueType.EVENT, 1.0) == "ev-1"
    finally:
        second.close()


def test_blocked_dequeue_wakes_promptly_on_another_nodes_enqueue(postgres_url: str, schema: Schema) -> None:
    name = schema()
    consumer = PostgresQueueProvider(postgres_url, schema=name)
    producer = PostgresQueueProvider(postgres_url, schema=name)
    try:
        delays: list[float] = []
        for n in range(8):
            result: list[tuple[str | None, float]] = []

            def consume(into: list[tuple[str | None, float]] = result) -> None:
                into.append((consumer.dequeue(QueueType.WORKFLOW, 10.0), time.monotonic()))

            thread = threading.Thread(target=consume)
            thread.start()
            time.sleep(0.1 + 0.02 * n)  # blocked past its first check, at different points of the listener's cycle
            enqueued = time.monotonic()
            producer.enqueue(QueueType.WORKFLOW, f"wf-{n}")
            thread.join(5)
            assert result and result[0][0] == f"wf-{n}"
            delays.append(result[0][1] - enqueued)
            consumer.acknowledge(QueueType.WORKFLOW, f"wf-{n}")
        # Woken by the notification, not by a re-check: a listener that passed notifications on
        # late (in batches, or at its 0.25 s read timeout) would show here as a median near 0.1 s.
        assert sorted(delays)[len(delays) // 2] < 0.05, delays
        assert max(delays) < 0.3, delays
    finally:
        consumer.close()
        producer.close()


def test_an_enqueue_wakes_its_own_process_at_once_and_its_notification_adds_no_second_ticket(
    postgres_url: str, schema: Schema
) -> None:
    queue = PostgresQueueProvider(postgres_url, schema=schema())
    try:
        for n in range(5):
            queue.enqueue(QueueType.WORKFLOW, f"wf-{n}")
        queue.enqueue(QueueType.WORKFLOW, "wf-0")  # already waiting: nothing sent, nothing expected
        listener = queue._listener
        deadline = time.monotonic() + 5
        while listener._expected and time.monotonic() < deadline:  # the notifications' trip back
            time.sleep(0.01)
        assert listener._expected == {}
        assert listener._tickets == {"workflow": 5}  # one wake-up per item, not two
        assert [queue.dequeue(QueueType.WORKFLOW, 0) for _ in range(6)] == [*(f"wf-{n}" for n in range(5)), None]
    finally:
        queue.close()


# -- a real host on all three ----------------------------------------------------------------------


class Add(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        context.workflow.data["steps"] = context.workflow.data.get("steps", 0) + 1


class ThreeStepsAndAnEvent(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        (
            builder.start_with(Add)
            .then(Add)
            .wait_for("paid", lambda data, context: data["order"])
            .output("payment", lambda step: step.event_data)
            .then(Add)
        )


def test_a_host_on_postgres_runs_steps_and_an_event_wait_to_completion(postgres_url: str, schema: Schema) -> None:
    url = f"{postgres_url}?schema={schema()}"
    with configure_workflow_host(url, url, url, poll_interval=60) as host:
        assert isinstance(host.persistence, PostgresPersistenceProvider)
        assert isinstance(host.queue, PostgresQueueProvider)
        assert isinstance(host.lock, PostgresLockProvider)
        host.register_workflow(ThreeStepsAndAnEvent())
        ids = [host.start_workflow("ThreeStepsAndAnEvent", 1, {"order": f"o-{n}"}) for n in range(5)]
        deadline = time.monotonic() + 10
        while any(host.get_workflow_instance(i).data.get("steps") != 2 for i in ids):
            assert time.monotonic() < deadline, "the first two steps did not run"
            time.sleep(0.02)
        for n in range(8):
            host.publish_event("paid", f"o-{n}", {"amount": n})
        for n, workflow_id in enumerate(ids):
            instance = host.wait_for_workflow(workflow_id, 10)
            assert instance.status is WorkflowStatus.COMPLETE
            assert instance.data == {"order": f"o-{n}", "steps": 3, "payment": {"amount": n}}
