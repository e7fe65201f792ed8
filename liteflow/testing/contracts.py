"""Provider contract test suites: pytest base classes every provider's tests subclass.

Each suite is a class whose ``test_*`` methods check one promise of a provider contract in
:mod:`liteflow.core` (``PersistenceProvider``, ``QueueProvider``, ``LockProvider``). To check a
provider, subclass the suite under a name starting with ``Test`` and supply its fixture::

    import pytest
    from liteflow.testing import PersistenceContract

    class TestMyPersistence(PersistenceContract):
        @pytest.fixture
        def persistence(self):
            provider = MyPersistenceProvider(...)  # on an empty store
            yield provider
            provider.close()

``QueueContract`` needs a ``queue`` fixture; ``LockContract`` needs ``lock`` and ``second_lock``
(another node on the same backend); ``LeasedLockContract``, for locks that lapse unless renewed
(a :class:`~liteflow.providers.spi.LeasedLockProvider`), needs ``make_leased_lock``, a factory
of nodes with a short lease. Class attributes such as ``deduplicates`` or
``supports_concurrent_nodes`` declare what a provider can do; the suites' docstrings list them.

The fault suites (``QueueFaultContract``, ``LockFaultContract``, ``PersistenceFaultContract``)
check what a provider does when its backend is cut or black-holed and then restored; each also
needs a ``fault_proxy`` fixture (a :class:`~liteflow.testing.FaultProxy` the provider connects
through).
"""

from __future__ import annotations

try:
    import pytest
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("liteflow.testing.contracts needs pytest: pip install 'liteflow-engine[test]'") from e

# The suites' asserts are in this package, not in the user's test modules: have pytest rewrite
# them too, so a failure shows the compared values.
pytest.register_assert_rewrite(
    "liteflow.testing._persistence_contract",
    "liteflow.testing._queue_contract",
    "liteflow.testing._lock_contract",
    "liteflow.testing._leased_lock_contract",
    "liteflow.testing._quarantine_contract",
    "liteflow.testing._fault_contract",
)

from ._fault_contract import LockFaultContract, PersistenceFaultContract, QueueFaultContract  # noqa: E402
from ._leased_lock_contract import LeasedLockContract  # noqa: E402
from ._lock_contract import LockContract  # noqa: E402
from ._persistence_contract import PersistenceContract  # noqa: E402
from ._queue_contract import QueueContract  # noqa: E402

__all__ = [
    "LeasedLockContract",
    "LockContract",
    "LockFaultContract",
    "PersistenceContract",
    "PersistenceFaultContract",
    "QueueContract",
    "QueueFaultContract",
]
