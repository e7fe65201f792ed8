"""A reliable :class:`QueueProvider` on Redis lists, a set and sorted sets.

Keys, for each queue type ``q`` (``workflow``, ``event``) under the prefix ``p``:

``p:queue:q:ready``       list of ids waiting, next out at the right (highest priority, oldest)
``p:queue:q:waiting``     set of the ids in ``ready`` or in transit (makes ``enqueue`` idempotent)
``p:queue:q:processing``  sorted set of deliveries (``<16-hex token><id>``) scored by deadline (ms)
``p:queue:q:inbox:<node>`` list an item passes through between ``BLMOVE`` and its claim
``p:queue:q:inboxes``     sorted set of nodes' inboxes scored by expiry (ms)
``p:queue:q:levels``, ``:count``, ``:newest``, ``:level``   the priorities waiting in ``ready``,
                          how many of each, the newest id of each, and each id's (when not 0)

Delivery (at least once)
    ``enqueue`` adds the id to ``waiting`` and ``ready`` in one script, unless it is already
    waiting. ``dequeue`` blocks on ``BLMOVE ready -> inbox`` (so many consumers wait without
    polling), then a script moves the id from the inbox into ``processing`` with the deadline
    ``now + visibility_timeout`` (Redis server time, so the nodes' clocks do not matter).
    ``acknowledge`` deletes that delivery. Any consumer's ``dequeue`` runs, at most every
    ``min(visibility_timeout / 4, 1 s)``, a script that puts expired deliveries back at the front of
    ``ready`` (unless the id is waiting already) and empties the inboxes of nodes that stopped
    registering. So an item taken by a consumer that died is handed out again within about
    ``visibility_timeout + 2 * min(visibility_timeout / 4, 1 s) + 0.25 s``, as long as some node
    is dequeuing. An item processed for longer than ``visibility_timeout`` is handed out again too,
    so pick a timeout above your slowest step; the host's instance lock and the store's revision
    check keep such a second delivery harmless. ``close`` puts this node's unacknowledged
    deliveries back at once, as RabbitMQ does when a consumer's connection closes.

Items of one queue come out highest priority first, first in, first out within one, except that
redelivered items go first. An item of priority 0 joins the left end in O(1) when nothing of lower
priority waits; any other joins its place with one ``LINSERT`` (a scan past the items of lower
priority waiting). Priorities beyond -1,000,000..1,000,000 are clamped.
Needs a single Redis server (the scripts touch keys they do not declare, so not Redis Cluster)
of version 6.2 or later, or a master and its replicas under Sentinel (``redis+sentinel://``): after a
failover the client finds the new master by itself; what the old master had not yet replicated is
lost with it (the host's poll queues runnable work again), and deliveries in flight come back after
the visibility timeout.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis

from liteflow.providers.spi import MAX_PRIORITY, InvalidArgumentError, QueueProvider, QueueType, split_url

from ._common import (
    CONNECT_TIMEOUT,
    SCHEMES,
    SOCKET_TIMEOUT,
    SentinelMaster,
    client_from,
    provider_error,
    text,
    translated,
)
from ._servers import describe

logger = logging.getLogger("liteflow.providers.redis")

_SLICE = 0.25
"""Longest single BLMOVE: bounds how long ``close`` takes to wake a blocked ``dequeue``."""
_TOKEN_CHARS = 16
_RECLAIM_BATCH = 1000

_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)"

_FRONT = MAX_PRIORITY + 1
"""The level of redelivered items: ahead of every priority, as before priorities existed."""

# `ready` is kept sorted: highest level at the right (taken first), each level oldest first. The
# level keys (ARGV[1] plus ":levels", ":count", ":newest", ":level") say where each level's newest
# (leftmost) item is, so an item joins in one LINSERT before the newest item of the lowest level
# at or above its own, or at an end. Level-0 items keep no entry in ":level".
_LEVELS = """
local levels_key, count_key, newest_key, level_key = ARGV[1] .. ':levels', ARGV[1] .. ':count',
  ARGV[1] .. ':newest', ARGV[1] .. ':level'
local function take_out(id)
  local level = redis.call('HGET', level_key, id) or '0'
  redis.call('HDEL', level_key, id)
  if redis.call('HINCRBY', count_key, level, -1) <= 0 then
    redis.call('HDEL', count_key, level)
    redis.call('HDEL', newest_key, level)
    redis.call('ZREM', levels_key, level)
  end
end
local function put_in(ready, id, level)
  local name = tostring(level)
  local above = redis.call('ZRANGEBYSCORE', levels_key, level, '+inf', 'LIMIT', 0, 1)
  local lowest = redis.call('ZRANGE', levels_key, 0, 0, 'WITHSCORES')
  if #above == 0 then
    redis.call('RPUSH', ready, id)
  elseif tonumber(lowest[2]) >= level then
    redis.call('LPUSH', ready, id)
  else
    local pivot = redis.call('HGET', newest_key, above[1])
    if not pivot or redis.call('LINSERT', ready, 'BEFORE', pivot, id) < 0 then
      redis.call('RPUSH', ready, id)  -- the pivot is in transit: it was the last of its level
    end
  end
  if level ~= 0 then redis.call('HSET', level_key, id, name) end
  redis.call('HINCRBY', count_key, name, 1)
  redis.call('HSET', newest_key, name, id)
  redis.call('ZADD', levels_key, level, name)
end
"""

# KEYS: waiting, ready. ARGV: level keys' base, id, level. An id already waiting in `ready` and
# queued again with a higher level moves up (one LREM); one in transit in an inbox stays as it is.
_ENQUEUE = f"""{_LEVELS}
local level = tonumber(ARGV[3])
if redis.call('SADD', KEYS[1], ARGV[2]) == 1 then
  put_in(KEYS[2], ARGV[2], level)
  return 1
end
if tonumber(redis.call('HGET', level_key, ARGV[2]) or '0') < level and redis.call('LREM', KEYS[2], 1, ARGV[2]) == 1 then
  take_out(ARGV[2])
  put_in(KEYS[2], ARGV[2], level)
end
return 0
"""

# KEYS: inbox, waiting, processing. ARGV: level keys' base, id, delivery, visibility ms.
# Returns 0 when the inbox was emptied by a reclaim meanwhile: the id is back in `ready`.
_CLAIM = f"""{_NOW}{_LEVELS}
if redis.call('LREM', KEYS[1], 1, ARGV[2]) == 0 then return 0 end
redis.call('SREM', KEYS[2], ARGV[2])
take_out(ARGV[2])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[3])
return 1
"""

# KEYS: processing, waiting, ready, inboxes. ARGV: level keys' base, node, inbox key prefix,
# hold ms, batch. An id in an inbox is still in `waiting` and counted in its level (it was never
# claimed), so it goes back unconditionally, moved to the front level.
_RECLAIM = f"""{_NOW}{_LEVELS}
redis.call('ZADD', KEYS[4], 'GT', now + tonumber(ARGV[4]), ARGV[2])
local moved = 0
-- Past its deadline, not at it: `now` and the deadline are whole ms, and the claim's own ms was
-- partly gone when it ran, so in the deadline's ms the timeout may not have passed yet.
local past = string.format('(%d', now)
for _, delivery in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', past, 'LIMIT', 0, tonumber(ARGV[5]))) do
  redis.call('ZREM', KEYS[1], delivery)
  local id = string.sub(delivery, {_TOKEN_CHARS + 1})
  if redis.call('SADD', KEYS[2], id) == 1 then
    put_in(KEYS[3], id, {_FRONT})
    moved = moved + 1
  end
end
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, tonumber(ARGV[5]))) do
  local inbox = ARGV[3] .. node
  local id = redis.call('RPOP', inbox)
  while id do
    redis.call('SADD', KEYS[2], id)
    take_out(id)
    put_in(KEYS[3], id, {_FRONT})
    moved = moved + 1
    id = redis.call('RPOP', inbox)
  end
  redis.call('ZREM', KEYS[4], node)
end
return moved
"""

# KEYS: processing, waiting, ready. ARGV: deliveries. Hands back deliveries not yet acknowledged.
# KEYS: this node's inbox, ready. Puts back at the front what the inbox holds: after a broken
# connection an id may sit there that BLMOVE moved but whose reply (or claim) was lost, and this
# node, being alive, is never reclaimed by the others. Ids still in the inbox are still `waiting`.
# A claim racing with this finds the id gone and its consumer simply moves on.
_RESCUE = f"""{_LEVELS}
local moved = 0
local id = redis.call('RPOP', KEYS[1])
while id do
  take_out(id)
  put_in(KEYS[2], id, {_FRONT})
  moved = moved + 1
  id = redis.call('RPOP', KEYS[1])
end
return moved
"""

_RETURN = f"""{_LEVELS}
for index = 2, #ARGV do
  local delivery = ARGV[index]
  if redis.call('ZREM', KEYS[1], delivery) == 1 then
    local id = string.sub(delivery, {_TOKEN_CHARS + 1})
    if redis.call('SADD', KEYS[2], id) == 1 then put_in(KEYS[3], id, {_FRONT}) end
  end
end
return 0
"""


@dataclass(frozen=True)
class _Keys:
    base: str
    ready: str
    waiting: str
    processing: str
    inboxes: str
    inbox_prefix: str
    inbox: str


class RedisQueueProvider(QueueProvider):
    """Reliable, de-duplicating FIFO queues on Redis; see the module docstring for the guarantees.

    ``url_or_client`` is a ``redis://host:port/db`` URL (the provider owns and closes the client
    it makes) or a ``redis.Redis`` client (left open on ``close``). Every key starts with
    ``prefix + ":"``, so applications (or tests) sharing a server use different prefixes.
    ``socket_timeout`` and ``connect_timeout`` (seconds) bound each command of a client made from a
    URL (see :func:`client_from`); a call Redis does not answer in time, or cannot take,
    raises :class:`ProviderUnavailableError`.
    """

    def __init__(
        self,
        url_or_client: str | redis.Redis,
        *,
        prefix: str = "liteflow",
        visibility_timeout: float = 30.0,
        socket_timeout: float = SOCKET_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        if visibility_timeout <= 0:
            raise InvalidArgumentError(f"visibility_timeout must be positive, got {visibility_timeout}")
        self._client, self._owns_client = client_from(
            url_or_client, socket_timeout=socket_timeout, connect_timeout=connect_timeout
        )
        self.prefix = prefix
        self.visibility_timeout = visibility_timeout
        self._reclaim_every = min(visibility_timeout / 4, 1.0)
        self._node = secrets.token_hex(8)
        self._keys = {queue: self._make_keys(queue) for queue in QueueType}
        self._enqueue = self._client.register_script(_ENQUEUE)
        self._claim = self._client.register_script(_CLAIM)
        self._reclaim = self._client.register_script(_RECLAIM)
        self._return = self._client.register_script(_RETURN)
        self._rescue = self._client.register_script(_RESCUE)
        self._suspect_inbox: set[QueueType] = set()  # a dequeue failed: the inbox may hold a lost id
        # redis-py types BLMOVE's timeout as int; Redis takes fractions of a second.
        self._command: Any = self._client.execute_command
        self._mutex = threading.Lock()
        self._deliveries: dict[tuple[QueueType, str], list[str]] = {}
        self._next_reclaim = dict.fromkeys(QueueType, 0.0)
        self._closed = threading.Event()
        self._active = 0  # dequeue calls running: close() lets them end before closing the client
        self._idle = threading.Condition(self._mutex)

    @classmethod
    def from_url(cls, url: str) -> RedisQueueProvider:
        """``redis://[:password@]host:port/db``; LiteFlow options as query parameters
        (``?prefix=app&visibility_timeout=60``), any others go to ``redis.Redis.from_url``
        (``?socket_timeout=2&socket_connect_timeout=2`` among them)."""
        clean, options = split_url(url, {"prefix": str, "visibility_timeout": float}, schemes=SCHEMES)
        return cls(clean, **options)

    def _make_keys(self, queue: QueueType) -> _Keys:
        base = f"{self.prefix}:queue:{queue.value}"
        return _Keys(
            base=base,
            ready=f"{base}:ready",
            waiting=f"{base}:waiting",
            processing=f"{base}:processing",
            inboxes=f"{base}:inboxes",
            inbox_prefix=f"{base}:inbox:",
            inbox=f"{base}:inbox:{self._node}",
        )

    def enqueue(self, queue: QueueType, item_id: str, priority: int = 0) -> None:
        keys = self._keys[queue]
        with translated(f"queue {queue.value} {item_id}"):
            level = max(-MAX_PRIORITY, min(MAX_PRIORITY, priority))
            self._enqueue(keys=[keys.waiting, keys.ready], args=[keys.base, item_id, level])

    def dequeue(self, queue: QueueType, timeout: float) -> str | None:
        with self._mutex:
            if self._closed.is_set():
                return None
            self._active += 1
        try:
            return self._dequeue(queue, timeout)
        finally:
            with self._mutex:
                self._active -= 1
                self._idle.notify_all()

    def _dequeue(self, queue: QueueType, timeout: float) -> str | None:
        keys = self._keys[queue]
        deadline = time.monotonic() + max(timeout, 0.0)
        try:
            if queue in self._suspect_inbox:
                self._rescue_inbox(queue, keys)
            while not self._closed.is_set():
                self._maybe_reclaim(queue, keys)
                wait = min(deadline - time.monotonic(), _SLICE)
                # A zero timeout would block forever: the shortest BLMOVE still waits 10 ms.
                moved = self._command("BLMOVE", keys.ready, keys.inbox, "RIGHT", "LEFT", max(wait, 0.01))
                if moved is not None:
                    item_id = text(moved)
                    delivery = secrets.token_hex(_TOKEN_CHARS // 2) + item_id
                    args: list[Any] = [keys.base, item_id, delivery, math.ceil(self.visibility_timeout * 1000)]
                    if self._claim(keys=[keys.inbox, keys.waiting, keys.processing], args=args):
                        with self._mutex:
                            self._deliveries.setdefault((queue, item_id), []).append(delivery)
                        return item_id
                if time.monotonic() >= deadline:
                    return None
        except redis.RedisError as error:
            if self._closed.is_set():
                return None  # the client was closed under us: that is the wake-up close() promises
            self._suspect_inbox.add(queue)
            raise provider_error(f"take from the {queue.value} queue", error) from error
        return None

    def _rescue_inbox(self, queue: QueueType, keys: _Keys) -> None:
        self._suspect_inbox.discard(queue)
        try:
            moved = self._rescue(keys=[keys.inbox, keys.ready], args=[keys.base])
        except redis.RedisError:
            self._suspect_inbox.add(queue)
            raise
        if moved:
            logger.info("put back %s %s item(s) taken from Redis while its connection broke", moved, queue.value)

    def _maybe_reclaim(self, queue: QueueType, keys: _Keys) -> None:
        now = time.monotonic()
        if now < self._next_reclaim[queue]:
            return
        self._next_reclaim[queue] = now + self._reclaim_every
        # The inbox registration must outlive every BLMOVE until the next refresh.
        hold = round((self.visibility_timeout + self._reclaim_every + _SLICE) * 1000)
        moved = self._reclaim(
            keys=[keys.processing, keys.waiting, keys.ready, keys.inboxes],
            args=[keys.base, self._node, keys.inbox_prefix, hold, _RECLAIM_BATCH],
        )
        if moved:
            logger.info("redelivering %s %s item(s) not acknowledged in time", moved, queue.value)

    def health_details(self) -> dict[str, Any]:
        """The server, and for a Sentinel-managed one the master last found; for
        :meth:`WorkflowHost.health`."""
        details: dict[str, Any] = {"server": describe(self._client)}
        if isinstance(self._client, SentinelMaster):
            details["master"] = self._client.master_address()
        return details

    def acknowledge(self, queue: QueueType, item_id: str) -> None:
        with self._mutex:
            deliveries = self._deliveries.get((queue, item_id))
            if not deliveries:
                return
            delivery = deliveries.pop(0)
            if not deliveries:
                del self._deliveries[(queue, item_id)]
        try:
            self._client.zrem(self._keys[queue].processing, delivery)
        except redis.RedisError as error:
            # Not acknowledged: the item is handed out again after the visibility timeout.
            raise provider_error(f"acknowledge {queue.value} {item_id}", error) from error

    def close(self) -> None:
        """Wake blocked ``dequeue`` calls (within 0.25 s), hand back unacknowledged items, and
        close the client if this provider made it."""
        if self._closed.is_set():
            return
        with self._mutex:
            self._closed.set()
            self._idle.wait_for(lambda: self._active == 0, timeout=_SLICE + 5.0)
            pending = self._deliveries
            self._deliveries = {}
        try:
            for queue in QueueType:
                deliveries = [d for (q, _), ds in pending.items() if q is queue for d in ds]
                if deliveries:
                    keys = self._keys[queue]
                    self._return(keys=[keys.processing, keys.waiting, keys.ready], args=[keys.base, *deliveries])
        except redis.RedisError as error:
            logger.warning(
                "could not hand back unacknowledged items; they return after the visibility timeout: %s", error
            )
        finally:
            if self._owns_client:
                self._client.close()
