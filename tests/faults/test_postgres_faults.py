"""The fault contracts on PostgreSQL (persistence, queue, lock), reached through a FaultProxy."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, cast

import pytest

psycopg = pytest.importorskip("psycopg")

from conftest import Schema  # type: ignore[import-not-found]
from polling import wait_until

from liteflow.core import ConfigurationError, ProviderError, ProviderUnavailableError
from liteflow.providers.postgres import (
    PostgresLockProvider,
    PostgresPersistenceProvider,
    PostgresQueueProvider,
    _common,
)
from liteflow.providers.postgres._common import translated
from liteflow.testing import FaultProxy, LockFaultContract, PersistenceFaultContract, QueueFaultContract
from liteflow.testing._persistence_data import make_instance

# Short timeouts, so that a black-holed server is given up on within a few seconds.
TIMEOUTS = {"connect_timeout": 2.0, "statement_timeout": 1.0}


class _ThroughProxy:
    @pytest.fixture
    def fault_proxy(self, postgres_url: str) -> Iterator[FaultProxy]:
        with FaultProxy.for_url(postgres_url, default_port=5432) as proxy:
            yield proxy


class TestPostgresPersistenceFaults(_ThroughProxy, PersistenceFaultContract):
    @pytest.fixture
    def persistence(
        self, fault_proxy: FaultProxy, postgres_url: str, schema: Schema
    ) -> Iterator[PostgresPersistenceProvider]:
        provider = PostgresPersistenceProvider(fault_proxy.url(postgres_url), schema=schema(), **TIMEOUTS)
        yield provider
        fault_proxy.restore()
        provider.close()


class TestPostgresQueueFaults(_ThroughProxy, QueueFaultContract):
    @pytest.fixture
    def queue(self, fault_proxy: FaultProxy, postgres_url: str, schema: Schema) -> Iterator[PostgresQueueProvider]:
        provider = PostgresQueueProvider(fault_proxy.url(postgres_url), schema=schema(), **TIMEOUTS)
        yield provider
        fault_proxy.restore()
        provider.close()


class TestPostgresLockFaults(_ThroughProxy, LockFaultContract):
    @pytest.fixture
    def lock(self, fault_proxy: FaultProxy, postgres_url: str, schema: Schema) -> Iterator[PostgresLockProvider]:
        provider = PostgresLockProvider(fault_proxy.url(postgres_url), schema=schema(), lease=30, **TIMEOUTS)
        yield provider
        fault_proxy.restore()
        provider.close()


def test_read_only_server_is_unavailable(postgres_url: str, schema: Schema) -> None:
    name = schema()
    PostgresPersistenceProvider(postgres_url, schema=name).close()  # the schema exists, migrated
    read_only = f"{postgres_url}?options=-c%20default_transaction_read_only%3Don"
    provider = PostgresPersistenceProvider(read_only, schema=name)
    try:
        with pytest.raises(ProviderUnavailableError, match="read-only") as raised:
            provider.create_workflow(make_instance())
        assert isinstance(raised.value.__cause__, psycopg.errors.ReadOnlySqlTransaction)
    finally:
        provider.close()


def test_locked_row_is_unavailable(postgres_url: str, schema: Schema) -> None:
    name = schema()
    provider = PostgresPersistenceProvider(f"{postgres_url}?options=-c%20lock_timeout%3D100", schema=name)
    instance = make_instance()
    provider.create_workflow(instance)
    try:
        with psycopg.connect(postgres_url) as holder:  # a transaction holding the row lock
            holder.execute(f'SELECT 1 FROM "{name}".workflow WHERE id = %s FOR UPDATE', (instance.id,))
            with pytest.raises(ProviderUnavailableError) as raised:
                provider.persist_workflow(instance)
            assert isinstance(raised.value.__cause__, psycopg.errors.LockNotAvailable)
        provider.persist_workflow(instance)  # the lock is gone: the same provider works
    finally:
        provider.close()


def test_statement_timeout_is_enforced_by_the_server(postgres_url: str, schema: Schema) -> None:
    provider = PostgresPersistenceProvider(postgres_url, schema=schema(), statement_timeout=0.2)
    try:
        with pytest.raises(ProviderUnavailableError) as raised:
            provider._fetchall("sleep", "SELECT pg_sleep(5)", ())
        assert isinstance(raised.value.__cause__, psycopg.errors.QueryCanceled)
    finally:
        provider.close()


@pytest.mark.parametrize(
    ("error", "is_unavailable"),
    [
        (psycopg.errors.DiskFull("disk full"), True),
        (psycopg.errors.ReadOnlySqlTransaction("read only"), True),
        (psycopg.errors.AdminShutdown("shutting down"), True),
        (psycopg.errors.CannotConnectNow("starting up"), True),
        (psycopg.errors.DeadlockDetected("deadlock"), True),
        (psycopg.OperationalError("connection lost"), True),
        (psycopg.InterfaceError("connection closed"), True),
        (psycopg.errors.UndefinedTable("no such table"), False),
        (psycopg.errors.SyntaxError("syntax"), False),
    ],
)
def test_driver_errors_map_to_the_right_provider_error(error: Exception, is_unavailable: bool) -> None:
    with pytest.raises(ProviderError) as raised:
        with translated("test"):
            raise error
    assert isinstance(raised.value, ProviderUnavailableError) is is_unavailable
    assert raised.value.__cause__ is error


def test_bad_timeouts_are_refused(postgres_url: str) -> None:
    with pytest.raises(ConfigurationError, match="statement_timeout"):
        PostgresQueueProvider(postgres_url, statement_timeout=0)
    with pytest.raises(ConfigurationError, match="connect_timeout"):
        PostgresLockProvider.from_url(f"{postgres_url}?connect_timeout=-1")


def test_timeouts_from_the_url(postgres_url: str, schema: Schema) -> None:
    url = f"{postgres_url}?schema={schema()}&connect_timeout=3&statement_timeout=0.5"
    provider = PostgresPersistenceProvider.from_url(url)
    try:
        assert provider._pool.connect_timeout == 3.0
        assert provider._pool.statement_timeout == 0.5
        with pytest.raises(ProviderUnavailableError):
            provider._fetchall("sleep", "SELECT pg_sleep(5)", ())
    finally:
        provider.close()


def test_the_watchdog_breaks_a_call_that_started_while_it_slept(monkeypatch: pytest.MonkeyPatch) -> None:
    """A call never wakes the watchdog (that was a hand-off of the GIL per call): one started while
    it waits with nothing to watch is still broken once its deadline passes."""
    broken: list[object] = []
    monkeypatch.setattr(_common, "_break", broken.append)  # record the connection instead of its socket
    deadlines = _common.Deadlines(0.5, "test")
    try:
        probe = deadlines._start(cast(Any, "probe"))
        # Broken under the watchdog's lock, which it then keeps until it waits with nothing to watch.
        wait_until(lambda: broken, "the probe's connection broken", timeout=10)
        assert deadlines._end(probe) is True  # the call learns that its connection was broken
        began = time.monotonic()
        late = deadlines._start(cast(Any, "late"))
        wait_until(lambda: len(broken) == 2, "the late call's connection broken", timeout=10)
        assert broken == ["probe", "late"]
        assert 0.5 <= time.monotonic() - began < 0.5 + 2.0  # at its deadline, give or take a loaded machine
        assert deadlines._end(late) is True
    finally:
        deadlines.close()
