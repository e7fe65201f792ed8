"""Helpers for testing LiteFlow and its providers.

The provider contract suites (:class:`PersistenceContract`, :class:`QueueContract`,
:class:`LockContract`) are pytest base classes: subclass one as ``Test...`` with a fixture
yielding your provider, and pytest runs the whole contract against it. They need pytest
(``pip install 'liteflow.core[test]'``), imported only when a suite is first used, so other
helpers in this package work without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .contracts import LockContract, PersistenceContract, QueueContract

__all__ = ["LockContract", "PersistenceContract", "QueueContract"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import contracts

        return getattr(contracts, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
