"""The queue and lock contracts against the Azure Storage providers, plus what is particular to
them: redelivery after the visibility timeout, a lease lapsing when its holder stops renewing,
and samples/08-azure.py.

The server is Azurite (see tests/servers.py); set ``LITEFLOW_TEST_AZURE_CONNECTION_STRING`` to run
against another storage account instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("azure.storage.queue", reason='needs azure-storage-queue: pip install "liteflow-engine[azure]"')
pytest.importorskip("azure.storage.blob", reason='needs azure-storage-blob: pip install "liteflow-engine[azure]"')

from liteflow.core import InvalidArgumentError, LockProvider, QueueProvider, QueueType
from liteflow.core._models import new_id
from liteflow.providers.azure import AzureLockProvider, AzureQueueProvider
from liteflow.testing import LockContract, QueueContract

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


def test_a_lock_lapses_when_its_holder_stops_renewing(azure_connection_string: str, prefix: str) -> None:
    # Azure (and Azurite) accept leases of 15 to 60 s only, so this test takes about 15 s.
    container = f"{prefix}-locks"
    dead = AzureLockProvider(azure_connection_string, container=container, lease=15, renew=False)
    alive = AzureLockProvider(azure_connection_string, container=container, lease=15)
    other = AzureLockProvider(azure_connection_string, container=container, lease=15)
    try:
        stalled, renewed = new_id(), new_id()
        assert dead.acquire(stalled) and alive.acquire(renewed)
        started = time.monotonic()
        while not other.acquire(stalled):
            assert time.monotonic() - started < 18, "the lease of a holder that stopped renewing did not lapse"
            assert other.acquire(renewed) is False
            time.sleep(0.5)
        assert time.monotonic() - started >= 13
        # The renewing holder has kept its lock past one lease.
        assert other.acquire(renewed) is False
        dead.release(stalled)  # the dead node's late release must not free the new holder's lock
        assert alive.acquire(stalled) is False
    finally:
        for provider in (dead, alive, other):
            provider.close()


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
