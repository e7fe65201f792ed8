"""What a SQLite save writes: only the indexed columns that changed, never leaving one stale; and the
checkpoint settings of the connections that write the file."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from liteflow.core import ConcurrencyError, WorkflowInstance, WorkflowStatus
from liteflow.providers.sqlite import SqliteLockProvider, SqlitePersistenceProvider, _connection, _provider

T0 = datetime(2024, 5, 17, 12, 0, 0, 123456, tzinfo=timezone.utc)
INDEXED = "definition_id, version, reference, status, next_execution, complete_time"


@contextlib.contextmanager
def opened(path: Path) -> Iterator[SqlitePersistenceProvider]:
    provider = SqlitePersistenceProvider(path)
    try:
        yield provider
    finally:
        provider.close()


def _micros(value: datetime | None) -> int | None:
    return None if value is None else _provider._micros(value)


def expected(instance: WorkflowInstance) -> tuple[Any, ...]:
    """The row's indexed columns and revision as a save that writes every column leaves them."""
    return (
        instance.workflow_definition_id,
        instance.version,
        instance.reference,
        instance.status.value,
        _micros(instance.next_execution),
        _micros(instance.complete_time),
        instance.revision,
    )


def stored(path: Path, workflow_id: str) -> tuple[Any, ...]:
    with sqlite3.connect(path) as connection:
        row = connection.execute(f"SELECT {INDEXED}, revision FROM workflow WHERE id = ?", (workflow_id,)).fetchone()
    connection.close()
    assert row is not None
    return tuple(row)


def updates(store: SqlitePersistenceProvider) -> list[str]:
    """The columns set by each UPDATE of a row the store's writer runs from now on, before the
    revision and record that every save sets (appended as they run)."""
    seen: list[str] = []

    def trace(sql: str) -> None:
        if sql.startswith("UPDATE workflow"):
            seen.append(sql.partition("revision = revision + 1")[0])

    store._writer.set_trace_callback(trace)
    return seen


def test_a_save_between_steps_writes_only_the_columns_that_changed(store: SqlitePersistenceProvider) -> None:
    instance = WorkflowInstance(workflow_definition_id="flow", version=1, data={"n": 1}, next_execution=T0)
    store.create_workflow(instance)
    seen = updates(store)
    instance.next_execution = T0 + timedelta(seconds=1)
    store.persist_workflow(instance)
    instance.status, instance.next_execution, instance.complete_time = WorkflowStatus.COMPLETE, None, T0
    store.persist_workflow(instance)
    assert len(seen) == 2
    first, last = seen
    assert "next_execution" in first and "status" not in first and "definition_id" not in first
    assert "status" in last and "complete_time" in last and "version" not in last and "reference" not in last


def test_a_loaded_instance_is_saved_with_the_changed_columns_only(
    store: SqlitePersistenceProvider, db_path: Path
) -> None:
    instance = WorkflowInstance(workflow_definition_id="flow", version=1, data={}, next_execution=T0)
    store.create_workflow(instance)
    with opened(db_path) as other:  # another process: this one has not seen its load
        loaded = other.get_workflow_instance(instance.id)
        seen = updates(other)
        loaded.reference = "order-1"
        other.persist_workflow(loaded)
    assert len(seen) == 1 and "reference = " in seen[0] and "status" not in seen[0]
    assert stored(db_path, instance.id) == expected(loaded)


def test_changed_column_saves_leave_every_column_as_a_full_save_would(
    store: SqlitePersistenceProvider, db_path: Path
) -> None:
    instance = WorkflowInstance(workflow_definition_id="flow", version=1, data={}, next_execution=T0)
    store.create_workflow(instance)
    changes: list[dict[str, Any]] = [
        {"next_execution": T0 + timedelta(seconds=1)},
        {"reference": "r1"},
        {"reference": None, "version": 2},
        {"workflow_definition_id": "flow2", "next_execution": None},
        {"status": WorkflowStatus.SUSPENDED},
        {},
        {"status": WorkflowStatus.RUNNABLE, "next_execution": T0, "reference": "r2"},
        {"status": WorkflowStatus.COMPLETE, "next_execution": None, "complete_time": T0 + timedelta(seconds=2)},
        {"status": WorkflowStatus.RUNNABLE, "complete_time": None, "next_execution": T0},  # saved after finishing
        {"status": WorkflowStatus.TERMINATED, "complete_time": T0, "reference": "r3"},
    ]
    for change in changes:
        for name, value in change.items():
            setattr(instance, name, value)
        store.persist_workflow(instance)
        assert stored(db_path, instance.id) == expected(instance), change


def test_a_row_saved_elsewhere_is_never_left_with_stale_columns(
    store: SqlitePersistenceProvider, db_path: Path
) -> None:
    instance = WorkflowInstance(workflow_definition_id="flow", version=1, data={}, next_execution=T0)
    store.create_workflow(instance)
    mine = store.get_workflow_instance(instance.id)
    with opened(db_path) as other:
        theirs = other.get_workflow_instance(instance.id)
        theirs.reference, theirs.status = "theirs", WorkflowStatus.SUSPENDED
        other.persist_workflow(theirs)
    # This copy is stale: the revision check refuses it whatever columns it would write.
    mine.next_execution = T0 + timedelta(seconds=5)
    with pytest.raises(ConcurrencyError):
        store.persist_workflow(mine)
    assert stored(db_path, instance.id) == expected(theirs)
    # Reloaded, it is saved against the columns the other provider wrote, not those this one knew.
    mine = store.get_workflow_instance(instance.id)
    mine.status = WorkflowStatus.RUNNABLE
    store.persist_workflow(mine)
    assert stored(db_path, instance.id) == expected(mine)
    assert mine.reference == "theirs"


def test_an_instance_saved_from_an_older_copy_writes_every_column(
    store: SqlitePersistenceProvider, db_path: Path
) -> None:
    """The provider knows the columns of revision 1; a copy at revision 0 that wins nothing, and a
    copy built by hand at the current revision (never loaded here), are both written in full."""
    instance = WorkflowInstance(workflow_definition_id="flow", version=1, data={}, next_execution=T0)
    store.create_workflow(instance)
    store.persist_workflow(instance)
    by_hand = WorkflowInstance(
        id=instance.id, workflow_definition_id="other", version=7, data={}, reference="x", next_execution=None
    )
    by_hand.revision = instance.revision
    store._known.forget(instance.id)
    store.persist_workflow(by_hand)
    assert stored(db_path, instance.id) == expected(by_hand)


def test_purge_forgets_the_columns_of_purged_instances(store: SqlitePersistenceProvider) -> None:
    instance = WorkflowInstance(workflow_definition_id="flow", version=1, data={}, next_execution=T0)
    store.create_workflow(instance)
    instance.status, instance.complete_time = WorkflowStatus.COMPLETE, T0
    store._known.remember(instance.id, instance.revision, ("flow", 1, None, "runnable", None, None))
    store.persist_workflow(instance)
    assert instance.id not in store._known._rows  # finished: forgotten at once
    assert store.purge(statuses=[WorkflowStatus.COMPLETE], older_than=T0 + timedelta(days=1)) == 1


def test_the_known_columns_are_bounded() -> None:
    known = _provider._Known(limit=3)
    for n in range(5):
        known.remember(f"w{n}", 0, ("flow", 1, None, "runnable", None, None))
    assert len(known._rows) <= 3
    assert "w4" in known._rows


def test_writers_checkpoint_every_ten_thousand_pages(db_path: Path) -> None:
    with opened(db_path) as store:
        lock = SqliteLockProvider(db_path, renew=False)
        try:
            for connection in (store._writer, lock._connection):
                assert connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == _connection.WAL_CHECKPOINT_PAGES
                assert connection.execute("PRAGMA journal_size_limit").fetchone()[0] > 0
        finally:
            lock.close()
