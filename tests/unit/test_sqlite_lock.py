"""What the SQLite lock does beyond the lock contracts (tests/contract/test_sqlite_contract.py:
exclusion, and leases that lapse, renew and fence): renewal writing the file (and its thread
outliving errors), solo and shared members, other processes, URLs, and being the default lock of a
host on a SQLite file."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from liteflow.core import (
    ConfigurationError,
    InvalidArgumentError,
    InvalidOperationError,
    LocalLockProvider,
    configure_workflow_host,
)
from liteflow.core._config import _LOCK_URLS, _from_url
from liteflow.core._models import new_id
from liteflow.providers.sqlite import SqliteLockProvider, SqlitePersistenceProvider, _owners
from liteflow.testing import WorkflowTestHost

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def make_lock(db_path: Path) -> Iterator[Callable[..., SqliteLockProvider]]:
    made: list[SqliteLockProvider] = []

    def make(**options: object) -> SqliteLockProvider:
        made.append(SqliteLockProvider(db_path, **options))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for provider in made:
        provider.close()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``condition`` until it holds; return the seconds it took."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)
    return time.monotonic() - start


def expires_at(path: Path, resource: str) -> int | None:
    with sqlite3.connect(path) as connection:
        row = connection.execute("SELECT expires_at FROM lock_lease WHERE resource = ?", (resource,)).fetchone()
    return None if row is None else int(row[0])


def membership(path: Path, lock: SqliteLockProvider) -> tuple[int, bool] | None:
    """The provider's lock_member row: (expires_at, shared)."""
    with sqlite3.connect(path) as connection:
        sql = "SELECT expires_at, shared FROM lock_member WHERE owner = ?"
        row = connection.execute(sql, (lock._owner,)).fetchone()
    return None if row is None else (int(row[0]), bool(row[1]))


def lease_rows(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        return int(connection.execute("SELECT count(*) FROM lock_lease").fetchone()[0])


# -- leases ----------------------------------------------------------------------------------------


def test_renew_now_extends_the_lease(make_lock: Callable[..., SqliteLockProvider], db_path: Path) -> None:
    lock, _other = make_lock(lease=30, renew=False), make_lock(renew=False)  # two members: leases in the file
    resource = new_id()
    assert lock.acquire(resource)
    before = expires_at(db_path, resource)
    lock.renew_now()
    after = expires_at(db_path, resource)
    assert before is not None and after is not None and after > before


def test_the_renewal_thread_survives_a_locked_file_and_carries_on(
    make_lock: Callable[..., SqliteLockProvider],
    db_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    holder = make_lock(lease=3.0, busy_timeout=0.05)  # a first renewal after 1 s
    resource = new_id()
    assert holder.acquire(resource)
    tries: list[int] = []
    real = holder.renew_now

    def counted() -> None:
        tries.append(1)
        real()

    monkeypatch.setattr(holder, "renew_now", counted)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    with caplog.at_level(logging.INFO, logger="liteflow.providers.sqlite"):
        blocker.execute("BEGIN IMMEDIATE")  # another process's long write transaction
        try:
            wait_until(lambda: len(tries) >= 3, 5, "several failed renewals")
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        wait_until(lambda: any("works again" in r.getMessage() for r in caplog.records), 5, "the recovery")
    failures = [r for r in caplog.records if "failed;" in r.getMessage()]
    assert len(failures) == 1, "a run of failures is logged once"
    assert "locked" in failures[0].getMessage()
    assert holder._renewer is not None and holder._renewer.is_alive()
    assert holder.token(resource) is not None, "the retries came sooner than the lease's end"
    before = membership(db_path, holder)
    wait_until(lambda: membership(db_path, holder) != before, 5, "a renewal after the recovery")


def test_the_renewal_thread_survives_an_unexpected_exception(
    make_lock: Callable[..., SqliteLockProvider], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    holder = make_lock(lease=0.3)
    calls: list[int] = []
    real = holder.renew_now

    def flaky() -> None:
        calls.append(1)
        if len(calls) <= 2:
            raise RuntimeError("boom")
        real()

    monkeypatch.setattr(holder, "renew_now", flaky)
    with caplog.at_level(logging.WARNING, logger="liteflow.providers.sqlite"):
        wait_until(lambda: len(calls) >= 4, 5, "renewals after the errors")
    assert holder._renewer is not None and holder._renewer.is_alive()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None


def test_a_refused_acquire_does_not_take_the_write_lock(
    make_lock: Callable[..., SqliteLockProvider], db_path: Path
) -> None:
    holder, other = make_lock(), make_lock(busy_timeout=0.05)
    resource = new_id()
    assert holder.acquire(resource)
    assert expires_at(db_path, resource) is not None
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        assert other.acquire(resource) is False  # answered by a read, which WAL never blocks
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def test_bad_options(db_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="lease"):
        SqliteLockProvider(db_path, lease=0)
    with pytest.raises(ConfigurationError, match="file"):
        SqliteLockProvider(":memory:")


# -- solo and shared --------------------------------------------------------------------------------


def test_alone_a_provider_writes_nothing_per_lock(make_lock: Callable[..., SqliteLockProvider], db_path: Path) -> None:
    lock = make_lock(renew=False)
    writes = lock._connection.total_changes
    tokens = []
    for _ in range(50):
        resource = new_id()
        assert lock.acquire(resource) and not lock.acquire(resource)
        tokens.append(lock.token(resource))
        lock.release(resource)
    assert lock._connection.total_changes == writes, "no row written for a lock taken alone"
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)
    assert membership(db_path, lock) is not None and membership(db_path, lock)[1] is False  # type: ignore[index]


def test_a_newcomer_waits_until_the_solo_member_has_written_its_locks(
    make_lock: Callable[..., SqliteLockProvider], db_path: Path
) -> None:
    first = make_lock(renew=False)
    held, free, later = new_id(), new_id(), new_id()
    assert first.acquire(held)
    assert lease_rows(db_path) == 0
    second = make_lock(renew=False)
    assert not second.acquire(free), "the solo member's locks are not in the file yet: wait"
    assert not second.acquire(held)
    assert first.acquire(later)  # sees the newcomer: writes its locks and marks itself shared first
    assert expires_at(db_path, held) is not None and expires_at(db_path, later) is not None
    assert second.acquire(free)
    assert not second.acquire(held) and not second.acquire(later)
    first_tokens = [first.token(held), first.token(later)]
    assert first_tokens[0] is not None and first_tokens[1] is not None
    assert first_tokens[0] < first_tokens[1] < (second.token(free) or 0), "tokens grow across the switch"
    first.release(held)
    assert second.acquire(held)


def test_a_solo_member_with_its_thread_writes_its_locks_soon(
    make_lock: Callable[..., SqliteLockProvider], db_path: Path
) -> None:
    first = make_lock()  # renewal thread on: it looks for newcomers every quarter second
    held = new_id()
    assert first.acquire(held)
    second = make_lock()
    waited = wait_until(lambda: second.acquire(new_id()), 5, "the solo member to write its locks")
    assert waited < 2.0
    assert not second.acquire(held)


def test_alone_again_a_member_goes_back_to_solo(make_lock: Callable[..., SqliteLockProvider], db_path: Path) -> None:
    first, second = make_lock(renew=False), make_lock(renew=False)
    held = new_id()
    assert first.acquire(held)  # shared: a lease row
    assert expires_at(db_path, held) is not None
    second.close()
    first.renew_now()
    assert first._solo and lease_rows(db_path) == 0
    assert first.token(held) is not None, "still held, now only in memory"
    assert not first.acquire(held)
    writes = first._connection.total_changes
    first.release(held)
    assert first.acquire(held)
    assert first._connection.total_changes == writes


def test_a_solo_member_whose_membership_lapsed_is_given_up_and_drops_its_locks(
    make_lock: Callable[..., SqliteLockProvider], caplog: pytest.LogCaptureFixture
) -> None:
    stalled = make_lock(lease=1.0, renew=False)  # stands for a process frozen past its lease
    held = new_id()
    assert stalled.acquire(held)
    newcomer = make_lock()
    assert not newcomer.acquire(held)
    wait_until(lambda: newcomer.acquire(held), 5, "the stalled member's membership to lapse")
    with caplog.at_level(logging.WARNING, logger="liteflow.providers.sqlite"):
        assert stalled.acquire(new_id())  # back: it joins again, as a shared member this time
    assert stalled.token(held) is None
    assert any("membership lapsed" in record.getMessage() for record in caplog.records)
    assert not stalled.acquire(held)


def test_a_membership_outlives_every_lease_of_its_member(
    make_lock: Callable[..., SqliteLockProvider], db_path: Path
) -> None:
    # A member alone trusts only the lease rows of live members, so no lease may outlive its owner's
    # membership, even when taken long after the last renewal.
    lock, _other = make_lock(renew=False), make_lock(renew=False)
    first, second = new_id(), new_id()
    assert lock.acquire(first)
    joined = membership(db_path, lock)
    taken = time.monotonic()
    wait_until(lambda: time.monotonic() - taken > 0.05, 1, "the clock to move on")
    assert lock.acquire(second)
    member = membership(db_path, lock)
    assert joined is not None and member is not None and member[0] > joined[0]
    assert member[0] >= (expires_at(db_path, second) or 0)


# -- other processes -------------------------------------------------------------------------------

_HOLDER = """
import sys, time
from liteflow.providers.sqlite import SqliteLockProvider
lock = SqliteLockProvider(sys.argv[1], lease=float(sys.argv[3]))
assert lock.acquire(sys.argv[2])
print("HELD", flush=True)
time.sleep(600)
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def _hold_in_another_process(db_path: Path, resource: str, lease: float) -> subprocess.Popen[bytes]:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(db_path), resource, str(lease)], env=_env(), stdout=subprocess.PIPE
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"HELD"
    return holder


def test_a_killed_process_s_locks_are_taken_over_at_once(
    make_lock: Callable[..., SqliteLockProvider], db_path: Path
) -> None:
    resource = new_id()
    holder = _hold_in_another_process(db_path, resource, lease=60)
    try:
        other = make_lock()
        assert not other.acquire(resource), "held by a live process"
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        assert other.acquire(resource), "its process has exited: no need to wait out a 60 s lease"
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_a_stalled_process_loses_its_locks_after_the_lease(
    make_lock: Callable[..., SqliteLockProvider], db_path: Path
) -> None:
    lease = 1.0
    resource = new_id()
    holder = _hold_in_another_process(db_path, resource, lease)
    try:
        other = make_lock()
        os.kill(holder.pid, signal.SIGSTOP)  # alive, but renews nothing (a frozen VM, a long pause)
        assert not other.acquire(resource)
        waited = wait_until(lambda: other.acquire(resource), 10, "the stalled process's lease to lapse")
    finally:
        holder.kill()
        holder.wait()
    assert waited < lease + 2.0  # at most one lease after its last renewal, with slack for a loaded machine


@pytest.mark.parametrize(
    "owner",
    [
        "another-boot.1.2:{pid}:ab",  # another boot or PID namespace: that pid means nothing here
        "?:{pid}:ab",  # a process that could not tell where it lived
        "{space}:{me}:ab",  # this very process
        "{space}:1:ab",  # a live process
        "garbage",
    ],
)
def test_a_holder_not_known_to_be_dead_keeps_its_lease(
    make_lock: Callable[..., SqliteLockProvider], db_path: Path, owner: str
) -> None:
    lock, _witness = make_lock(), make_lock()  # two members: leases in the file decide
    dead_pid = _exited_pid()
    resource = new_id()
    owner = owner.format(pid=dead_pid, space=_owners._pid_space(), me=os.getpid())
    with sqlite3.connect(db_path) as connection:
        connection.execute(
            "INSERT INTO lock_lease VALUES (?, ?, 1, ?)", (resource, owner, time.time_ns() // 1000 + 60_000_000)
        )
    assert not lock.acquire(resource)


def test_a_holder_whose_process_exited_is_taken_over(
    make_lock: Callable[..., SqliteLockProvider], db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lock, _witness = make_lock(), make_lock()
    resource = new_id()
    owner = f"{_owners._pid_space()}:{_exited_pid()}:ab"
    with sqlite3.connect(db_path) as connection:
        connection.execute(
            "INSERT INTO lock_lease VALUES (?, ?, 1, ?)", (resource, owner, time.time_ns() // 1000 + 60_000_000)
        )
    with caplog.at_level(logging.INFO, logger="liteflow.providers.sqlite"):
        assert lock.acquire(resource)
    assert any("has exited" in record.getMessage() for record in caplog.records)
    assert not make_lock().acquire(resource)


def _exited_pid() -> int:
    """The pid of a process that has exited and been reaped (so, for now, nobody's)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _race(path: str, resources: list[str], barrier: Any, results: Any) -> None:
    lock = SqliteLockProvider(path, renew=False)
    for resource in resources:
        barrier.wait()
        results.put((resource, lock.acquire(resource)))
        barrier.wait()  # keep the winner's lock until everyone has tried
    lock.close()


def test_racing_processes_exactly_one_wins(db_path: Path) -> None:
    # forkserver: the racers are fresh processes (not forks of this threaded one), started quickly.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["liteflow.providers.sqlite"])
    processes, resources = 8, [new_id() for _ in range(5)]
    barrier, results = context.Barrier(processes), context.Queue()
    racers = [context.Process(target=_race, args=(str(db_path), resources, barrier, results)) for _ in range(processes)]
    for racer in racers:
        racer.start()
    outcome = [results.get(timeout=60) for _ in range(processes * len(resources))]
    for racer in racers:
        racer.join(30)
        assert racer.exitcode == 0
    for resource in resources:
        assert [won for r, won in outcome if r == resource].count(True) == 1, outcome


# -- URLs and the host's default ---------------------------------------------------------------


def test_lock_url(db_path: Path) -> None:
    lock = _from_url("lock", f"sqlite:///{db_path}?lease=3&busy_timeout=2", _LOCK_URLS)
    try:
        assert isinstance(lock, SqliteLockProvider) and lock.lease == 3.0
        assert lock.acquire("r")
    finally:
        lock.close()


@pytest.mark.parametrize("url", ["sqlite://:memory:", "sqlite:///x.db?colour=blue", "sqlite:///x.db?lease=soon"])
def test_bad_lock_urls(url: str) -> None:
    with pytest.raises(ConfigurationError):
        SqliteLockProvider.from_url(url)


def test_a_host_on_a_sqlite_file_locks_in_the_file(db_path: Path) -> None:
    host = configure_workflow_host(persistence_service=f"sqlite:///{db_path}")
    try:
        assert isinstance(host.lock, SqliteLockProvider)
        assert host.lock._path == str(db_path)
    finally:
        host.lock.close()  # the host never started, so stop() would leave its providers open
        host.persistence.close()
    store = SqlitePersistenceProvider(db_path)  # a store given as an instance gets one too
    try:
        host = configure_workflow_host(persistence_service=store)
        assert isinstance(host.lock, SqliteLockProvider)
        host.start()
        assert host.lock.acquire("r")
        host.stop()  # closes the lock it made: its locks are released and its thread ends
        assert host.lock._closed and host.lock._renewer is not None and not host.lock._renewer.is_alive()
        assert expires_at(db_path, "r") is None
    finally:
        store.close()


@pytest.mark.parametrize("store", [None, "memory://", "sqlite://:memory:"])
def test_a_host_in_memory_keeps_the_local_lock(store: str | None) -> None:
    host = configure_workflow_host(persistence_service=store)
    try:
        assert isinstance(host.lock, LocalLockProvider)
    finally:
        host.persistence.close()


def test_a_lock_given_is_kept(db_path: Path) -> None:
    local = LocalLockProvider()
    host = configure_workflow_host(persistence_service=f"sqlite:///{db_path}", lock_service=local)
    try:
        assert host.lock is local
    finally:
        host.persistence.close()


def test_a_closed_lock_refuses_to_lock_and_ignores_releases(make_lock: Callable[..., SqliteLockProvider]) -> None:
    lock = make_lock()
    assert lock.acquire("r")
    lock.close()
    lock.release("r")  # a worker finishing its pass after the host stopped: nothing to do
    lock.renew_now()
    with pytest.raises(InvalidOperationError, match="closed"):
        lock.acquire("other")


def test_the_store_and_the_lock_of_one_file_share_its_writer_mutex(db_path: Path) -> None:
    store = SqlitePersistenceProvider(db_path)
    lock = SqliteLockProvider(db_path)
    try:
        assert lock._write_mutex is store._lock
    finally:
        lock.close()
        store.close()


def test_a_lock_made_before_a_fork_refuses_to_lock_in_the_child(make_lock: Callable[..., SqliteLockProvider]) -> None:
    lock = make_lock(renew=False)
    pid = os.fork()
    if pid == 0:  # the child: must refuse, since its owner id names the parent
        try:
            lock.acquire("r")
        except InvalidOperationError:
            os._exit(0)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert lock.acquire("r")


def test_the_test_host_keeps_the_in_process_lock_on_a_sqlite_file(db_path: Path) -> None:
    store = SqlitePersistenceProvider(db_path)
    try:
        test = WorkflowTestHost(persistence=store)  # runs every pass itself, never starts a thread
        assert isinstance(test.host.lock, LocalLockProvider)
    finally:
        store.close()


# -- solo without the file's writer mutex ------------------------------------------------------------


def test_alone_a_provider_locks_and_unlocks_while_a_save_holds_the_file_s_writer_mutex(
    make_lock: Callable[..., SqliteLockProvider],
) -> None:
    lock = make_lock()
    assert lock.acquire(new_id()) and lock._solo
    lock._next_look = time.monotonic() + 60  # no look for newcomers due during the test
    resource, done = new_id(), threading.Event()

    def take_and_give_back() -> None:
        assert lock.acquire(resource) and not lock.acquire(resource)
        lock.release(resource)
        assert lock.acquire(resource)
        done.set()

    with lock._write_mutex:  # what a save of the store on the same file holds while it writes
        worker = threading.Thread(target=take_and_give_back)
        worker.start()
        assert done.wait(10), "a solo lock waited for the file's writer mutex"
    worker.join(10)


def test_while_publishing_locks_are_taken_and_given_back_only_with_the_writer_mutex(
    make_lock: Callable[..., SqliteLockProvider],
) -> None:
    lock = make_lock()
    held = new_id()
    assert lock.acquire(held)
    lock._next_look = time.monotonic() + 60
    lock._publishing = True  # as _publish sets it before reading the locks it writes as rows
    assert lock._take_if_alone(new_id()) is None
    writes = lock._connection.total_changes
    lock.release(held)  # through the writer mutex (no row: still solo, the publish did not commit)
    assert lock.token(held) is None and lock._connection.total_changes == writes
    lock._published()
    assert lock._take_if_alone(held) is True


def test_a_second_provider_joining_busy_solo_threads_never_holds_a_lock_with_them(
    make_lock: Callable[..., SqliteLockProvider],
) -> None:
    first = make_lock()
    resources = [new_id() for _ in range(4)]
    holders: dict[str, SqliteLockProvider] = {}
    guard = threading.Lock()
    overlaps: list[str] = []
    taken = {"first": 0, "second": 0}
    stop = threading.Event()

    def hammer(lock: SqliteLockProvider, name: str) -> None:
        while not stop.is_set():
            for resource in resources:
                if not lock.acquire(resource):
                    continue
                with guard:
                    if resource in holders:
                        overlaps.append(resource)
                    holders[resource] = lock
                    taken[name] += 1
                with guard:
                    del holders[resource]
                lock.release(resource)

    threads = [threading.Thread(target=hammer, args=(first, "first")) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: taken["first"] > 200, 20, "the solo member to lock alone")
        second = make_lock()
        extra = [threading.Thread(target=hammer, args=(second, "second")) for _ in range(2)]
        for thread in extra:
            thread.start()
        threads += extra
        wait_until(lambda: taken["second"] > 50, 30, "the newcomer to lock too")
        before = taken["first"]
        wait_until(lambda: taken["first"] > before + 50, 30, "the first member to go on locking, shared")
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert not overlaps, f"two providers held {overlaps[:3]} at once"
