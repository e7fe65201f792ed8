"""The queue and lock contracts, and Redis-specific redelivery and lease behaviour, on a real Redis."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

redis = pytest.importorskip("redis")

from conftest import RedisPrefix  # type: ignore[import-not-found]

from liteflow.core import QueueType
from liteflow.core._config import _LOCK_URLS, _QUEUE_URLS, _from_url
from liteflow.providers.redis import RedisLockProvider, RedisQueueProvider
from liteflow.testing import LeasedLockContract, LockContract, QueueContract
from liteflow.testing._queue_contract import drain


class TestRedisQueue(QueueContract):
    deduplicates = True
    empty_timeout = 0.05  # LPUSH answered: taken as soon as queued

    @pytest.fixture
    def queue(self, redis_url: str, redis_prefix: RedisPrefix) -> Iterator[RedisQueueProvider]:
        provider = RedisQueueProvider(redis_url, prefix=redis_prefix())
        yield provider
        provider.close()


class TestRedisLock(LockContract):
    supports_concurrent_nodes = True

    @pytest.fixture
    def lock_prefix(self, redis_prefix: RedisPrefix) -> str:
        return redis_prefix()

    @pytest.fixture
    def lock(self, redis_url: str, lock_prefix: str) -> Iterator[RedisLockProvider]:
        provider = RedisLockProvider(redis_url, prefix=lock_prefix)
        yield provider
        provider.close()

    @pytest.fixture
    def second_lock(self, redis_url: str, lock_prefix: str) -> Iterator[RedisLockProvider]:
        provider = RedisLockProvider(redis_url, prefix=lock_prefix)
        yield provider
        provider.close()


# -- queue: redelivery ------------------------------------------------------------------------


def test_unacknowledged_item_comes_back_after_the_visibility_timeout(redis_url: str, redis_prefix: RedisPrefix) -> None:
    name = redis_prefix()
    dead = RedisQueueProvider(redis_url, prefix=name, visibility_timeout=0.5)
    alive = RedisQueueProvider(redis_url, prefix=name, visibility_timeout=0.5)
    try:
        dead.enqueue(QueueType.WORKFLOW, "wf-1")
        # The provider's clock starts when its claim runs in Redis, inside `dequeue` and before
        # the call returns (on a loaded machine, tens of ms before): start ours before the call.
        started = time.monotonic()
        assert dead.dequeue(QueueType.WORKFLOW, 1.0) == "wf-1"
        # `dead` never acknowledges (nor closes: a crashed node does neither).
        assert alive.dequeue(QueueType.WORKFLOW, 0.2) is None
        # Not before the visibility timeout; the deadline only guards against its never coming
        # back: a loaded machine may deliver it late.
        deadline = started + 30.0
        while (item := alive.dequeue(QueueType.WORKFLOW, 1.0)) is None and time.monotonic() < deadline:
            pass
        assert item == "wf-1", "the item never came back after the visibility timeout"
        assert time.monotonic() - started >= 0.5
        alive.acknowledge(QueueType.WORKFLOW, "wf-1")
        assert alive.dequeue(QueueType.WORKFLOW, 0.8) is None  # acknowledged: gone for good
    finally:
        alive.close()


def test_no_item_comes_back_in_the_last_millisecond_of_its_visibility_timeout(
    redis_url: str, redis_prefix: RedisPrefix
) -> None:
    # Deadlines are whole milliseconds of Redis's clock; the claim's own millisecond is partly
    # gone when it runs. Reclaiming as often as Redis answers finds the first moment the item is
    # handed back, and Redis's clock read before each dequeue started is earlier than its claim.
    name = redis_prefix()
    dead = RedisQueueProvider(redis_url, prefix=name, visibility_timeout=0.02)
    alive = RedisQueueProvider(redis_url, prefix=name, visibility_timeout=0.02)
    client = redis.Redis.from_url(redis_url)
    keys = alive._keys[QueueType.WORKFLOW]

    def redis_now_us() -> int:
        seconds, micros = client.time()
        return int(seconds) * 1_000_000 + int(micros)

    try:
        for n in range(30):
            dead.enqueue(QueueType.WORKFLOW, f"wf-{n}")
            started = redis_now_us()
            assert dead.dequeue(QueueType.WORKFLOW, 1.0) == f"wf-{n}"
            while True:
                alive._next_reclaim[QueueType.WORKFLOW] = 0.0
                alive._maybe_reclaim(QueueType.WORKFLOW, keys)
                back = redis_now_us()  # later than the reclaim that handed it back
                if client.llen(keys.ready):
                    break
                assert back - started < 5_000_000, "the item never came back"
            assert back - started >= 20_000, f"handed back {(back - started) / 1000} ms after the dequeue started"
            assert alive.dequeue(QueueType.WORKFLOW, 1.0) == f"wf-{n}"
            alive.acknowledge(QueueType.WORKFLOW, f"wf-{n}")
    finally:
        client.close()
        alive.close()


def test_close_hands_back_unacknowledged_items_at_once(redis_url: str, redis_prefix: RedisPrefix) -> None:
    name = redis_prefix()
    first = RedisQueueProvider(redis_url, prefix=name)
    second = RedisQueueProvider(redis_url, prefix=name)
    try:
        first.enqueue(QueueType.EVENT, "ev-1")
        assert first.dequeue(QueueType.EVENT, 1.0) == "ev-1"
        first.close()
        assert second.dequeue(QueueType.EVENT, 1.0) == "ev-1"
    finally:
        second.close()


def test_item_stranded_in_a_dead_nodes_inbox_comes_back(redis_url: str, redis_prefix: RedisPrefix) -> None:
    # A node that died between BLMOVE and its claim leaves the id in its inbox, still "waiting".
    name = redis_prefix()
    base = f"{name}:queue:workflow"
    client = redis.Redis.from_url(redis_url)
    client.sadd(f"{base}:waiting", "wf-lost")
    client.lpush(f"{base}:inbox:deadnode", "wf-lost")
    client.zadd(f"{base}:inboxes", {"deadnode": 0})
    client.close()
    queue = RedisQueueProvider(redis_url, prefix=name)
    try:
        queue.enqueue(QueueType.WORKFLOW, "wf-lost")  # still waiting: not queued twice
        assert queue.dequeue(QueueType.WORKFLOW, 1.0) == "wf-lost"
        queue.acknowledge(QueueType.WORKFLOW, "wf-lost")
        assert queue.dequeue(QueueType.WORKFLOW, 0.2) is None
    finally:
        queue.close()


def test_priority_bookkeeping_leaves_no_keys_behind(redis_url: str, redis_prefix: RedisPrefix) -> None:
    name = redis_prefix()
    queue = RedisQueueProvider(redis_url, prefix=name)
    client = redis.Redis.from_url(redis_url)
    processing = f"{name}:queue:workflow:processing"
    try:
        for n, priority in enumerate([0, 3, -2, 3, 0, 7]):
            queue.enqueue(QueueType.WORKFLOW, f"wf-{n}", priority=priority)
        assert queue.dequeue(QueueType.WORKFLOW, 1.0) == "wf-5"
        rest = [queue.dequeue(QueueType.WORKFLOW, 0.2) for _ in range(2)]
        assert rest == ["wf-1", "wf-3"]
        for item in rest:
            assert item is not None
            queue.acknowledge(QueueType.WORKFLOW, item)
        queue.enqueue(QueueType.WORKFLOW, "wf-late", priority=1)
        # wf-5's lease lapses (as if its node died): it comes back ahead of every priority.
        client.zadd(processing, dict.fromkeys(client.zrange(processing, 0, -1), 0))
        queue._next_reclaim[QueueType.WORKFLOW] = 0.0
        assert queue.dequeue(QueueType.WORKFLOW, 1.0) == "wf-5"
        queue.acknowledge(QueueType.WORKFLOW, "wf-5")
        assert drain(queue, QueueType.WORKFLOW) == ["wf-late", "wf-0", "wf-4", "wf-2"]
        left = {k.decode().rsplit(":", 1)[1] for k in client.keys(f"{name}:queue:workflow:*")}
        assert left - {"inboxes", "processing"} == set()  # no ready, waiting, nor level keys
    finally:
        queue.close()
        client.close()


def test_queue_and_lock_from_url(redis_url: str, redis_prefix: RedisPrefix) -> None:
    name = redis_prefix()
    queue = _from_url("queue", f"{redis_url}?prefix={name}&visibility_timeout=7", _QUEUE_URLS)
    lock = _from_url("lock", f"{redis_url}?prefix={name}&lease=3", _LOCK_URLS)
    try:
        assert isinstance(queue, RedisQueueProvider)
        assert (queue.prefix, queue.visibility_timeout) == (name, 7.0)
        assert isinstance(lock, RedisLockProvider)
        assert (lock.prefix, lock.lease) == (name, 3.0)
        queue.enqueue(QueueType.WORKFLOW, "x")
        assert queue.dequeue(QueueType.WORKFLOW, 1.0) == "x"
        assert lock.acquire("r") is True
    finally:
        queue.close()
        lock.close()


# -- lock: the leased-lock contract (lapse, renewal, fencing) ----------------------------------


class TestRedisLeasedLock(LeasedLockContract):
    @pytest.fixture
    def make_leased_lock(self, redis_url: str, redis_prefix: RedisPrefix) -> Iterator[Callable[..., RedisLockProvider]]:
        name, made = redis_prefix(), []

        def make(*, renew: bool = True) -> RedisLockProvider:
            made.append(RedisLockProvider(redis_url, prefix=name, lease=self.lease, renew=renew))
            return made[-1]

        yield make
        for provider in made:
            provider.close()
