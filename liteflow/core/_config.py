"""``configure_workflow_host`` and the resolution of providers given as instances or URLs.

A URL's scheme names its provider through the entry-point group ``liteflow.providers``: an entry
named ``<kind>.<scheme>`` (``queue.redis``, ``lock.postgresql``; kind is ``persistence``, ``queue`` or
``lock``) points at the provider class or factory, and its extra, if any, is the one to install for
its driver (``liteflow.providers.redis:RedisQueueProvider.from_url [redis]``). So a third-party
package adds ``foo://`` just by being installed with an entry point ``queue.foo``. The scheme looked
up is the part before any ``+`` (``redis+sentinel://`` is ``redis``).

The built-in schemes are declared there too (pyproject.toml), but are resolved from the tables below
first, so they work from a source tree without installed metadata and no other package can take
them over; a test keeps the tables and pyproject.toml the same. Entry points are read once, and a
module is imported only when its scheme is used, so a missing driver only matters to those who use it.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ._errors import ConfigurationError, ProviderError
from ._host import WorkflowHost
from ._memory import LocalLockProvider, MemoryPersistenceProvider, SingleNodeQueueProvider
from ._options import HostOptions
from ._providers import LockProvider, PersistenceProvider, QueueProvider

Entry = tuple[str, str, str | None]

# scheme -> (module, factory attribute, pip extra): the built-in schemes, as declared in pyproject.toml.
_PERSISTENCE_URLS: dict[str, Entry] = {
    "memory": ("liteflow.core._memory", "MemoryPersistenceProvider", None),
    "sqlite": ("liteflow.providers.sqlite", "SqlitePersistenceProvider.from_url", None),
    "postgresql": ("liteflow.providers.postgres", "PostgresPersistenceProvider.from_url", "postgres"),
    "postgres": ("liteflow.providers.postgres", "PostgresPersistenceProvider.from_url", "postgres"),
    "mongodb": ("liteflow.providers.mongo", "MongoPersistenceProvider.from_url", "mongo"),
}
_QUEUE_URLS: dict[str, Entry] = {
    "memory": ("liteflow.core._memory", "SingleNodeQueueProvider", None),
    "redis": ("liteflow.providers.redis", "RedisQueueProvider.from_url", "redis"),
    "amqp": ("liteflow.providers.rabbitmq", "RabbitMQQueueProvider.from_url", "rabbitmq"),
    "postgresql": ("liteflow.providers.postgres", "PostgresQueueProvider.from_url", "postgres"),
    "postgres": ("liteflow.providers.postgres", "PostgresQueueProvider.from_url", "postgres"),
}
_LOCK_URLS: dict[str, Entry] = {
    "memory": ("liteflow.core._memory", "LocalLockProvider", None),
    "sqlite": ("liteflow.providers.sqlite", "SqliteLockProvider.from_url", None),
    "redis": ("liteflow.providers.redis", "RedisLockProvider.from_url", "redis"),
    "postgresql": ("liteflow.providers.postgres", "PostgresLockProvider.from_url", "postgres"),
    "postgres": ("liteflow.providers.postgres", "PostgresLockProvider.from_url", "postgres"),
}


# scheme -> URL options bounding one call to the server, and the share of provider_timeout each gets
# (a Redis command is retried once, so each try gets half; a PostgreSQL call may first wait for a
# connection, then run its statement).
_TIMEOUT_OPTIONS: dict[str, tuple[tuple[str, float], ...]] = {
    "postgresql": (("connect_timeout", 0.5), ("statement_timeout", 1.0)),
    "postgres": (("connect_timeout", 0.5), ("statement_timeout", 1.0)),
    "redis": (("socket_timeout", 0.5),),
    "rediss": (("socket_timeout", 0.5),),
    "redis+sentinel": (("socket_timeout", 0.5),),
    "amqp": (("publish_timeout", 1.0),),
    "amqps": (("publish_timeout", 1.0),),
}


def with_provider_timeout(url: str, seconds: float) -> str:
    """``url`` with the host's ``provider_timeout`` as its call timeouts, where it sets none."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    given = {name for name, _ in query}
    options = _TIMEOUT_OPTIONS.get(parts.scheme, ())
    added = [(name, f"{seconds * share:g}") for name, share in options if name not in given]
    return urlunsplit(parts._replace(query=urlencode(query + added))) if added else url


@functools.cache
def _registered() -> dict[tuple[str, str], Entry]:
    """(kind, scheme) -> entry, for every ``liteflow.providers`` entry point of the installed packages."""
    found: dict[tuple[str, str], Entry] = {}
    for point in entry_points(group="liteflow.providers"):
        kind, _, scheme = point.name.partition(".")
        # An extra only makes a `pip install "liteflow-engine[...]"` hint for our own distribution.
        ours = point.dist is not None and point.dist.name == "liteflow-engine"
        extra = point.extras[0] if ours and point.extras else None
        found.setdefault((kind, scheme), (point.module, point.attr, extra))
    return found


def _schemes(kind: str, table: dict[str, Entry]) -> dict[str, Entry]:
    """The built-in ``table``, then the schemes installed packages register for ``kind``."""
    schemes = dict(table)
    for (registered_kind, scheme), entry in _registered().items():
        if registered_kind == kind:
            schemes.setdefault(scheme, entry)
    return schemes


def _from_url(kind: str, url: str, table: dict[str, Entry]) -> Any:
    scheme = urlsplit(url).scheme.split("+")[0]
    schemes = table if scheme in table else _schemes(kind, table)
    if scheme not in schemes:
        known = ", ".join(f"{s}://" for s in schemes)
        raise ConfigurationError(f"no {kind} provider for URL {url!r}; supported: {known}")
    module_name, attribute, extra = schemes[scheme]
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        hint = f'pip install "liteflow-engine[{extra}]"' if extra else "check your installation"
        raise ProviderError(f"the {scheme} {kind} provider needs a driver that is not installed: {hint}") from error
    factory: Any = module
    for part in attribute.split("."):
        factory = getattr(factory, part)
    return factory() if url.startswith("memory:") else factory(url)


def _resolve(kind: str, value: Any, base: type, table: dict[str, Entry], timeout: float) -> tuple[Any, bool]:
    """The provider and whether the host owns it (made it, so must close it)."""
    if isinstance(value, str):
        return _from_url(kind, with_provider_timeout(value, timeout), table), True
    if not isinstance(value, base):
        raise ConfigurationError(f"{kind} provider must be a {base.__name__} or a URL string, got {value!r}")
    return value, False


def _default_lock(persistence: PersistenceProvider) -> LockProvider:
    lock = persistence.default_lock()
    return LocalLockProvider() if lock is None else lock


def configure_workflow_host(
    persistence_service: PersistenceProvider | str | None = None,
    queue_service: QueueProvider | str | None = None,
    lock_service: LockProvider | str | None = None,
    *,
    options: HostOptions | None = None,
    **option_values: Any,
) -> WorkflowHost:
    """Create a :class:`WorkflowHost`.

    Each provider may be an instance or a URL (``"memory://"``, ``"sqlite:///app.db"``, ...);
    omitted ones are fresh in-memory providers owned by this host, except the lock of a store
    that several processes may share: on a SQLite file it is a ``SqliteLockProvider`` in the same
    file, so hosts in several processes on it never run one workflow at once. Keyword options are
    the fields of :class:`HostOptions` (durations as timedeltas or seconds).
    """
    host_options = HostOptions.from_kwargs(options, **option_values)  # bad options fail before connecting
    timeout = host_options.provider_timeout.total_seconds()
    owned: list[Any] = []

    def provider(kind: str, value: Any, base: type, table: dict[str, Entry], default: Callable[[], Any]) -> Any:
        if value is None:
            made, own = default(), True
        else:
            made, own = _resolve(kind, value, base, table, timeout)
        if own:
            owned.append(made)
        return made

    persistence = provider(
        "persistence", persistence_service, PersistenceProvider, _PERSISTENCE_URLS, MemoryPersistenceProvider
    )
    queue = provider("queue", queue_service, QueueProvider, _QUEUE_URLS, SingleNodeQueueProvider)
    # A store shared by processes brings a lock they share (SQLite's lives in its file).
    lock = provider("lock", lock_service, LockProvider, _LOCK_URLS, lambda: _default_lock(persistence))
    return WorkflowHost(persistence, queue, lock, host_options, owned=tuple(owned))
