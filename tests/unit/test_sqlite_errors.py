"""SQLite's errors reach callers as LiteFlow's: a file that is not a database, a read-only file, a
database locked beyond the busy timeout, a full one; and several processes opening one new file at
once all succeed."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from liteflow.core import (
    ProviderError,
    ProviderUnavailableError,
    WorkflowInstance,
    configure_workflow_host,
)
from liteflow.core._config import _LOCK_URLS, _PERSISTENCE_URLS, _from_url
from liteflow.core._providers import InstanceQuery
from liteflow.providers.sqlite import SqliteLockProvider, SqlitePersistenceProvider
from liteflow.providers.sqlite._connection import translate

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2024, 5, 17, tzinfo=timezone.utc)


def instance() -> WorkflowInstance:
    return WorkflowInstance(workflow_definition_id="flow", version=1, data={"n": 1}, next_execution=NOW)


# -- not a database ------------------------------------------------------------------------------


def test_a_file_that_is_not_a_database_is_a_provider_error_naming_it(db_path: Path) -> None:
    db_path.write_bytes(b"name,amount\nalice,3\n" * 400)
    for open_it in (
        lambda: SqlitePersistenceProvider(db_path),
        lambda: SqliteLockProvider(db_path),
        lambda: _from_url("persistence", f"sqlite:///{db_path}", _PERSISTENCE_URLS),
        lambda: _from_url("lock", f"sqlite:///{db_path}", _LOCK_URLS),
    ):
        with pytest.raises(ProviderError, match="not a SQLite database") as caught:
            open_it()
        assert not isinstance(caught.value, ProviderUnavailableError), "retrying will not help"
        assert str(db_path) in str(caught.value)
        assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)
    assert db_path.read_bytes().startswith(b"name,amount"), "the file is left as it was"


def test_a_host_on_a_file_that_is_not_a_database_fails_at_configuration(db_path: Path) -> None:
    db_path.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(ProviderError, match=str(db_path)):
        configure_workflow_host(persistence_service=f"sqlite:///{db_path}")


def test_a_corrupt_file_read_part_way_is_a_provider_error_naming_it(db_path: Path) -> None:
    store = SqlitePersistenceProvider(db_path)
    for _ in range(300):
        big = instance()
        big.data = {"text": "x" * 2000}
        store.create_workflow(big)
    store.close()  # checkpoints the WAL into the file
    size = db_path.stat().st_size
    with open(db_path, "r+b") as file:  # wreck pages in the second half: the schema still opens
        file.seek(size // 2)
        file.write(b"\xff" * (size // 4))
    store = SqlitePersistenceProvider(db_path)
    try:
        with pytest.raises(ProviderError, match="corrupt") as caught:
            store.query_instances(InstanceQuery(limit=1000))  # rows after the first come from fetches
        assert not isinstance(caught.value, ProviderUnavailableError)
        assert str(db_path) in str(caught.value)
        assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)
    finally:
        store.close()


# -- locked beyond the busy timeout ----------------------------------------------------------------


def test_a_write_locked_beyond_the_busy_timeout_is_unavailable(db_path: Path) -> None:
    store = SqlitePersistenceProvider(db_path, busy_timeout=0.2)
    lock = SqliteLockProvider(db_path, busy_timeout=0.2, renew=False)
    witness = SqliteLockProvider(db_path, renew=False)  # another member: locks are taken in the file
    blocker = sqlite3.connect(db_path, isolation_level=None)  # stands for another process
    try:
        blocker.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(ProviderUnavailableError, match="locked") as caught:
            store.create_workflow(instance())
        waited = time.monotonic() - started
        assert 0.15 <= waited < 5, f"waited {waited:.2f} s for a 0.2 s busy timeout"
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        assert str(db_path) in str(caught.value)
        with pytest.raises(ProviderUnavailableError, match="locked"):
            lock.acquire("r")
        assert store.get_runnable_instances(NOW) == []  # WAL readers are not blocked
        blocker.execute("ROLLBACK")
        store.create_workflow(saved := instance())  # works again once the other writer is done
        assert store.get_workflow_instance(saved.id).data == {"n": 1}
        assert lock.acquire("r")
    finally:
        blocker.close()
        witness.close()
        lock.close()
        store.close()


def test_a_multi_statement_save_locked_out_writes_nothing_and_can_be_retried(db_path: Path) -> None:
    store = SqlitePersistenceProvider(db_path, busy_timeout=0.05)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        store.create_workflow(wf := instance())
        wf.data = {"n": 2}
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(ProviderUnavailableError):
            store.purge(statuses=[], older_than=NOW)
        blocker.execute("ROLLBACK")
        assert not store._writer.in_transaction
        store.persist_workflow(wf)
        assert store.get_workflow_instance(wf.id).data == {"n": 2}
    finally:
        blocker.close()
        store.close()


# -- full ------------------------------------------------------------------------------------------


def test_a_full_database_is_unavailable(db_path: Path) -> None:
    store = SqlitePersistenceProvider(db_path)
    try:
        # The page limit stands for a full disk: SQLite reports both as SQLITE_FULL.
        pages = store._writer.execute("PRAGMA page_count").fetchone()[0]
        store._writer.execute(f"PRAGMA max_page_count = {pages + 1}")
        big = instance()
        big.data = {"blob": "x" * 100_000}
        with pytest.raises(ProviderUnavailableError, match="full") as caught:
            store.create_workflow(big)
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        with pytest.raises(Exception, match="no workflow"):
            store.get_workflow_instance(big.id)
    finally:
        store.close()


# -- read-only -----------------------------------------------------------------------------------

_READ_ONLY = """
import os, sys
from datetime import datetime, timezone
from liteflow.core import ProviderUnavailableError, WorkflowInstance, configure_workflow_host
from liteflow.providers.sqlite import SqliteLockProvider, SqlitePersistenceProvider
if os.geteuid() == 0:  # root writes any file whatever its mode: be somebody else
    os.setgid(65534)
    os.setuid(65534)
store = SqlitePersistenceProvider(sys.argv[1])
assert store.get_runnable_instances(datetime.now(timezone.utc)) == [], "reading works"
host = configure_workflow_host(store)  # a host that runs nothing (a CLI, a dashboard) can read it
assert host.query_workflows() == []
for write in (
    lambda: store.create_workflow(WorkflowInstance(workflow_definition_id="f", version=1, data={})),
    lambda: host.lock.acquire("r"),
):
    try:
        write()
    except ProviderUnavailableError as error:
        print(type(error.__cause__).__name__, error)
    else:
        print("WROTE")
"""


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory anybody may write (pytest's own are private to root) but nobody owns the
    files root makes in it."""
    path = Path(tempfile.mkdtemp(prefix="liteflow-ro-"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path)


@pytest.mark.parametrize("with_lock_tables", [False, True], ids=["store-only", "store-and-lock"])
def test_a_read_only_file_reads_and_refuses_writes_as_unavailable(shared_dir: Path, with_lock_tables: bool) -> None:
    db = shared_dir / "flow.db"
    SqlitePersistenceProvider(db).close()
    if with_lock_tables:
        SqliteLockProvider(db).close()
    db.chmod(0o444)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-c", _READ_ONLY, str(db)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and "WROTE" not in lines, done.stdout
    for line in lines:
        assert line.startswith("OperationalError ") and "read-only" in line and str(db) in line, line


# -- what is left alone ----------------------------------------------------------------------------


def test_errors_that_are_bugs_or_handled_are_not_translated() -> None:
    assert translate(sqlite3.OperationalError("near 'THIS': syntax error"), "x.db") is None
    assert translate(sqlite3.IntegrityError("UNIQUE constraint failed"), "x.db") is None
    assert translate(sqlite3.ProgrammingError("closed"), "x.db") is None


# -- several processes open one new file -----------------------------------------------------------


def _open(paths: list[str], barrier: Any, results: Any) -> None:
    for path in paths:
        barrier.wait()
        try:
            SqlitePersistenceProvider(path).close()
            SqliteLockProvider(path).close()
            results.put("ok")
        except Exception as error:
            results.put(f"{type(error).__name__}: {error}")


def test_processes_opening_one_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    # forkserver: openers start as fresh processes (not forks of this threaded one), quickly.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["liteflow.providers.sqlite"])
    processes, paths = 8, [str(tmp_path / f"fresh{n}.db") for n in range(30)]
    barrier, results = context.Barrier(processes), context.Queue()
    openers = [context.Process(target=_open, args=(paths, barrier, results)) for _ in range(processes)]
    for opener in openers:
        opener.start()
    outcome = [results.get(timeout=60) for _ in range(processes * len(paths))]
    for opener in openers:
        opener.join(30)
    failures = [r for r in outcome if r != "ok"]
    assert not failures, f"{len(failures)} of {len(outcome)} opens failed: {failures[:3]}"
    for path in paths:
        with sqlite3.connect(path) as connection:
            assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
