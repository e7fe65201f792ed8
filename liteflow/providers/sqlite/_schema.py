"""The SQLite schema, as numbered forward migrations.

The database's ``PRAGMA user_version`` is the number of migrations applied. Opening a store applies
the missing ones in order, each in its own ``BEGIN IMMEDIATE`` transaction that re-reads the version
first, so two processes opening a new file at once do not both apply a migration. A migration is
never edited once released: change the schema by appending one.

Times that are queried or ordered on are integer microseconds since the Unix epoch (UTC), so
comparisons are exact; the JSON ``record`` column keeps the full model with ISO-8601 times and is
what is read back. Indexed columns duplicate the fields of the record that queries filter on.
"""

from __future__ import annotations

import sqlite3

from liteflow.providers.spi import ProviderError

_V1 = (
    """
    CREATE TABLE workflow (
        id             TEXT PRIMARY KEY,
        definition_id  TEXT NOT NULL,
        version        INTEGER NOT NULL,
        reference      TEXT,
        status         TEXT NOT NULL,
        next_execution INTEGER,
        create_time    INTEGER NOT NULL,
        complete_time  INTEGER,
        revision       INTEGER NOT NULL,
        record         TEXT NOT NULL
    )
    """,
    # Only due-able instances are in this index, so the poller's query reads just what it returns.
    """
    CREATE INDEX workflow_runnable ON workflow (next_execution)
        WHERE status = 'runnable' AND next_execution IS NOT NULL
    """,
    # For purge. complete_time leads, not status: an index led by status tempts the planner away
    # from workflow_runnable; and instances still running (no complete_time) stay out of it.
    "CREATE INDEX workflow_finished ON workflow (complete_time, status) WHERE complete_time IS NOT NULL",
    """
    CREATE TABLE subscription (
        id              TEXT PRIMARY KEY,
        workflow_id     TEXT NOT NULL,
        event_name      TEXT NOT NULL,
        event_key       TEXT NOT NULL,
        subscribe_as_of INTEGER NOT NULL,
        record          TEXT NOT NULL
    )
    """,
    "CREATE INDEX subscription_event ON subscription (event_name, event_key, subscribe_as_of)",
    "CREATE INDEX subscription_workflow ON subscription (workflow_id)",
    """
    CREATE TABLE event (
        id           TEXT PRIMARY KEY,
        event_name   TEXT NOT NULL,
        event_key    TEXT NOT NULL,
        event_time   INTEGER NOT NULL,
        is_processed INTEGER NOT NULL,
        record       TEXT NOT NULL
    )
    """,
    "CREATE INDEX event_by_key ON event (event_name, event_key, event_time)",
    # Every event is in exactly one of these two partial indexes: together they cost what one
    # (is_processed, event_time) index would, and the unprocessed one stays small.
    "CREATE INDEX event_unprocessed ON event (event_time) WHERE is_processed = 0",
    "CREATE INDEX event_processed ON event (event_time) WHERE is_processed = 1",
    # seq is the rowid: a new row's rowid is larger than every row present, so it orders one
    # instance's errors by insertion without AUTOINCREMENT's extra write to sqlite_sequence.
    """
    CREATE TABLE execution_error (
        seq         INTEGER PRIMARY KEY,
        id          TEXT NOT NULL UNIQUE,
        workflow_id TEXT NOT NULL,
        record      TEXT NOT NULL
    )
    """,
    "CREATE INDEX execution_error_workflow ON execution_error (workflow_id, seq)",
)

# For query_instances: each filter it is commonly given leads one index, and create_time follows
# so that a page comes off the index in order (ties on create_time are sorted by id on the fly).
# workflow_status is led by status after all, so the poller's and purge's queries now name their
# indexes (INDEXED BY) rather than trust the planner.
_V2 = (
    "CREATE INDEX workflow_definition ON workflow (definition_id, create_time)",
    "CREATE INDEX workflow_reference ON workflow (reference) WHERE reference IS NOT NULL",
    "CREATE INDEX workflow_status ON workflow (status, create_time)",
    "CREATE INDEX workflow_created ON workflow (create_time)",
)

MIGRATIONS: list[tuple[str, ...]] = [_V1, _V2]
"""Migration ``n`` (1-based) brings the schema from version ``n - 1`` to ``n``."""


def schema_version(connection: sqlite3.Connection) -> int:
    version: int = connection.execute("PRAGMA user_version").fetchone()[0]
    return version


def migrate(connection: sqlite3.Connection, migrations: list[tuple[str, ...]] | None = None) -> int:
    """Apply the missing migrations on an autocommit connection; return the resulting version."""
    steps = MIGRATIONS if migrations is None else migrations
    target = len(steps)
    version = schema_version(connection)
    while version < target:
        connection.execute("BEGIN IMMEDIATE")
        try:
            version = schema_version(connection)  # another process may have migrated meanwhile
            if version < target:
                for statement in steps[version]:
                    connection.execute(statement)
                version += 1
                connection.execute(f"PRAGMA user_version = {version:d}")
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
    if version > target:
        raise ProviderError(
            f"the SQLite store has schema version {version}, newer than this LiteFlow knows ({target}); "
            "upgrade LiteFlow to open it"
        )
    return version
