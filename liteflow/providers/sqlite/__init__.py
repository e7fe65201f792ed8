"""SQLite persistence for LiteFlow, with the standard library's ``sqlite3`` (no extra to install).

``SqlitePersistenceProvider("app.db")`` or, in ``configure_workflow_host``, the URL
``"sqlite:///app.db"`` (relative), ``"sqlite:////var/lib/app.db"`` (absolute) or
``"sqlite://:memory:"``.
"""

from ._provider import SqlitePersistenceProvider

__all__ = ["SqlitePersistenceProvider"]
