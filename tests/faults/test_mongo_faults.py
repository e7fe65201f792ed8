"""The persistence fault contract on MongoDB (SecantusDB, see tests/servers.py) through a FaultProxy;
error translation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("pymongo", reason='needs pymongo: pip install "liteflow.core[mongo]"')

import pymongo
from pymongo import errors as mongo_errors

from liteflow.core import ProviderError, ProviderUnavailableError
from liteflow.core._models import new_id
from liteflow.providers.mongo import MongoPersistenceProvider
from liteflow.providers.mongo._provider import _translated, _with_timeouts
from liteflow.testing import FaultProxy, PersistenceFaultContract

try:
    from tests.servers import mongo_url
except ImportError:  # tests/ itself on sys.path (pytest run as a script)
    from servers import mongo_url  # type: ignore[no-redef]  # noqa: F401

# Short timeouts, so that a black-holed server is given up on within a few seconds.
TIMEOUTS = "directConnection=true&serverSelectionTimeoutMS=2000&connectTimeoutMS=1000&socketTimeoutMS=1500"


@pytest.fixture
def database(mongo_url: str) -> Iterator[str]:
    """A fresh database name, dropped afterwards."""
    name = f"liteflow_test_{new_id()[:12]}"
    yield name
    client: Any = pymongo.MongoClient(mongo_url)
    try:
        client.drop_database(name)
    finally:
        client.close()


class TestMongoPersistenceFaults(PersistenceFaultContract):
    @pytest.fixture
    def fault_proxy(self, mongo_url: str) -> Iterator[FaultProxy]:
        with FaultProxy.for_url(mongo_url, default_port=27017) as proxy:
            yield proxy

    @pytest.fixture
    def persistence(self, fault_proxy: FaultProxy, mongo_url: str, database: str) -> Iterator[MongoPersistenceProvider]:
        url = fault_proxy.url(mongo_url.partition("?")[0].rstrip("/")) + f"/?{TIMEOUTS}"
        provider = MongoPersistenceProvider(url, database)
        yield provider
        fault_proxy.restore()
        provider.close()


def test_default_timeouts_unless_given() -> None:
    assert _with_timeouts("mongodb://h/db", {}) == {
        "serverSelectionTimeoutMS": 5000,
        "connectTimeoutMS": 5000,
        "socketTimeoutMS": 15000,
    }
    chosen = _with_timeouts("mongodb://h/db?sockettimeoutms=100", {"serverSelectionTimeoutMS": 7})
    assert chosen == {"serverSelectionTimeoutMS": 7, "connectTimeoutMS": 5000}


@pytest.mark.parametrize(
    ("error", "is_unavailable"),
    [
        (mongo_errors.AutoReconnect("connection closed"), True),
        (mongo_errors.NetworkTimeout("timed out"), True),
        (mongo_errors.ServerSelectionTimeoutError("no servers"), True),
        (mongo_errors.ExecutionTimeout("operation exceeded time limit", 50), True),
        (mongo_errors.OperationFailure("out of disk space", 14031), True),
        (mongo_errors.OperationFailure("not primary", 10107), True),
        (mongo_errors.OperationFailure("shutdown in progress", 91), True),
        (mongo_errors.OperationFailure("unauthorized", 13), False),
        (mongo_errors.OperationFailure("bad value", 2), False),
        (mongo_errors.ConfigurationError("bad option"), False),
    ],
)
def test_driver_errors_map_to_the_right_provider_error(error: Exception, is_unavailable: bool) -> None:
    with pytest.raises(ProviderError) as raised:
        with _translated("test"):
            raise error
    assert isinstance(raised.value, ProviderUnavailableError) is is_unavailable
    assert raised.value.__cause__ is error
