"""Provider URLs: taking a provider's own options out of a URL's query string."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ._errors import ConfigurationError


def split_url(
    url: str,
    options: Mapping[str, Callable[[str], Any]],
    *,
    schemes: Collection[str],
    others: Literal["keep", "refuse"] = "keep",
) -> tuple[str, dict[str, Any]]:
    """Take a provider's own query parameters out of ``url``.

    Args:
        url: the URL, such as ``redis://host:6379/0?prefix=app&lease=15``.
        options: option name -> converter (``str``, ``float``, ...); a ``ValueError`` from a
            converter makes the value bad.
        schemes: the schemes accepted; one ending in ``+`` (``"sqlite+"``) accepts any scheme that
            starts with it (``sqlite+pysqlite``).
        others: what to do with the query parameters not in ``options``: ``"keep"`` them in the
            URL returned (they are the driver's), or ``"refuse"`` them.

    Returns:
        The URL without those options, and their converted values by name.

    Raises:
        ConfigurationError: another scheme, a bad value, or an unknown option refused.
    """
    parts = urlsplit(url)
    if not any(parts.scheme == s or (s.endswith("+") and parts.scheme.startswith(s)) for s in schemes):
        names = " or ".join(f"{scheme}://" for scheme in schemes if not scheme.endswith("+"))
        raise ConfigurationError(f"not {'an' if names[0] in 'aeiou' else 'a'} {names} URL: {url!r}")
    ours: dict[str, Any] = {}
    theirs: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in options:
            try:
                ours[name] = options[name](value)
            except ValueError as error:
                raise ConfigurationError(f"bad value for {name!r} in {url!r}") from error
        elif others == "keep":
            theirs.append((name, value))
        else:
            raise ConfigurationError(f"unknown option {name!r} in {url!r}; known: {', '.join(options)}")
    return urlunsplit(parts._replace(query=urlencode(theirs))), ours
