"""The SQLite persistence provider's checkpointer thread: woken by the saves' pages, it checkpoints
the WAL off the saving thread, survives errors, and stops on close. Real files, no sleeps."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from polling import wait_until

from liteflow.core import WorkflowInstance
from liteflow.providers.sqlite import SqlitePersistenceProvider
from liteflow.providers.sqlite._checkpoint import Checkpointer
from liteflow.providers.sqlite._connection import CHECKPOINT_PAGES, WAL_CHECKPOINT_PAGES


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[SqlitePersistenceProvider]:
    store = SqlitePersistenceProvider(tmp_path / "app.db")
    yield store
    store.close()


def _checkpointer(store: SqlitePersistenceProvider) -> Checkpointer:
    checkpointer = store._checkpointer
    assert checkpointer is not None
    return checkpointer


def _save_until_checkpointed(store: SqlitePersistenceProvider, count: int) -> int:
    """Save one instance until the checkpointer has completed ``count`` checkpoints; the most WAL
    frames a checkpoint found, as seen between two saves."""
    now = datetime.now(timezone.utc)
    instance = WorkflowInstance(workflow_definition_id="wf", version=1, create_time=now, next_execution=now)
    store.create_workflow(instance)
    checkpointer = _checkpointer(store)
    deadline = time.monotonic() + 30
    most = 0
    while checkpointer.checkpoints < count:
        assert time.monotonic() < deadline, "no checkpoint in time"
        instance.data = {"n": instance.revision}
        store.persist_workflow(instance)
        most = max(most, checkpointer.frames)
    return max(most, checkpointer.frames)


def test_saves_wake_the_checkpointer_and_the_writer_keeps_only_a_fallback(provider: SqlitePersistenceProvider) -> None:
    assert WAL_CHECKPOINT_PAGES > CHECKPOINT_PAGES
    assert provider._writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == WAL_CHECKPOINT_PAGES
    most = _save_until_checkpointed(provider, 2)
    # The WAL held about CHECKPOINT_PAGES frames when the thread ran, more than the writer's old
    # default of 1,000 (which would have checkpointed in a save), fewer than the fallback mark.
    assert 1_000 < most < WAL_CHECKPOINT_PAGES


def test_the_checkpointer_survives_a_broken_connection(
    provider: SqlitePersistenceProvider, caplog: pytest.LogCaptureFixture
) -> None:
    checkpointer = _checkpointer(provider)
    checkpointer.checkpoint_soon()
    wait_until(lambda: checkpointer._connection is not None and checkpointer.checkpoints >= 1)
    done = checkpointer.checkpoints
    with caplog.at_level(logging.WARNING, logger="liteflow"):
        assert checkpointer._connection is not None
        checkpointer._connection.close()  # under it: its next checkpoint fails
        checkpointer.checkpoint_soon()
        wait_until(lambda: checkpointer.checkpoints > done)  # reconnected after a backoff
    assert checkpointer.alive
    messages = [record.getMessage() for record in caplog.records if "checkpointing SQLite" in record.getMessage()]
    assert len(messages) == 2 and "failed" in messages[0] and "recovered" in messages[1]


def test_close_stops_the_thread_promptly(tmp_path: Path) -> None:
    store = SqlitePersistenceProvider(tmp_path / "app.db")
    checkpointer = _checkpointer(store)
    assert checkpointer.alive
    began = time.monotonic()
    store.close()
    wait_until(lambda: not checkpointer.alive, timeout=2.0)
    assert time.monotonic() - began < 2.0
    assert checkpointer._connection is None


def test_an_in_memory_provider_has_no_checkpointer() -> None:
    store = SqlitePersistenceProvider(":memory:")
    try:
        assert store._checkpointer is None
    finally:
        store.close()
