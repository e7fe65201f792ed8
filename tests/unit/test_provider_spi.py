"""The provider SPI (:mod:`liteflow.providers.spi`) is the one public surface provider authors use:
its names are pinned here, and the built-in providers import nothing private from
:mod:`liteflow.core` except through it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import liteflow.providers
import liteflow.providers.spi as spi

PROVIDERS = Path(liteflow.providers.__file__).resolve().parent

# the same pattern as `grep -rn "liteflow.core._" liteflow/providers`
PRIVATE_CORE = re.compile(r"liteflow.core._")


def test_the_spi_names_are_pinned() -> None:
    assert spi.__all__ == [
        "MAX_PRIORITY",
        "ActivityCount",
        "ActivityCounter",
        "Backoff",
        "ConcurrencyError",
        "ConfigurationError",
        "Event",
        "EventNotFoundError",
        "EventSubscription",
        "ExecutionError",
        "InstanceQuery",
        "InvalidArgumentError",
        "InvalidOperationError",
        "LeasedLockProvider",
        "LiteFlowError",
        "LockProvider",
        "OutageLog",
        "PersistenceProvider",
        "ProviderError",
        "ProviderUnavailableError",
        "QueueProvider",
        "QueueType",
        "SerializationError",
        "WorkflowInstance",
        "WorkflowNotFoundError",
        "WorkflowStatus",
        "error_from_record",
        "error_to_record",
        "event_row",
        "event_to_record",
        "instance_record_text",
        "instance_to_record",
        "json_text",
        "read_event",
        "read_instance",
        "save_rows",
        "split_url",
        "subscription_from_record",
        "subscription_to_record",
        "utcnow",
    ]


def test_every_spi_name_exists() -> None:
    for name in spi.__all__:
        assert hasattr(spi, name), name


def test_the_spi_reexports_the_core_objects_unchanged() -> None:
    import liteflow.core

    shared = [name for name in spi.__all__ if name in liteflow.core.__all__]
    assert shared  # the contracts, models and errors are public in liteflow.core too
    for name in shared:
        assert getattr(spi, name) is getattr(liteflow.core, name), name


def test_no_provider_imports_a_private_core_module() -> None:
    """Not even spi.py: it re-exports :mod:`liteflow.core.spi`, the core's public side of the SPI."""
    offenders = [
        f"{path.relative_to(PROVIDERS)}:{number}: {line.strip()}"
        for path in sorted(PROVIDERS.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if PRIVATE_CORE.search(line)
    ]
    assert offenders == []
    assert (PROVIDERS / "sqlite" / "_provider.py").exists()  # the scan looked where the providers are


def test_the_spi_is_the_cores_public_spi() -> None:
    import liteflow.core.spi as core_spi

    assert core_spi.__all__ == spi.__all__
    for name in spi.__all__:
        assert getattr(spi, name) is getattr(core_spi, name), name


def test_split_url_takes_out_the_providers_options() -> None:
    options = {"prefix": str, "lease": float}
    clean, values = spi.split_url("redis://h:1/0?prefix=app&lease=1.5&ssl_cert_reqs=none", options, schemes=["redis"])
    assert (clean, values) == ("redis://h:1/0?ssl_cert_reqs=none", {"prefix": "app", "lease": 1.5})
    assert spi.split_url("sqlite+pysqlite:///a.db?lease=2", options, schemes=["sqlite", "sqlite+"])[1] == {"lease": 2.0}
    for url, problem in [
        ("redis://h/0?lease=soon", "bad value for 'lease'"),
        ("rediss://h/0", "not a redis:// URL"),
        ("redis+x://h/0", "not a redis:// URL"),
    ]:
        with pytest.raises(spi.ConfigurationError, match=re.escape(problem)):
            spi.split_url(url, options, schemes=["redis"])
    with pytest.raises(spi.ConfigurationError, match="unknown option 'colour'.*known: prefix, lease"):
        spi.split_url("redis://h/0?colour=red", options, schemes=["redis"], others="refuse")
