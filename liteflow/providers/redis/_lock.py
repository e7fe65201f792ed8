"""A :class:`LockProvider` on Redis: leased locks with renewal and fencing tokens, on one server
(or the master a Sentinel names) or on several independent servers (Redlock).

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

Several servers (Redlock)
    Given N independent masters, ``acquire`` runs the same script on all of them at once (each on
    its own thread, so a slow server delays no one) and holds the lock when a majority granted it
    within its validity: ``lease - time spent acquiring - drift`` (drift is ``lease * drift_factor
    + 2 ms``, for clocks running at different rates) must be positive. Otherwise it releases what
    it got on every server. Renewal extends the lock on every server; a lock that a majority no
    longer holds for us, or that no majority renewed before its validity ran out, is lost: dropped
    and logged at WARNING. ``release`` deletes it on every server that granted it, or may have.
    Calls raise :class:`ProviderUnavailableError` only when no majority answers. The fencing token is the
    highest counter among the granting servers, and the lower counters among them are raised to
    it before anyone can take the lock again on those servers, so tokens grow with grants while
    the servers keep their data. The timing assumptions and what they mean for LiteFlow are in
    the README (Redlock and Sentinel).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from liteflow.providers.spi import ConfigurationError, InvalidArgumentError, LeasedLockProvider, split_url

from ._common import CONNECT_TIMEOUT, SCHEMES, SOCKET_TIMEOUT, SentinelMaster, provider_error, split_hosts
from ._servers import LockServer, NotSent, Outcome, gather

logger = logging.getLogger("liteflow.providers.redis")

# KEYS: lock, fence counter. ARGV: owner, lease ms. Returns the fencing token, or 0 if taken.
# The owner token is new for every acquire, so finding it already set means this run is the
# driver's retry (after a timeout) of an acquire whose first run was applied: granted, not taken.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
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


# KEYS: fence counter. ARGV: token. Raises the counter to the token (never lowers it).
_RAISE_FENCE = """
if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 0
"""

_SCRIPTS = {"acquire": _ACQUIRE, "release": _RELEASE, "renew": _RENEW, "raise_fence": _RAISE_FENCE}
_DRIFT_MS = 2


@dataclass(eq=False)
class _Held:
    owner: str
    token: int
    valid_until: float  # time.monotonic() after which no majority is known to hold it for us
    servers: list[LockServer]  # those that granted it or may have: the ones its release goes to


class RedisLockProvider(LeasedLockProvider[_Held]):
    """Leased, renewed, owner-checked locks on Redis; see the module docstring for the guarantees.

    ``url_or_client`` is a ``redis://host:port/db`` URL (the provider owns and closes the client
    it makes), a ``redis.Redis`` client (left open on ``close``), a ``redis+sentinel://`` URL (the
    master a Sentinel names, followed across failovers), or several independent servers for
    Redlock: ``redis://a:6379,b:6379,c:6379/0`` or a list of URLs or clients. ``lease`` is in
    seconds. ``renew=False`` turns renewal off, so locks lapse after one lease even while held:
    for tests that stand in for a stalled node, not for production. ``socket_timeout`` and
    ``connect_timeout`` bound each command as for :class:`RedisQueueProvider`. ``drift_factor``
    is the share of the lease kept back for clock drift between the servers and this process.
    """

    def __init__(
        self,
        url_or_client: str | redis.Redis | Sequence[str | redis.Redis],
        *,
        prefix: str = "liteflow",
        lease: float = 10.0,
        renew: bool = True,
        socket_timeout: float = SOCKET_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        drift_factor: float = 0.01,
    ) -> None:
        super().__init__(lease=lease, logger=logger, what="Redis lock")
        if not 0 <= drift_factor < 0.5:
            raise InvalidArgumentError(f"drift_factor must be in [0, 0.5), got {drift_factor}")
        targets = _targets(url_or_client)
        self._servers: list[LockServer] = []
        try:
            for target in targets:
                self._servers.append(
                    LockServer(target, _SCRIPTS, threaded=len(targets) > 1, socket_timeout=socket_timeout,
                               connect_timeout=connect_timeout)
                )  # fmt: skip
        except BaseException:
            for server in self._servers:
                server.close()
            raise
        self.prefix = prefix
        self.quorum = len(self._servers) // 2 + 1
        self._lease_ms = max(1, round(lease * 1000))
        # How long a server may take to answer (connect and reply, tried twice): waiting less would
        # mistake a slow majority for an absent one.
        self._answer_bound = max(lease, 2 * (socket_timeout + connect_timeout))
        self._drift = lease * drift_factor + _DRIFT_MS / 1000
        self._fence_key = f"{prefix}:lock-fence"
        if renew:
            self._start_renewal("liteflow-redis-lock-renewal")

    @classmethod
    def from_url(cls, url: str) -> RedisLockProvider:
        """``redis://[:password@]host:port/db``, ``redis://a:6379,b:6379,c:6379/0`` (Redlock) or
        ``redis+sentinel://s1:26379,s2:26379/service/db``; LiteFlow options as query parameters
        (``?prefix=app&lease=15&drift_factor=0.01``), any others go to the driver."""
        clean, options = split_url(url, {"prefix": str, "lease": float, "drift_factor": float}, schemes=SCHEMES)
        return cls(clean, **options)

    @property
    def servers(self) -> list[str]:
        """The servers, as ``host:port`` (``sentinel:<service>`` for a Sentinel-managed master)."""
        return [server.name for server in self._servers]

    def _key(self, resource: str) -> str:
        return f"{self.prefix}:lock:{resource}"

    def acquire(self, resource: str) -> bool:
        owner = secrets.token_hex(16)
        started = time.monotonic()
        keys, args = [self._key(resource), self._fence_key], [owner, self._lease_ms]

        def decided(outcomes: list[Outcome]) -> bool:
            # Won, or lost for sure and known which way: refused by a majority (False), or out of
            # reach of one (unavailable). A failed server alone decides neither while others are out.
            won = sum(1 for outcome in outcomes if _granted(outcome))
            unanswered = sum(1 for outcome in outcomes if outcome is None)
            answered = sum(1 for outcome in outcomes if _answered(outcome))
            if won >= self.quorum:
                return True
            return won + unanswered < self.quorum and (answered >= self.quorum or answered + unanswered < self.quorum)

        outcomes = gather(self._servers, "acquire", keys, args, enough=decided, timeout=self._answer_bound)
        granted = [(server, int(outcome)) for server, outcome in zip(self._servers, outcomes) if _granted(outcome)]
        valid_until = started + self.lease - self._drift
        # Those that granted it, or may have (no answer yet, or an answer lost); not those that
        # refused, nor those it was never sent to. One server that did not answer has nothing.
        several = len(self._servers) > 1
        maybe = [
            server
            for server, outcome in zip(self._servers, outcomes)
            if _granted(outcome) or (several and not _answered(outcome) and not isinstance(outcome, NotSent))
        ]
        if len(granted) >= self.quorum and time.monotonic() < valid_until:
            token = max(fence for _, fence in granted)
            for server, fence in granted:
                if fence < token:
                    server.submit("raise_fence", [self._fence_key], [token])
            self._hold(resource, _Held(owner, token, valid_until, maybe))
            return True
        if maybe:  # give it back: each server of a Redlock runs the release after the acquire
            self._release_everywhere(resource, owner, maybe)
        answered = sum(1 for outcome in outcomes if _answered(outcome))
        if answered >= self.quorum:
            if len(granted) >= self.quorum:
                logger.warning("lock on %s was granted too late to be valid (lease %s s); not taken", resource,
                               self.lease)  # fmt: skip
            return False
        raise self._unavailable(f"lock {resource}", outcomes)

    def token(self, resource: str) -> int | None:
        """The fencing token of this provider's lock on ``resource``, or None if it does not hold
        it (never took it, released it, or found it lost at renewal)."""
        held = self._holding(resource)
        return None if held is None else held.token

    def _give_back(self, resource: str, held: _Held) -> None:
        outcomes = self._release_everywhere(resource, held.owner, held.servers)
        if sum(1 for outcome in outcomes if _answered(outcome)) < self.quorum:
            raise self._unavailable(f"unlock {resource} (it lapses within {self.lease} s)", outcomes)

    def _release_everywhere(self, resource: str, owner: str, servers: list[LockServer]) -> list[Outcome]:
        def enough(outcomes: list[Outcome]) -> bool:
            return sum(1 for outcome in outcomes if _answered(outcome)) >= self.quorum

        return gather(servers, "release", [self._key(resource)], [owner], enough=enough, timeout=self._answer_bound)

    def _unavailable(self, what: str, outcomes: list[Outcome]) -> Exception:
        errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        error = errors[0] if errors else redis.TimeoutError("no answer in time")
        if not isinstance(error, redis.RedisError):
            return error if isinstance(error, Exception) else RuntimeError(str(error))
        if len(self._servers) > 1:
            answered = sum(1 for outcome in outcomes if _answered(outcome))
            what = f"{what}: {answered} of {len(self._servers)} servers answered, {self.quorum} needed"
        failure = provider_error(what, error)
        failure.__cause__ = error
        return failure

    def _extend(self, held: list[tuple[str, _Held]]) -> None:
        """Raises :class:`ProviderUnavailableError` when no majority answered."""
        started = time.monotonic()

        def enough(outcomes: list[Outcome]) -> bool:
            answers = [outcome for outcome in outcomes if isinstance(outcome, list)]
            return all(sum(1 for kept in answers if kept[i]) >= self.quorum for i in range(len(held)))

        keys, args = [self._key(r) for r, _ in held], [self._lease_ms, *(h.owner for _, h in held)]
        outcomes = gather(self._servers, "renew", keys, args, enough=enough, timeout=self.lease / 3)
        answers = [outcome for outcome in outcomes if isinstance(outcome, list)]
        now = time.monotonic()
        for i, (resource, lease) in enumerate(held):
            kept = sum(1 for answer in answers if answer[i])
            if kept >= self.quorum and now < started + self.lease - self._drift:
                lease.valid_until = started + self.lease - self._drift
            elif len(self._servers) - (len(answers) - kept) < self.quorum or now >= lease.valid_until:
                self._lost(resource, lease)
        if len(answers) < self.quorum:
            raise self._unavailable("renew locks", outcomes)

    def _lost(self, resource: str, lease: _Held) -> None:
        # What is left of it on a minority of servers would only get in the way.
        if self._drop_lost(resource, lease) and len(self._servers) > 1:
            self._release_everywhere(resource, lease.owner, lease.servers)

    def health_details(self) -> dict[str, Any]:
        """Each server's state as its last command found it, and the majority needed; for
        :meth:`WorkflowHost.health`."""
        details: dict[str, Any] = {
            "servers": {server.name: server.state.as_dict() for server in self._servers},
            "quorum": self.quorum,
        }
        masters = [s.client.master_address() for s in self._servers if isinstance(s.client, SentinelMaster)]
        if masters:
            details["master"] = masters[0]
        return details

    def _close_backend(self) -> None:
        # The clients given are left open (see the class docstring).
        try:
            for resource, lease in self._forget_all():
                outcomes = self._release_everywhere(resource, lease.owner, lease.servers)
                if sum(1 for outcome in outcomes if _answered(outcome)) < self.quorum:
                    raise self._unavailable("release locks", outcomes)
        except Exception as error:
            logger.warning("could not release Redis locks on close; they lapse within %s s: %s", self.lease, error)
        finally:
            for server in self._servers:
                server.close()


def _granted(outcome: Outcome) -> bool:
    return isinstance(outcome, int) and outcome > 0


def _answered(outcome: Outcome) -> bool:
    return outcome is not None and not isinstance(outcome, BaseException)


def _targets(url_or_client: str | redis.Redis | Sequence[str | redis.Redis]) -> list[str | redis.Redis]:
    if isinstance(url_or_client, str):
        targets: list[str | redis.Redis] = list(split_hosts(url_or_client))
    elif isinstance(url_or_client, redis.Redis):
        targets = [url_or_client]
    elif isinstance(url_or_client, Sequence) and url_or_client:
        targets = [target for item in url_or_client for target in _targets(item)]
    else:
        raise ConfigurationError(f"expected Redis URL(s) or redis.Redis client(s), got {url_or_client!r}")
    if len(targets) % 2 == 0 and len(targets) > 1:
        logger.warning("Redlock on an even number of servers (%s) tolerates no more failures than on one fewer",
                       len(targets))  # fmt: skip
    return targets
