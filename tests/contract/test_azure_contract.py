"""The queue and lock contracts against the Azure Storage providers, plus what is particular to
them: redelivery after the visibility timeout and samples/08-azure.py. The lock's leases (lapsing
when its holder stops renewing) are checked by the leased-lock contract.

The server is Azurite (see tests/servers.py); set ``LITEFLOW_TEST_AZURE_CONNECTION_STRING`` to run
against another storage account instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("azure.storage.queue", reason='needs azure-storage-queue: pip install "liteflow-engine[azure]"')
pytest.importorskip("azure.storage.blob", reason='needs azure-storage-blob: pip install "liteflow-engine[azure]"')

from liteflow.core import InvalidArgumentError, LockProvider, QueueProvider, QueueType
from liteflow.core._models import new_id
from liteflow.providers.azure import AzureLockProvider, AzureQueueProvider
from liteflow.testing import LeasedLockContract, LockContract, QueueContract

try:
    from tests.servers import azure_connection_string
except ImportError:  # tests/ itself on sys.path (pytest run as a script)
    from servers import azure_connection_string  # type: ignore[no-redef]  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def unique_prefix() -> str:
    return f"lf{new_id()[:12]}"


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


class TestAzureQueue(QueueContract):
    honours_priority = False
    deduplicates = False
    preserves_order = False
    concurrent_items = 400  # every operation is an HTTP round trip to the emulator

    @pytest.fixture
    def queue(self, azure_connection_string: str, prefix: str) -> Iterator[QueueProvider]:
        provider = AzureQueueProvider(azure_connection_string, prefix=prefix)
        yield provider
        provider.close()


class TestAzureLock(LockContract):
    supports_concurrent_nodes = True

    @pytest.fixture
    def lock(self, azure_connection_string: str, prefix: str) -> Iterator[LockProvider]:
        provider = AzureLockProvider(azure_connection_string, container=f"{prefix}-locks")
        yield provider
        provider.close()

    @pytest.fixture
    def second_lock(self, azure_connection_string: str, prefix: str, lock: LockProvider) -> Iterator[LockProvider]:
        provider = AzureLockProvider(azure_connection_string, container=f"{prefix}-locks")
        yield provider
        provider.close()


class TestAzureLeasedLock(LeasedLockContract):
    # Azure (and Azurite) accept leases of 15 to 60 s only: the lapse takes about 15 s, and the
    # renewal test holds its lock for a lease and a half (four renewals), not three leases.
    lease = 15
    renewal_leases = 1.5
    fencing = False  # a blob lease has an id, no token that grows

    @pytest.fixture
    def make_leased_lock(self, azure_connection_string: str, prefix: str) -> Iterator[Callable[..., AzureLockProvider]]:
        made: list[AzureLockProvider] = []

        def make(*, renew: bool = True) -> AzureLockProvider:
            lease = int(self.lease)
            made.append(
                AzureLockProvider(azure_connection_string, container=f"{prefix}-locks", lease=lease, renew=renew)
            )
            return made[-1]

        yield make
        for provider in made:
            provider.close()


# -- Azure specifics ------------------------------------------------------------------------------------


def test_an_unacknowledged_item_reappears_after_its_visibility_timeout(
    azure_connection_string: str, prefix: str
) -> None:
    dead = AzureQueueProvider(azure_connection_string, prefix=prefix, visibility_timeout=1)
    alive = AzureQueueProvider(azure_connection_string, prefix=prefix, visibility_timeout=1)
    try:
        item = new_id()
        dead.enqueue(QueueType.WORKFLOW, item)
        assert dead.dequeue(QueueType.WORKFLOW, 1.0) == item
        taken = time.monotonic()
        assert alive.dequeue(QueueType.WORKFLOW, 0.3) is None  # hidden while "dead" works on it
        assert alive.dequeue(QueueType.WORKFLOW, 5.0) == item  # ... then handed out again
        assert time.monotonic() - taken >= 0.9
        alive.acknowledge(QueueType.WORKFLOW, item)
        dead.acknowledge(QueueType.WORKFLOW, item)  # its stale receipt is ignored
        assert alive.dequeue(QueueType.WORKFLOW, 1.5) is None  # deleted for good
    finally:
        dead.close()
        alive.close()


def test_queue_options_are_checked(azure_connection_string: str) -> None:
    for bad in ({"prefix": "Bad_Prefix"}, {"visibility_timeout": 0}, {"poll_min": 0.5, "poll_max": 0.1}):
        with pytest.raises(InvalidArgumentError):
            AzureQueueProvider(azure_connection_string, **bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        AzureLockProvider(azure_connection_string, lease=10)


# -- the sample -----------------------------------------------------------------------------------------


def test_sample_08_runs(azure_connection_string: str, tmp_path: Path) -> None:
    env = dict(os.environ, AZURE_STORAGE_CONNECTION_STRING=azure_connection_string)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, str(ROOT / "samples" / "08-azure.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for line in ("Hello world", "Goodbye", "captured_value = hello (complete)"):
        assert line in result.stdout, result.stdout
