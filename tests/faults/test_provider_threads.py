"""Provider threads outlive any exception, not only the driver's, and report an outage once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest
from conftest import Schema  # type: ignore[import-not-found]

from liteflow.core import LockProvider


def _assert_renewal_survives(lock: LockProvider, renewer: threading.Thread, caplog: pytest.LogCaptureFixture) -> None:
    """Make the lock's renewals fail with an unexpected error five times, then work again."""
    failures = 5
    calls = 0
    recovered = threading.Event()
    renew_now: Callable[[], None] = lock.renew_now  # type: ignore[attr-defined]

    def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls <= failures:
            raise RuntimeError(f"unexpected failure {calls}")
        renew_now()
        recovered.set()

    with caplog.at_level(logging.INFO, logger="liteflow"):
        lock.renew_now = flaky  # type: ignore[attr-defined]
        assert recovered.wait(timeout=30), "renewal never ran again"
        deadline = time.monotonic() + 30  # the loop logs the recovery once flaky() has returned
        while not any("recovered" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
            time.sleep(0.01)
    assert renewer.is_alive()
    messages = [r.getMessage() for r in caplog.records if "renewal" in r.getMessage()]
    assert len(messages) == 2, messages  # once when it started failing, once when it recovered
    assert "unexpected failure 1" in messages[0]
    assert f"{failures} failed attempt(s)" in messages[1]


def test_redis_lock_renewal_survives(redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("redis")
    from liteflow.core._models import new_id
    from liteflow.providers.redis import RedisLockProvider

    lock = RedisLockProvider(redis_url, prefix=f"liteflow-test-{new_id()}", lease=0.3)
    try:
        assert lock._renewer is not None
        _assert_renewal_survives(lock, lock._renewer, caplog)
    finally:
        lock.close()


def test_postgres_lock_renewal_survives(postgres_url: str, schema: Schema, caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("psycopg")
    from liteflow.providers.postgres import PostgresLockProvider

    lock = PostgresLockProvider(postgres_url, schema=schema(), lease=0.3)
    try:
        assert lock._renewer is not None
        _assert_renewal_survives(lock, lock._renewer, caplog)
    finally:
        lock.close()


def test_postgres_ack_flusher_survives(postgres_url: str, schema: Schema, caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("psycopg")
    from liteflow.core import QueueType
    from liteflow.providers.postgres import PostgresQueueProvider

    queue = PostgresQueueProvider(postgres_url, schema=schema())
    flush = queue._flush_acks
    calls = 0

    def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise RuntimeError("unexpected")
        flush()

    try:
        with caplog.at_level(logging.INFO, logger="liteflow"):
            queue._flush_acks = flaky  # type: ignore[method-assign]
            queue.enqueue(QueueType.WORKFLOW, "a")
            assert queue.dequeue(QueueType.WORKFLOW, 1.0) == "a"
            queue.acknowledge(QueueType.WORKFLOW, "a")  # deleted by the flusher: no take follows
            deadline = time.monotonic() + 30
            while not any("recovered" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
                time.sleep(0.01)
        assert not queue._acked, "the acknowledgement was never flushed"
        assert queue._flusher.is_alive()
        messages = [r.getMessage() for r in caplog.records if "flusher" in r.getMessage()]
        assert len(messages) == 2, messages
        assert "3 failed attempt(s)" in messages[1]
    finally:
        queue.close()
