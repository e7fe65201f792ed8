"""MongoDB persistence for LiteFlow (``pip install "liteflow-engine[mongo]"``).

``MongoPersistenceProvider("mongodb://localhost:27017/", "liteflow")`` or, in
``configure_workflow_host``, the URL ``"mongodb://host:port/database"`` (the database defaults to
``liteflow``; ``?collection_prefix=app_`` puts a prefix before the collection names). It needs no
replica set: a save is atomic through an outbox kept inside the instance document (see
``liteflow.providers.mongo._provider``).
"""

try:
    import pymongo as _pymongo  # noqa: F401 - fail early, naming the extra
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError('the MongoDB provider needs pymongo: pip install "liteflow-engine[mongo]"') from error

from ._provider import MongoPersistenceProvider

__all__ = ["MongoPersistenceProvider"]
