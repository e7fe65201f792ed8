"""What the Redis queue and lock share: making a client from a URL (one server, several servers for
Redlock, or a master found through Sentinel), translating its errors, and reading replies."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import redis
import redis.sentinel
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from liteflow.providers.spi import ConfigurationError, ProviderError, ProviderUnavailableError, split_url

SENTINEL_SCHEME = "redis+sentinel"
SCHEMES = ("redis", "rediss", "unix", SENTINEL_SCHEME)
"""The schemes of a Redis URL, for :func:`split_url`."""
SOCKET_TIMEOUT = 5.0
"""Default seconds a command waits for Redis's answer (a blocking ``BLMOVE`` waits at most 0.25 s)."""
CONNECT_TIMEOUT = 5.0
"""Default seconds to open a connection."""
_HEALTH_CHECK_INTERVAL = 15
"""A connection idle this long is pinged before use, so one dropped meanwhile is replaced first."""
# Replies meaning "Redis cannot do it now": out of memory, failed to persist to disk (a full disk),
# a read-only replica, loading its data, busy running a script, master down, cluster reconfiguring.
_UNAVAILABLE_REPLIES = ("OOM", "MISCONF", "READONLY", "LOADING", "BUSY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN")

# The driver turns some of those replies into classes (and strips the prefix from the message).
_UNAVAILABLE_ERRORS = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
)


def unavailable(error: redis.RedisError) -> bool:
    """Whether a driver error means Redis is unreachable, not answering, full or read-only (as
    opposed to refusing the credentials or the command)."""
    if isinstance(error, redis.AuthenticationError | redis.exceptions.AuthorizationError):
        return False
    if isinstance(error, _UNAVAILABLE_ERRORS):
        return True
    return isinstance(error, redis.ResponseError) and str(error).startswith(_UNAVAILABLE_REPLIES)


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn driver failures into :class:`ProviderError`, or :class:`ProviderUnavailableError` when
    Redis is unreachable, not answering, full or read-only (the original as ``__cause__``)."""
    try:
        yield
    except redis.RedisError as error:
        raise provider_error(what, error) from error


def provider_error(what: str, error: redis.RedisError) -> ProviderError:
    """The :class:`ProviderError` to raise (from ``error``) for a failure to do ``what``."""
    if unavailable(error):
        return ProviderUnavailableError(f"Redis is unavailable to {what}: {error}")
    return ProviderError(f"Redis failed to {what}: {error}")


def client_from(
    url_or_client: str | redis.Redis,
    *,
    socket_timeout: float = SOCKET_TIMEOUT,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> tuple[redis.Redis, bool]:
    """The client, and whether the provider made it (and so must close it).

    A client made from a URL waits at most ``socket_timeout`` for an answer and ``connect_timeout``
    to connect (``?socket_timeout=`` and ``?socket_connect_timeout=`` in the URL win), and retries a
    failed command once, soon: enough to replace a connection dropped by a server restart, and
    short enough that an unreachable server is reported within a few timeouts. A client given is
    used as it is: give it timeouts, or a hung server hangs its callers.
    """
    if not socket_timeout > 0 or not connect_timeout > 0:
        raise ConfigurationError(
            f"timeouts must be positive, got socket_timeout={socket_timeout}, connect_timeout={connect_timeout}"
        )
    if isinstance(url_or_client, str) and url_or_client.startswith(f"{SENTINEL_SCHEME}:"):
        return _sentinel_master(url_or_client, socket_timeout, connect_timeout), True
    if isinstance(url_or_client, str):
        if len(split_hosts(url_or_client)) > 1:
            raise ConfigurationError(
                f"{url_or_client!r} names several servers: only the lock takes several (Redlock); "
                f"give the queue one server or a {SENTINEL_SCHEME}:// URL"
            )
        client = redis.Redis.from_url(
            url_or_client,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            health_check_interval=_HEALTH_CHECK_INTERVAL,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=1),
        )
        return client, True
    if not isinstance(url_or_client, redis.Redis):
        raise ConfigurationError(f"expected a redis:// URL or a redis.Redis client, got {url_or_client!r}")
    return url_or_client, False


def text(value: Any) -> str:
    """A reply as text, whether or not the client was made with ``decode_responses``."""
    return value.decode() if isinstance(value, bytes) else str(value)


_SENTINEL_OPTIONS = {"socket_timeout": float, "socket_connect_timeout": float, "sentinel_password": str}


def split_hosts(url: str) -> list[str]:
    """A ``redis://`` URL naming several servers (``redis://a:6379,b:6379/0``) as one URL per
    server, each keeping the credentials, database and query; a URL naming one server as itself."""
    parts = urlsplit(url)
    credentials, at, hosts = parts.netloc.rpartition("@")
    if "," not in hosts or parts.scheme == SENTINEL_SCHEME:  # a Sentinel's addresses name one master
        return [url]
    names = [host.strip() for host in hosts.split(",")]
    if not all(names):
        raise ConfigurationError(f"empty server name in {url!r}")
    return [urlunsplit(parts._replace(netloc=f"{credentials}{at}{host}")) for host in names]


class SentinelMaster(redis.Redis):
    """A client of the master a Sentinel names; it follows failovers (redis-py's
    ``SentinelConnectionPool``), and closing it also closes its connections to the sentinels."""

    sentinels: Any = None  # the redis.sentinel.Sentinel that found the master
    service: str = ""

    def close(self) -> None:
        super().close()
        if self.sentinels is not None:
            self.sentinels.close()

    def master_address(self) -> str | None:
        """``host:port`` of the master last found through the sentinels, or None before that."""
        pool: Any = self.connection_pool
        address = pool.master_address
        return None if address is None else f"{address[0]}:{address[1]}"


def _sentinel_master(url: str, socket_timeout: float, connect_timeout: float) -> SentinelMaster:
    """``redis+sentinel://[:password@]s1:26379,s2:26379/service[/db]`` as a client of that master."""
    parts = urlsplit(url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    sentinels: list[tuple[str, int]] = []
    for host in hosts.split(","):
        name, _, port = host.strip().rpartition(":")
        try:
            sentinels.append((name or host.strip(), int(port) if name else 26379))
        except ValueError as error:
            raise ConfigurationError(f"bad sentinel address {host!r} in {url!r}") from error
    path = [part for part in parts.path.split("/") if part]
    if not 1 <= len(path) <= 2 or not path[0] or not hosts:
        raise ConfigurationError(f"expected {SENTINEL_SCHEME}://host:port[,host:port...]/service[/db], got {url!r}")
    try:
        db = int(path[1]) if len(path) == 2 else 0
    except ValueError as error:
        raise ConfigurationError(f"bad database number in {url!r}") from error
    _, options = split_url(url, _SENTINEL_OPTIONS, schemes=[SENTINEL_SCHEME], others="refuse")
    username, _, password = credentials.partition(":")
    timeouts = {
        "socket_timeout": options.get("socket_timeout", socket_timeout),
        "socket_connect_timeout": options.get("socket_connect_timeout", connect_timeout),
    }
    sentinel_module: Any = redis.sentinel  # untyped
    sentinel = sentinel_module.Sentinel(
        sentinels, sentinel_kwargs={**timeouts, "password": options.get("sentinel_password")}
    )
    client: SentinelMaster = sentinel.master_for(
        path[0],
        redis_class=SentinelMaster,
        db=db,
        username=unquote(username) or None,
        password=unquote(password) or None,
        health_check_interval=_HEALTH_CHECK_INTERVAL,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=1),
        **timeouts,
    )
    client.sentinels, client.service = sentinel, path[0]
    return client
