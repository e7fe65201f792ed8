"""Azure Storage queue and lock providers for LiteFlow (``pip install "liteflow-engine[azure]"``).

``AzureQueueProvider(connection_string)`` hands out work through Azure Storage queues (one per
queue type); ``AzureLockProvider(connection_string)`` locks resources with blob leases. Both take
a storage account connection string, such as the one the Azure portal shows under "Access keys"
or, for the Azurite emulator, ``"UseDevelopmentStorage=true"``.
"""

try:
    import azure.storage.blob as _blob  # noqa: F401 - fail early, naming the extra
    import azure.storage.queue as _queue  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError(
        'the Azure providers need azure-storage-queue and azure-storage-blob: pip install "liteflow-engine[azure]"'
    ) from error

from ._lock import AzureLockProvider
from ._queue import AzureQueueProvider

__all__ = ["AzureLockProvider", "AzureQueueProvider"]
