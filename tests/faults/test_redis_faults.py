"""The fault contracts on Redis (queue, lock), reached through a FaultProxy; error translation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

redis = pytest.importorskip("redis")

from liteflow.core import ConfigurationError, ProviderError, ProviderUnavailableError, QueueType
from liteflow.core._models import new_id
from liteflow.providers.redis import RedisLockProvider, RedisQueueProvider
from liteflow.providers.redis._common import translated
from liteflow.testing import FaultProxy, LockFaultContract, QueueFaultContract

# Short timeouts, so that a black-holed server is given up on within a few seconds.
TIMEOUTS = {"socket_timeout": 1.0, "connect_timeout": 1.0}


@pytest.fixture
def key_prefix(redis_url: str) -> Iterator[str]:
    """A fresh key prefix; every key under it is deleted afterwards."""
    name = f"liteflow-test-{new_id()}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{name}:*"))
    if keys:
        client.delete(*keys)
    client.close()


class _ThroughProxy:
    @pytest.fixture
    def fault_proxy(self, redis_url: str) -> Iterator[FaultProxy]:
        with FaultProxy.for_url(redis_url) as proxy:
            yield proxy


class TestRedisQueueFaults(_ThroughProxy, QueueFaultContract):
    @pytest.fixture
    def queue(self, fault_proxy: FaultProxy, redis_url: str, key_prefix: str) -> Iterator[RedisQueueProvider]:
        provider = RedisQueueProvider(fault_proxy.url(redis_url), prefix=key_prefix, **TIMEOUTS)
        yield provider
        fault_proxy.restore()
        provider.close()


class TestRedisLockFaults(_ThroughProxy, LockFaultContract):
    @pytest.fixture
    def lock(self, fault_proxy: FaultProxy, redis_url: str, key_prefix: str) -> Iterator[RedisLockProvider]:
        provider = RedisLockProvider(fault_proxy.url(redis_url), prefix=key_prefix, lease=30, **TIMEOUTS)
        yield provider
        fault_proxy.restore()
        provider.close()


def test_timeouts_from_the_url_win(redis_url: str, key_prefix: str) -> None:
    with FaultProxy.for_url(redis_url) as proxy:
        url = proxy.url(redis_url) + f"?prefix={key_prefix}&socket_timeout=0.5&socket_connect_timeout=0.5"
        queue = RedisQueueProvider.from_url(url)
        try:
            queue.enqueue(QueueType.WORKFLOW, "a")
            proxy.blackhole()
            with pytest.raises(ProviderUnavailableError) as raised:
                queue.enqueue(QueueType.WORKFLOW, "b")
            assert isinstance(raised.value.__cause__, redis.TimeoutError | redis.ConnectionError)
        finally:
            proxy.restore()
            queue.close()


def test_bad_timeouts_are_refused(redis_url: str) -> None:
    with pytest.raises(ConfigurationError, match="socket_timeout"):
        RedisLockProvider(redis_url, socket_timeout=0)


@pytest.mark.parametrize(
    ("error", "is_unavailable"),
    [
        (redis.ConnectionError("Connection refused"), True),
        (redis.TimeoutError("Timeout reading from socket"), True),
        (redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"), True),
        (redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'"), True),
        (redis.exceptions.ReadOnlyError("You can't write against a read only replica."), True),
        (redis.ResponseError("MISCONF Redis is configured to save RDB snapshots, but it's currently unable"), True),
        (redis.ResponseError("READONLY You can't write against a read only replica."), True),
        (redis.AuthenticationError("invalid username-password pair"), False),
        (redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), False),
    ],
)
def test_driver_errors_map_to_the_right_provider_error(error: Exception, is_unavailable: bool) -> None:
    with pytest.raises(ProviderError) as raised:
        with translated("test"):
            raise error
    assert isinstance(raised.value, ProviderUnavailableError) is is_unavailable
    assert raised.value.__cause__ is error
