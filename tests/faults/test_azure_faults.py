"""The queue and lock fault contracts on Azure Storage (Azurite, see tests/servers.py) through a
FaultProxy; error translation."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

pytest.importorskip("azure.storage.queue", reason='needs the Azure SDK: pip install "liteflow.core[azure]"')

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from liteflow.core import ProviderError, ProviderUnavailableError
from liteflow.core._models import new_id
from liteflow.providers.azure import AzureLockProvider, AzureQueueProvider
from liteflow.providers.azure._common import provider_error
from liteflow.testing import FaultProxy, LockFaultContract, QueueFaultContract

try:
    from tests.servers import azure_connection_string
except ImportError:  # tests/ itself on sys.path (pytest run as a script)
    from servers import azure_connection_string  # type: ignore[no-redef]  # noqa: F401


def _endpoint_port(connection_string: str, service: str) -> int:
    found = re.search(rf"{service}Endpoint=https?://[^:/;]+:(\d+)", connection_string)
    if found is None:
        pytest.skip(f"no {service} endpoint with a port in the connection string")
    return int(found.group(1))


def _through(connection_string: str, service: str, proxy: FaultProxy) -> str:
    """The connection string with one service's endpoint moved to the proxy."""
    port = _endpoint_port(connection_string, service)
    return re.sub(rf"({service}Endpoint=https?://)[^:/;]+:{port}", rf"\g<1>127.0.0.1:{proxy.port}", connection_string)


class TestAzureQueueFaults(QueueFaultContract):
    @pytest.fixture
    def fault_proxy(self, azure_connection_string: str) -> Iterator[FaultProxy]:
        with FaultProxy("127.0.0.1", _endpoint_port(azure_connection_string, "Queue")) as proxy:
            yield proxy

    @pytest.fixture
    def queue(self, fault_proxy: FaultProxy, azure_connection_string: str) -> Iterator[AzureQueueProvider]:
        connection_string = _through(azure_connection_string, "Queue", fault_proxy)
        provider = AzureQueueProvider(connection_string, prefix=f"lf{new_id()[:12]}", read_timeout=1)
        yield provider
        fault_proxy.restore()
        provider.close()


class TestAzureLockFaults(LockFaultContract):
    @pytest.fixture
    def fault_proxy(self, azure_connection_string: str) -> Iterator[FaultProxy]:
        with FaultProxy("127.0.0.1", _endpoint_port(azure_connection_string, "Blob")) as proxy:
            yield proxy

    @pytest.fixture
    def lock(self, fault_proxy: FaultProxy, azure_connection_string: str) -> Iterator[AzureLockProvider]:
        connection_string = _through(azure_connection_string, "Blob", fault_proxy)
        provider = AzureLockProvider(connection_string, container=f"lf{new_id()[:12]}-locks", lease=60, read_timeout=1)
        yield provider
        fault_proxy.restore()
        provider.close()


def _http_error(status: int) -> HttpResponseError:
    error = HttpResponseError(f"status {status}")
    error.status_code = status
    return error


@pytest.mark.parametrize(
    ("error", "is_unavailable"),
    [
        (ServiceRequestError("connection refused"), True),
        (ServiceResponseError("read timed out"), True),
        (_http_error(503), True),
        (_http_error(500), True),
        (_http_error(429), True),
        (ClientAuthenticationError("bad key"), False),
        (_http_error(400), False),
        (_http_error(404), False),
    ],
)
def test_sdk_errors_map_to_the_right_provider_error(error: HttpResponseError, is_unavailable: bool) -> None:
    translated = provider_error("test", error)
    assert isinstance(translated, ProviderError)
    assert isinstance(translated, ProviderUnavailableError) is is_unavailable
