"""The provider SPI: everything needed to write a persistence, queue or lock provider.

This module is the stable, public surface for provider authors, third-party ones included. The
built-in providers (:mod:`liteflow.providers.sqlite`, ``postgres``, ``redis``, ``rabbitmq``,
``mongo``, ``azure``) import from here and from nothing private in :mod:`liteflow.core`, so a
provider written against this module uses exactly what they do. It re-exports, unchanged (from
:mod:`liteflow.core.spi`, the core's side of it):

- the contracts: :class:`PersistenceProvider`, :class:`QueueProvider` (with :class:`QueueType`),
  :class:`LockProvider`, and the helpers of the persistence contract (:class:`InstanceQuery`,
  :class:`ActivityCount`, :class:`ActivityCounter`);
- the models a provider stores (:class:`WorkflowInstance`, :class:`Event`,
  :class:`EventSubscription`, :class:`ExecutionError`, :class:`WorkflowStatus`) and
  :func:`utcnow`;
- the mapping between those models and plain JSON records (``*_to_record``, ``*_from_record``),
  :func:`read_instance` / :func:`read_event`, which quarantine what cannot be decoded, and
  :func:`save_rows` / :func:`event_row` for providers that keep rows in SQL tables, and
  :func:`json_text`, the compact encoder records are written with, and
  :func:`instance_record_text`, an instance's record as that text with its data encoded once per
  save;
- the errors a provider raises (:class:`ProviderError`, :class:`ProviderUnavailableError`, ...);
- :class:`Backoff` and :class:`OutageLog` for background loops that must survive outages;
- :class:`LeasedLockProvider`, the base of locks that lapse unless renewed (the renewal thread,
  the locks held, ``release`` and ``close``), so a lock provider keeps only what its backend does;
- :func:`split_url`, which takes a provider's own options out of its URL's query string;
- :data:`MAX_PRIORITY`, the range of queue priorities.

The contract test suites in :mod:`liteflow.testing` say what an implementation must do; subclass
them to test a new provider.
"""

from __future__ import annotations

from liteflow.core import spi as _core_spi
from liteflow.core.spi import *  # noqa: F403  # the names are core.spi's __all__, listed once there

__all__ = list(_core_spi.__all__)
