"""What the Azure queue and lock providers share: name checks and error translation."""

from __future__ import annotations

import re

from azure.core.exceptions import AzureError, ServiceRequestError, ServiceResponseError

from liteflow.providers.spi import InvalidArgumentError, ProviderError, ProviderUnavailableError

# HTTP statuses meaning "not now": request timeout, throttled (server busy), server errors.
_UNAVAILABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def unavailable(error: AzureError) -> bool:
    """Whether an SDK error means the service could not be reached, did not answer, or is busy
    (as opposed to refusing the credentials or the request)."""
    if isinstance(error, ServiceRequestError | ServiceResponseError):  # timeouts included
        return True
    return getattr(error, "status_code", None) in _UNAVAILABLE_STATUSES


def provider_error(what: str, error: AzureError) -> ProviderError:
    """The :class:`ProviderError` to raise (from ``error``) for a failure to do ``what``."""
    if unavailable(error):
        return ProviderUnavailableError(f"Azure Storage is unavailable to {what}: {error}")
    return ProviderError(f"Azure Storage failed to {what}: {error}")


# Queue and container names: 3-63 characters, lowercase letters, digits and single hyphens, starting
# and ending with a letter or digit.
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")


def check_name(name: str, what: str) -> str:
    if not _NAME.match(name):
        raise InvalidArgumentError(
            f"{what} {name!r} is not a valid Azure Storage name: 3-63 lowercase letters, digits and single "
            "hyphens, starting and ending with a letter or digit"
        )
    return name
