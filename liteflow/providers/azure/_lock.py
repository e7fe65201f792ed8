"""A :class:`LockProvider` on Azure blob leases.

One blob per resource in a container (``liteflow-locks`` by default), created empty the first
time the resource is locked. Locking a resource is acquiring a lease on its blob.

Guarantees
    Azure grants a blob one active lease at a time, so exactly one caller on any node wins
    ``acquire``; the others get ``LeaseAlreadyPresent`` and ``acquire`` returns False. Each lease
    has its own random id, and ``release`` needs that id, so a node can never free another's lock.
    A background thread renews every lease this provider holds every ``lease / 3`` seconds, so a
    lock stays held for as long as its node is alive and can reach the storage account; a node
    that dies (or stalls past the lease) loses its locks at most ``lease`` seconds after the last
    renewal. A lease found lost at renewal is dropped and logged at WARNING; LiteFlow's revision
    check on save makes a save by a node that lost its lock fail rather than overwrite.

Leases last 15 to 60 seconds (Azure's allowed range); 15 by default, so a dead node's locks come
free soonest. ``close`` releases every lock held. The blobs stay (they are empty): delete the
container's old blobs from time to time if many distinct ids are locked.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobLeaseClient, BlobServiceClient, ContainerClient, LinearRetry

from liteflow.providers.spi import InvalidArgumentError, LeasedLockProvider, ProviderError

from ._common import check_name, provider_error

logger = logging.getLogger("liteflow.providers.azure")

MIN_LEASE, MAX_LEASE = 15, 60


class AzureLockProvider(LeasedLockProvider[BlobLeaseClient]):
    """Leased, renewed locks on Azure blobs; see the module docstring for the guarantees.

    ``lease`` is in whole seconds, 15 to 60. ``renew=False`` turns renewal off, so locks lapse
    after one lease even while held: for tests that stand in for a dead node, not for production.
    ``client_options`` go to ``BlobServiceClient.from_connection_string``; by default requests
    time out after 3 s and are retried twice after about 1 s, so a renewal ends well within a lease.
    """

    lease: int

    def __init__(
        self,
        connection_string: str,
        *,
        container: str = "liteflow-locks",
        lease: int = MIN_LEASE,
        renew: bool = True,
        create_container: bool = True,
        **client_options: Any,
    ) -> None:
        if isinstance(lease, bool) or not isinstance(lease, int) or not MIN_LEASE <= lease <= MAX_LEASE:
            raise InvalidArgumentError(f"lease must be a whole number of seconds from 15 to 60, got {lease!r}")
        super().__init__(lease=lease, logger=logger, what="Azure lock")
        # Every call must end well within one lease, or a renewal stuck in the SDK's default retry
        # (15 s, then more) or timeouts (60 s) would lose the lock: two quick retries, short timeouts.
        client_options.setdefault("retry_policy", LinearRetry(backoff=1, retry_total=2, random_jitter_range=1))
        client_options.setdefault("connection_timeout", 3)
        client_options.setdefault("read_timeout", 3)
        try:
            self._service = BlobServiceClient.from_connection_string(connection_string, **client_options)
        except (ValueError, AzureError) as error:
            raise ProviderError(f"bad Azure Storage connection string: {error}") from error
        self._container: ContainerClient = self._service.get_container_client(check_name(container, "container"))
        if create_container:
            try:
                self._container.create_container()
            except ResourceExistsError:
                pass
            except AzureError as error:
                self._service.close()
                raise provider_error(f"create container {container}", error) from error
        if renew:
            self._start_renewal("liteflow-azure-lock-renewal")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(container={self._container.container_name!r})"

    def acquire(self, resource: str) -> bool:
        if self._holding(resource) is not None:
            return False
        blob = self._container.get_blob_client(resource)
        lease = BlobLeaseClient(blob)  # a fresh random lease id
        try:
            for _ in range(3):
                try:
                    lease.acquire(lease_duration=self.lease)
                    break
                except ResourceNotFoundError:
                    # First lock of this resource: make its blob (one racer wins), then retry.
                    with contextlib.suppress(ResourceExistsError):
                        blob.upload_blob(b"", overwrite=False)
            else:
                raise ProviderError(f"the lock blob of {resource} keeps disappearing")
        except ResourceExistsError:  # LeaseAlreadyPresent: someone holds it
            return False
        except AzureError as error:
            raise provider_error(f"lock {resource}", error) from error
        self._hold(resource, lease)
        return True

    def _give_back(self, resource: str, lease: BlobLeaseClient) -> None:
        try:
            lease.release()
        except AzureError as error:
            # Lost already (lapsed and taken), or unreachable: either way it lapses by itself.
            logger.warning("could not release the lock on %s (it lapses within %s s): %s", resource, self.lease, error)

    def _extend(self, held: list[tuple[str, BlobLeaseClient]]) -> None:
        """Renew every lease in ``held``. Leases the service says are lost are dropped; if others
        could not be renewed (the service did not answer), raises the :class:`ProviderError` of the
        first after trying them all."""
        failure: ProviderError | None = None
        for resource, lease in held:
            try:
                lease.renew()
            except ResourceNotFoundError as error:
                self._drop_lost(resource, lease, error)
            except AzureError as error:
                if getattr(error, "status_code", None) == 409:  # lease id mismatch: another node has it
                    self._drop_lost(resource, lease, error)
                elif failure is None:
                    failure = provider_error(f"renew the lock on {resource}", error)
                    failure.__cause__ = error
        if failure is not None:
            raise failure

    def _close_backend(self) -> None:
        for resource, lease in self._forget_all():
            self._give_back(resource, lease)
        self._service.close()
