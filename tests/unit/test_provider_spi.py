"""The provider SPI (:mod:`liteflow.providers.spi`) is the one public surface provider authors use:
its names are pinned here, and the built-in providers import nothing private from
:mod:`liteflow.core` except through it."""

from __future__ import annotations

import re
from pathlib import Path

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
        "instance_to_record",
        "json_text",
        "read_event",
        "read_instance",
        "save_rows",
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
    """spi.py itself is the bridge to the private core modules, so it is the one file allowed."""
    offenders = [
        f"{path.relative_to(PROVIDERS)}:{number}: {line.strip()}"
        for path in sorted(PROVIDERS.rglob("*.py"))
        if path != PROVIDERS / "spi.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if PRIVATE_CORE.search(line)
    ]
    assert offenders == []
    assert (PROVIDERS / "sqlite" / "_provider.py").exists()  # the scan looked where the providers are
