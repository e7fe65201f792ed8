"""A :class:`LockProvider` on Redis: leased locks with renewal and fencing tokens.

Keys under the prefix ``p``: ``p:lock:<resource>`` holds the holder's random owner token and
expires after the lease; ``p:lock-fence`` is a counter.

Guarantees
    ``acquire`` is ``SET NX PX lease`` with a fresh random owner token, so exactly one caller on
    any node wins while the key exists. ``release`` deletes the key only if it still holds this
    caller's token (compare-and-delete in a script), so a node can never free another's lock.
    A background thread extends every lock this provider holds every ``lease / 3`` (an
    owner-checked ``PEXPIRE``), so a lock stays held for as long as its node is alive and can
    reach Redis, and a node that dies (or stalls for longer than the lease) loses its locks at
    most ``lease`` seconds after its last renewal. A lock found lapsed at renewal is dropped and
    logged at WARNING.

Fencing
    Each successful ``acquire`` also takes the next value of one counter, in the same script, so
    tokens grow with the order in which locks were granted. ``token(resource)`` returns it while
    this provider holds the lock: a store that remembered the highest token it accepted could turn
    away writes from a holder whose lease lapsed. LiteFlow itself relies on the persistence
    provider's revision check for that: a node that lost its lock during a long step and then
    saves a stale instance gets a ``ConcurrencyError``. The lease and its renewal keep such
    overlaps rare; the revision check makes them harmless.

One Redis server is the authority: on a failover to a replica that had not yet received a lock,
two nodes may hold it at once (again caught by the revision check).
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass

import redis

from liteflow.core._backoff import OutageLog
from liteflow.core._errors import InvalidArgumentError
from liteflow.core._providers import LockProvider

from ._common import CONNECT_TIMEOUT, SOCKET_TIMEOUT, client_from, split_url, translated

logger = logging.getLogger("liteflow.providers.redis")

# KEYS: lock, fence counter. ARGV: owner, lease ms. Returns the fencing token, or 0 if taken.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0
"""

# KEYS: lock. ARGV: owner.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: locks. ARGV: lease ms, then one owner per lock. Returns 1 (extended) or 0 (lost) per lock.
_RENEW = """
local kept = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i + 1] then
    kept[i] = redis.call('PEXPIRE', key, ARGV[1])
  else
    kept[i] = 0
  end
end
return kept
"""


@dataclass(frozen=True, eq=False)
class _Held:
    owner: str
    token: int


class RedisLockProvider(LockProvider):
    """Leased, renewed, owner-checked locks on Redis; see the module docstring for the guarantees.

    ``url_or_client`` is a ``redis://host:port/db`` URL (the provider owns and closes the client
    it makes) or a ``redis.Redis`` client (left open on ``close``). ``lease`` is in seconds.
    ``renew=False`` turns renewal off, so locks lapse after one lease even while held: for tests
    that stand in for a stalled node, not for production. ``socket_timeout`` and
    ``connect_timeout`` bound each command as for :class:`RedisQueueProvider`.
    """

    def __init__(
        self,
        url_or_client: str | redis.Redis,
        *,
        prefix: str = "liteflow",
        lease: float = 10.0,
        renew: bool = True,
        socket_timeout: float = SOCKET_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        if lease <= 0:
            raise InvalidArgumentError(f"lease must be positive, got {lease}")
        self._client, self._owns_client = client_from(
            url_or_client, socket_timeout=socket_timeout, connect_timeout=connect_timeout
        )
        self.prefix = prefix
        self.lease = lease
        self._lease_ms = max(1, round(lease * 1000))
        self._fence_key = f"{prefix}:lock-fence"
        self._acquire = self._client.register_script(_ACQUIRE)
        self._release = self._client.register_script(_RELEASE)
        self._renew = self._client.register_script(_RENEW)
        self._mutex = threading.Lock()
        self._held: dict[str, _Held] = {}
        self._stopping = threading.Event()
        self._closed = False
        self._renewer: threading.Thread | None = None
        if renew:
            self._renewer = threading.Thread(target=self._renew_loop, name="liteflow-redis-lock-renewal", daemon=True)
            self._renewer.start()

    @classmethod
    def from_url(cls, url: str) -> RedisLockProvider:
        """``redis://[:password@]host:port/db``; LiteFlow options as query parameters
        (``?prefix=app&lease=15``), any others go to ``redis.Redis.from_url``."""
        clean, options = split_url(url, {"prefix": str, "lease": float})
        return cls(clean, **options)

    def _key(self, resource: str) -> str:
        return f"{self.prefix}:lock:{resource}"

    def acquire(self, resource: str) -> bool:
        owner = secrets.token_hex(16)
        with translated(f"lock {resource}"):
            token = int(self._acquire(keys=[self._key(resource), self._fence_key], args=[owner, self._lease_ms]))
        if not token:
            return False
        with self._mutex:
            self._held[resource] = _Held(owner, token)
        return True

    def token(self, resource: str) -> int | None:
        """The fencing token of this provider's lock on ``resource``, or None if it does not hold
        it (never took it, released it, or found it lapsed at renewal)."""
        with self._mutex:
            held = self._held.get(resource)
        return None if held is None else held.token

    def release(self, resource: str) -> None:
        with self._mutex:
            held = self._held.pop(resource, None)
        if held is None:
            return
        with translated(f"unlock {resource} (it lapses within {self.lease} s)"):
            self._release(keys=[self._key(resource)], args=[held.owner])

    def _renew_loop(self) -> None:
        # Renewal keeps its lease / 3 pace through an outage (no backoff): a lock can only be kept
        # by renewing it before it lapses, and a lapsed one is dropped at the first renewal after.
        outage = OutageLog("Redis lock renewal (held locks lapse unless it recovers in time)", logger)
        while not self._stopping.wait(self.lease / 3):
            try:
                self.renew_now()
            except Exception as error:  # the thread must outlive any failure
                outage.failed(error)
            else:
                outage.recovered()

    def renew_now(self) -> None:
        """Extend every lock held now by one lease (what the renewal thread does every lease / 3)."""
        with self._mutex:
            held = list(self._held.items())
        if not held:
            return
        with translated("renew locks"):
            kept = self._renew(keys=[self._key(r) for r, _ in held], args=[self._lease_ms, *(h.owner for _, h in held)])
        for (resource, lease), ok in zip(held, kept):
            if ok:
                continue
            with self._mutex:
                if self._held.get(resource) is lease:  # not released or taken again meanwhile
                    del self._held[resource]
                    logger.warning("lock on %s lapsed before it could be renewed; another node may hold it", resource)

    def close(self) -> None:
        """Stop renewal, release every lock this provider holds, and close the client if this
        provider made it."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        if self._renewer is not None:
            self._renewer.join()
        with self._mutex:
            held = list(self._held.items())
            self._held.clear()
        try:
            for resource, lease in held:
                self._release(keys=[self._key(resource)], args=[lease.owner])
        except redis.RedisError as error:
            logger.warning("could not release Redis locks on close; they lapse within %s s: %s", self.lease, error)
        finally:
            if self._owns_client:
                self._client.close()
