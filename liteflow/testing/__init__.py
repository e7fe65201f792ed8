"""Helpers for testing workflows and providers.

:class:`WorkflowTestHost` runs workflows to completion in the calling thread on a
:class:`ManualClock`, so a workflow with a three-day delay is tested in milliseconds.

The provider contract suites (:class:`PersistenceContract`, :class:`QueueContract`,
:class:`LockContract`, :class:`LeasedLockContract`) are pytest base classes: subclass one as ``Test...`` with a fixture
yielding your provider, and pytest runs the whole contract against it. They need pytest
(``pip install 'liteflow-engine[test]'``), imported only when a suite is first used, so the other
helpers in this package work without it.

:class:`FaultProxy` sits between a provider and its server on a loopback port and cuts or
black-holes the connection on demand, for testing what a provider does when its backend fails;
the fault suites (:class:`QueueFaultContract`, :class:`LockFaultContract`,
:class:`PersistenceFaultContract`) use it to check that a provider fails fast, typed, and recovers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._host import ManualClock, WorkflowTestHost
from ._proxy import FaultProxy

if TYPE_CHECKING:
    from .contracts import (
        LeasedLockContract,
        LockContract,
        LockFaultContract,
        PersistenceContract,
        PersistenceFaultContract,
        QueueContract,
        QueueFaultContract,
    )

__all__ = [
    "FaultProxy",
    "LeasedLockContract",
    "LockContract",
    "LockFaultContract",
    "ManualClock",
    "PersistenceContract",
    "PersistenceFaultContract",
    "QueueContract",
    "QueueFaultContract",
    "WorkflowTestHost",
]

_CONTRACTS = {
    "LeasedLockContract",
    "LockContract",
    "LockFaultContract",
    "PersistenceContract",
    "PersistenceFaultContract",
    "QueueContract",
    "QueueFaultContract",
}


def __getattr__(name: str) -> Any:
    if name in _CONTRACTS:
        from . import contracts

        return getattr(contracts, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
