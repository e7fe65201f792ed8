"""What the SQLite provider does beyond the generic persistence contract: schema migrations, files,
WAL, threads, ``:memory:``, URLs and query plans."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from liteflow.core import (
    ConcurrencyError,
    Event,
    EventSubscription,
    ExecutionError,
    InvalidArgumentError,
    InvalidOperationError,
    ProviderError,
    SerializationError,
    WorkflowInstance,
    WorkflowNotFoundError,
    WorkflowStatus,
)
from liteflow.core._config import _PERSISTENCE_URLS, _from_url
from liteflow.core._providers import InstanceQuery
from liteflow.providers import sqlite as sqlite_package
from liteflow.providers.sqlite import SqlitePersistenceProvider, _provider, _schema

T0 = datetime(2024, 5, 17, 12, 0, 0, 123456, tzinfo=timezone.utc)
US = timedelta(microseconds=1)


def instance(**overrides: object) -> WorkflowInstance:
    fields: dict[str, object] = dict(workflow_definition_id="flow", version=1, data={"n": 1}, next_execution=T0)
    fields.update(overrides)
    return WorkflowInstance(**fields)  # type: ignore[arg-type]


def subscription(workflow_id: str, **overrides: object) -> EventSubscription:
    fields: dict[str, object] = dict(
        workflow_id=workflow_id,
        step_id=1,
        execution_pointer_id="p1",
        event_name="paid",
        event_key="k",
        subscribe_as_of=T0,
    )
    fields.update(overrides)
    return EventSubscription(**fields)  # type: ignore[arg-type]


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path)


def test_public_names() -> None:
    assert sqlite_package.__all__ == ["SqliteLockProvider", "SqlitePersistenceProvider"]


# -- schema --------------------------------------------------------------------------------------


def test_migrations_are_applied_on_open(store: SqlitePersistenceProvider, db_path: Path) -> None:
    with raw(db_path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == len(_schema.MIGRATIONS)
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"workflow", "subscription", "event", "execution_error"} <= tables


def test_reopening_is_idempotent_and_keeps_data(db_path: Path) -> None:
    first = SqlitePersistenceProvider(db_path)
    wf = instance()
    first.create_workflow(wf)
    first.close()
    for _ in range(2):
        again = SqlitePersistenceProvider(db_path)
        assert again.get_workflow_instance(wf.id).data == {"n": 1}
        again.close()
    with raw(db_path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == len(_schema.MIGRATIONS)


def test_new_migration_is_applied_once_on_an_existing_file(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    SqlitePersistenceProvider(db_path).close()
    extended = [*_schema.MIGRATIONS, ("CREATE TABLE extra (x INTEGER)", "INSERT INTO extra VALUES (1)")]
    monkeypatch.setattr(_schema, "MIGRATIONS", extended)
    SqlitePersistenceProvider(db_path).close()
    SqlitePersistenceProvider(db_path).close()
    with raw(db_path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == len(extended)
        assert connection.execute("SELECT count(*) FROM extra").fetchone()[0] == 1


def test_a_version_1_file_is_upgraded_with_the_query_indexes(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(_schema, "MIGRATIONS", _schema.MIGRATIONS[:1])
        old = SqlitePersistenceProvider(db_path)
        old.create_workflow(wf := instance(reference="r"))
        old.close()
    upgraded = SqlitePersistenceProvider(db_path)
    try:
        assert _schema.schema_version(upgraded._writer) == 2
        assert [found.id for found in upgraded.query_instances(InstanceQuery(reference="r"))] == [wf.id]
    finally:
        upgraded.close()
    with raw(db_path) as connection:
        indexes = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"workflow_definition", "workflow_reference", "workflow_status", "workflow_created"} <= indexes


def test_a_failed_migration_is_rolled_back(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    SqlitePersistenceProvider(db_path).close()
    broken = [*_schema.MIGRATIONS, ("CREATE TABLE half (x INTEGER)", "THIS IS NOT SQL")]
    monkeypatch.setattr(_schema, "MIGRATIONS", broken)
    with pytest.raises(sqlite3.OperationalError):
        SqlitePersistenceProvider(db_path)
    with raw(db_path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == len(broken) - 1
        assert connection.execute("SELECT name FROM sqlite_master WHERE name = 'half'").fetchone() is None


def test_a_newer_schema_is_refused(db_path: Path) -> None:
    SqlitePersistenceProvider(db_path).close()
    with raw(db_path) as connection:
        connection.execute(f"PRAGMA user_version = {len(_schema.MIGRATIONS) + 1}")
    with pytest.raises(ProviderError, match="newer"):
        SqlitePersistenceProvider(db_path)


def test_unopenable_path_is_a_provider_error(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="cannot open"):
        SqlitePersistenceProvider(tmp_path / "missing-dir" / "flow.db")


# -- durability settings -------------------------------------------------------------------------


def test_wal_mode_and_synchronous(db_path: Path) -> None:
    provider = SqlitePersistenceProvider(db_path, synchronous="full")
    try:
        with raw(db_path) as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert provider._writer.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        provider.close()
    provider = SqlitePersistenceProvider(db_path)
    try:
        assert provider._writer.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    finally:
        provider.close()


def test_bad_synchronous_is_rejected(db_path: Path) -> None:
    with pytest.raises(InvalidArgumentError):
        SqlitePersistenceProvider(db_path, synchronous="SOMETIMES")


def test_everything_survives_reopen(db_path: Path) -> None:
    provider = SqlitePersistenceProvider(db_path)
    wf = instance(data={"when": T0, "items": (1, 2)})
    provider.create_workflow(wf)
    sub = subscription(wf.id)
    error = ExecutionError(workflow_id=wf.id, execution_pointer_id="p1", step_id=1, message="boom")
    provider.persist_workflow(wf, subscriptions=[sub], errors=[error])
    event = Event(event_name="paid", event_key="k", event_data=[1], event_time=T0)
    provider.create_event(event)
    provider.mark_event_processed(event.id)
    provider.close()

    reopened = SqlitePersistenceProvider(db_path)
    try:
        loaded = reopened.get_workflow_instance(wf.id)
        assert loaded.data == {"when": T0, "items": (1, 2)}
        assert loaded.revision == 1
        assert reopened.get_subscriptions("paid", "k", T0) == [sub]
        assert reopened.get_errors(wf.id) == [error]
        assert reopened.get_event(event.id).is_processed is True
        assert reopened.get_runnable_instances(T0) == [wf.id]
    finally:
        reopened.close()


# -- writes ---------------------------------------------------------------------------------------


def test_serialization_error_in_persist_writes_nothing(store: SqlitePersistenceProvider) -> None:
    wf = instance()
    store.create_workflow(wf)
    wf.data = {"lock": threading.Lock()}
    with pytest.raises(SerializationError):
        store.persist_workflow(wf, subscriptions=[subscription(wf.id)])
    assert wf.revision == 0
    assert store.get_workflow_instance(wf.id).data == {"n": 1}
    assert store.get_subscriptions("paid", "k", T0) == []


def test_serialization_error_in_create_writes_nothing(store: SqlitePersistenceProvider) -> None:
    wf = instance(data=threading.Lock())
    with pytest.raises(SerializationError):
        store.create_workflow(wf)
    with pytest.raises(WorkflowNotFoundError):
        store.get_workflow_instance(wf.id)
    with pytest.raises(SerializationError):
        store.create_event(Event(event_name="paid", event_key="k", event_data=threading.Lock()))
    assert store.get_runnable_events(T0 + timedelta(days=365 * 100)) == []


def test_lost_update_names_the_workflow_and_both_revisions(store: SqlitePersistenceProvider) -> None:
    wf = instance()
    store.create_workflow(wf)
    stale = store.get_workflow_instance(wf.id)
    store.persist_workflow(wf)
    store.persist_workflow(wf)
    with pytest.raises(ConcurrencyError, match=rf"{wf.id}.*revision 2.*is 0"):
        store.persist_workflow(stale, subscriptions=[subscription(wf.id)])
    assert store.get_subscriptions("paid", "k", T0) == []
    with pytest.raises(WorkflowNotFoundError):
        store.persist_workflow(instance())


def test_times_are_compared_exactly_whatever_the_time_zone(store: SqlitePersistenceProvider) -> None:
    plus_two = timezone(timedelta(hours=2))
    early, late = instance(next_execution=T0), instance(next_execution=(T0 + US).astimezone(plus_two))
    store.create_workflow(early)
    store.create_workflow(late)
    assert store.get_runnable_instances(T0) == [early.id]
    assert store.get_runnable_instances(T0.astimezone(plus_two) + US) == [early.id, late.id]


def test_processed_column_overrides_the_record(store: SqlitePersistenceProvider) -> None:
    event = Event(event_name="paid", event_key="k", event_time=T0, is_processed=True)
    store.create_event(event)
    assert store.get_runnable_events(T0) == []
    store.mark_event_unprocessed(event.id)
    assert store.get_event(event.id).is_processed is False
    assert [e.is_processed for e in store.get_events("paid", "k", T0)] == [False]
    assert store.get_runnable_events(T0) == [event.id]


def test_purge(store: SqlitePersistenceProvider) -> None:
    done = instance(status=WorkflowStatus.COMPLETE, complete_time=T0, next_execution=None)
    recent = instance(status=WorkflowStatus.COMPLETE, complete_time=T0 + timedelta(hours=1), next_execution=None)
    running = instance()
    for wf in (done, recent, running):
        store.create_workflow(wf)
    error = ExecutionError(workflow_id=done.id, execution_pointer_id="p", step_id=1, message="x")
    store.persist_workflow(done, subscriptions=[subscription(done.id)], errors=[error])
    old_processed = Event(event_name="paid", event_key="k", event_time=T0, is_processed=True)
    old_open = Event(event_name="paid", event_key="k", event_time=T0)
    for event in (old_processed, old_open):
        store.create_event(event)

    removed = store.purge(statuses=[WorkflowStatus.COMPLETE], older_than=T0 + timedelta(minutes=1))

    assert removed == 1
    with pytest.raises(WorkflowNotFoundError):
        store.get_workflow_instance(done.id)
    assert store.get_errors(done.id) == []
    assert store.get_subscriptions("paid", "k", T0) == []
    assert [e.id for e in store.get_events("paid", "k", T0)] == [old_open.id]
    assert store.get_workflow_instance(recent.id).id == recent.id
    assert store.purge(statuses=[], older_than=T0 + timedelta(days=1)) == 0


# -- query plans -----------------------------------------------------------------------------------


_QUERIES = {
    "definition": InstanceQuery(workflow_definition_id="flow"),
    "definition and time": InstanceQuery(workflow_definition_id="flow", created_from=T0, created_to=T0 + US),
    "reference": InstanceQuery(reference="r1"),
    "status": InstanceQuery(status=WorkflowStatus.RUNNABLE, offset=10),
    "status and time": InstanceQuery(status=WorkflowStatus.SUSPENDED, created_from=T0),
    "time": InstanceQuery(created_from=T0, created_to=T0 + US),
}


def _fill_for_plans(store: SqlitePersistenceProvider, analyze: bool) -> None:
    """Fill the tables a little, and ANALYZE or not: the planner must pick well either way (a
    provider that never runs ANALYZE is the common case)."""
    for n in range(50):
        wf = instance(
            next_execution=T0 + n * US if n % 2 else None,
            reference=f"r{n}" if n % 3 else None,
            status=WorkflowStatus.COMPLETE if n % 4 == 0 else WorkflowStatus.RUNNABLE,
            complete_time=T0 if n % 4 == 0 else None,
            create_time=T0 + n * US,
        )
        store.create_workflow(wf)
        store.persist_workflow(wf, subscriptions=[subscription(wf.id, event_key=str(n))])
        store.create_event(Event(event_name="paid", event_key=str(n % 5), event_time=T0, is_processed=n % 3 == 0))
    if analyze:
        store._writer.execute("ANALYZE")


def _plan(store: SqlitePersistenceProvider, sql: str, parameters: tuple[object, ...]) -> list[str]:
    return [row[3] for row in store._writer.execute("EXPLAIN QUERY PLAN " + sql, parameters)]


@pytest.mark.parametrize("analyze", [True, False], ids=["analyzed", "not-analyzed"])
@pytest.mark.parametrize(
    ("sql", "parameters"),
    [
        (_provider._RUNNABLE_WORKFLOWS, (1,)),
        (_provider._SELECT_SUBSCRIPTIONS, ("a", "b", 1)),
        (_provider._SELECT_EVENTS, ("a", "b", 1)),
        (_provider._RUNNABLE_EVENTS, (1,)),
        (_provider._SELECT_ERRORS, ("w",)),
        (_provider._SELECT_WORKFLOW, ("w",)),
        (_provider._UPDATE_WORKFLOW, (1,) * 9),
        (_provider._PURGE_EVENTS, (1,)),
        (_provider._FINISHED.format("?, ?"), ("complete", "terminated", 1)),
        (_provider._PURGE_SUBSCRIPTIONS, ("w",)),
        (_provider._PURGE_ERRORS, ("w",)),
        (_provider._PURGE_WORKFLOW, ("w",)),
    ],
)
def test_queries_are_answered_from_indexes(
    store: SqlitePersistenceProvider, sql: str, parameters: tuple[object, ...], analyze: bool
) -> None:
    _fill_for_plans(store, analyze)
    plan = _plan(store, sql, parameters)
    assert not [step for step in plan if step.startswith("SCAN")], plan
    assert not [step for step in plan if "TEMP B-TREE" in step], plan


@pytest.mark.parametrize("analyze", [True, False], ids=["analyzed", "not-analyzed"])
@pytest.mark.parametrize("query", list(_QUERIES.values()), ids=list(_QUERIES))
def test_instance_queries_are_answered_from_indexes(
    store: SqlitePersistenceProvider, query: InstanceQuery, analyze: bool
) -> None:
    _fill_for_plans(store, analyze)
    plan = _plan(store, *_provider._query_sql(query))
    assert any(step.startswith("SEARCH workflow USING INDEX") for step in plan), plan
    assert not [step for step in plan if step.startswith("SCAN")], plan
    # Rows come off the index in create_time order; only ties are sorted ("RIGHT PART"). A
    # reference matches a handful of rows, which may be sorted whole.
    if query.reference is None:
        assert "USE TEMP B-TREE FOR ORDER BY" not in plan, plan


def test_query_instances_reads_back_revisions(store: SqlitePersistenceProvider) -> None:
    wf = instance(reference="r")
    store.create_workflow(wf)
    store.persist_workflow(wf)
    assert [found.revision for found in store.query_instances(InstanceQuery(reference="r"))] == [1]


# -- threads, memory, closing ----------------------------------------------------------------------


def _hammer(provider: SqlitePersistenceProvider, threads: int = 8, per_thread: int = 25) -> None:
    failures: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(per_thread):
                wf = instance()
                provider.create_workflow(wf)
                for step in range(3):
                    provider.persist_workflow(wf, subscriptions=[subscription(wf.id)] if step == 0 else ())
                    assert provider.get_workflow_instance(wf.id).revision == wf.revision
                provider.get_runnable_instances(T0)
        except BaseException as error:
            failures.append(error)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    assert len(provider.get_runnable_instances(T0)) == threads * per_thread
    assert len(provider.get_subscriptions("paid", "k", T0)) == threads * per_thread


def test_many_threads_on_a_file(store: SqlitePersistenceProvider) -> None:
    _hammer(store)


def test_many_threads_on_memory() -> None:
    provider = SqlitePersistenceProvider(":memory:")
    try:
        _hammer(provider)
    finally:
        provider.close()


def test_racing_saves_of_one_revision_let_exactly_one_win(store: SqlitePersistenceProvider) -> None:
    wf = instance()
    store.create_workflow(wf)
    copies = [store.get_workflow_instance(wf.id) for _ in range(8)]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(copies))

    def save(copy: WorkflowInstance) -> None:
        barrier.wait()
        try:
            store.persist_workflow(copy, subscriptions=[subscription(wf.id)])
            outcomes.append("saved")
        except ConcurrencyError:
            outcomes.append("lost")

    workers = [threading.Thread(target=save, args=(copy,)) for copy in copies]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(outcomes) == ["lost"] * 7 + ["saved"]
    assert store.get_workflow_instance(wf.id).revision == 1
    assert len(store.get_subscriptions("paid", "k", T0)) == 1


def test_memory_databases_are_private() -> None:
    first, second = SqlitePersistenceProvider(":memory:"), SqlitePersistenceProvider(":memory:")
    try:
        wf = instance()
        first.create_workflow(wf)
        assert first.get_workflow_instance(wf.id).id == wf.id
        with pytest.raises(WorkflowNotFoundError):
            second.get_workflow_instance(wf.id)
    finally:
        first.close()
        second.close()


def test_close_closes_the_readers_of_every_thread(store: SqlitePersistenceProvider) -> None:
    wf = instance()
    store.create_workflow(wf)
    store.get_workflow_instance(wf.id)
    has_read, may_end = threading.Event(), threading.Event()

    def read_and_wait() -> None:
        store.get_workflow_instance(wf.id)
        has_read.set()
        may_end.wait(10)

    other = threading.Thread(target=read_and_wait)
    other.start()
    try:
        assert has_read.wait(10)
        readers = [connection for _, connection in store._readers]
        assert len(readers) == 2
        store.close()
        store.close()  # idempotent
    finally:
        may_end.set()
        other.join()
    for connection in readers:
        with pytest.raises(sqlite3.ProgrammingError):
            connection.execute("SELECT 1")
    with pytest.raises(sqlite3.ProgrammingError):
        store.create_workflow(instance())
    outcome: list[BaseException] = []

    def read_after_close() -> None:
        try:
            store.get_runnable_events(T0)
        except BaseException as error:
            outcome.append(error)

    fresh = threading.Thread(target=read_after_close)
    fresh.start()
    fresh.join()
    assert [type(error) for error in outcome] == [InvalidOperationError]


def test_readers_of_ended_threads_are_closed(store: SqlitePersistenceProvider) -> None:
    for _ in range(5):
        worker = threading.Thread(target=store.get_runnable_events, args=(T0,))
        worker.start()
        worker.join()
    assert len(store._readers) == 1


# -- URLs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["sqlite://:memory:", "sqlite:///:memory:", "sqlite://"])
def test_memory_urls(url: str) -> None:
    provider = SqlitePersistenceProvider.from_url(url)
    try:
        assert provider._memory
        provider.create_workflow(instance())
    finally:
        provider.close()


def test_relative_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    provider = SqlitePersistenceProvider.from_url("sqlite:///relative.db?synchronous=FULL")
    provider.close()
    assert (tmp_path / "relative.db").exists()


def test_absolute_url_through_host_configuration(tmp_path: Path) -> None:
    path = tmp_path / "abs path.db"
    url = "sqlite:///" + str(path).replace(" ", "%20")
    assert url.startswith("sqlite:////")
    provider = _from_url("persistence", url, _PERSISTENCE_URLS)
    try:
        assert isinstance(provider, SqlitePersistenceProvider)
    finally:
        provider.close()
    assert path.exists()


@pytest.mark.parametrize("url", ["sqlite://host/app.db", "sqlite:///app.db?colour=blue", "postgres:///app.db"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(Exception, match="sqlite|option"):
        SqlitePersistenceProvider.from_url(url)
