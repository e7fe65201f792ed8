"""What the Redis queue and lock share: making a client from a URL, and reading replies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis

from liteflow.core._errors import ConfigurationError


def split_url(url: str, options: dict[str, Callable[[str], Any]]) -> tuple[str, dict[str, Any]]:
    """Take LiteFlow's own query parameters (``options``: name -> parser) out of a ``redis://``
    URL; the rest of the URL, driver options included, goes to ``redis.Redis.from_url``."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigurationError(f"not a redis:// URL: {url!r}")
    ours: dict[str, Any] = {}
    theirs: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in options:
            try:
                ours[name] = options[name](value)
            except ValueError as error:
                raise ConfigurationError(f"bad value for {name!r} in {url!r}") from error
        else:
            theirs.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(theirs))), ours


def client_from(url_or_client: str | redis.Redis) -> tuple[redis.Redis, bool]:
    """The client, and whether the provider made it (and so must close it)."""
    if isinstance(url_or_client, str):
        return redis.Redis.from_url(url_or_client), True
    if not isinstance(url_or_client, redis.Redis):
        raise ConfigurationError(f"expected a redis:// URL or a redis.Redis client, got {url_or_client!r}")
    return url_or_client, False


def text(value: Any) -> str:
    """A reply as text, whether or not the client was made with ``decode_responses``."""
    return value.decode() if isinstance(value, bytes) else str(value)
