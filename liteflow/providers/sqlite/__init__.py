"""SQLite persistence and locks for LiteFlow, with the standard library's ``sqlite3`` (no extra to install).

``SqlitePersistenceProvider("app.db")`` or, in ``configure_workflow_host``, the URL
``"sqlite:///app.db"`` (relative), ``"sqlite:////var/lib/app.db"`` (absolute) or
``"sqlite://:memory:"``.

``SqliteLockProvider("app.db")`` (URL ``"sqlite:///app.db?lease=10"``) keeps leased locks in the
file, so that hosts in several processes of one machine can share it; it is the default lock of a
host whose store is a SQLite file.
"""

from ._lock import SqliteLockProvider
from ._provider import SqlitePersistenceProvider

__all__ = ["SqliteLockProvider", "SqlitePersistenceProvider"]
