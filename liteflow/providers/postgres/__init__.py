"""PostgreSQL persistence, queue and lock providers for LiteFlow (``pip install "liteflow-engine[postgres]"``).

``PostgresPersistenceProvider("postgresql://user@host/db")``, ``PostgresQueueProvider(...)`` and
``PostgresLockProvider(...)``, or in ``configure_workflow_host`` the URL
``"postgresql://user:password@host:port/database"`` (``postgres://`` too) as ``persistence_service``,
``queue_service`` or ``lock_service``. Options go in the query string and are taken out before
connecting: ``?schema=app`` for all three (default ``liteflow``; each application or test can use
its own), ``&visibility_timeout=60`` for the queue, ``&lease=15`` for the lock, ``&max_size=16`` for
the connection pools, ``&synchronous_commit=true`` for a queue or lock whose commits should wait
for their WAL flush (by default they do not: see their docstrings; the persistence provider always
waits). Every other
parameter goes to libpq (``?sslmode=require``, ...).

Each provider creates and migrates the schema it is given when it starts (see ``_schema``).
"""

try:
    import psycopg as _psycopg  # noqa: F401 - fail early, naming the extra
    import psycopg_pool as _psycopg_pool  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError('the PostgreSQL providers need psycopg 3: pip install "liteflow-engine[postgres]"') from error

from ._lock import PostgresLockProvider
from ._persistence import PostgresPersistenceProvider
from ._queue import PostgresQueueProvider

__all__ = ["PostgresLockProvider", "PostgresPersistenceProvider", "PostgresQueueProvider"]
