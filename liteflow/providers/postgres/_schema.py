"""The PostgreSQL schema, as numbered forward migrations shared by the three providers.

Everything lives in one PostgreSQL schema (``liteflow`` unless told otherwise), so several
applications, or tests, can share a database. ``<schema>.schema_version`` has one row per migration
applied. Every provider brings the schema up to date when it starts: each migration runs in its own
transaction that first takes a transaction-scoped advisory lock named after the schema
(``pg_advisory_xact_lock``), then re-reads the version, so hosts starting together on a new
database apply each migration exactly once and the others wait, then find nothing to do. A
migration is never edited once released: change the schema by appending one.

Times are ``timestamptz`` (microsecond precision, like Python's datetime); the ``record`` column
keeps the whole model as JSON text (see :mod:`liteflow.providers.spi`) and is what is read back.
It is ``text``, not ``jsonb``: jsonb rejects the ``NaN``/``Infinity`` that LiteFlow's serializer
writes for non-finite floats, rejects ``\\u0000`` in strings, and turns a float such as ``1e20``
into the integer ``100000000000000000000``, so data would not always come back as it was saved.
``record::jsonb`` still works in ad-hoc SQL for the (nearly all) records without those values.
Indexed columns duplicate the fields of the record that queries filter on.
"""

from __future__ import annotations

from typing import Any

import psycopg

from liteflow.providers.spi import ProviderError

_LOCK_CLASS = 0x4C46  # "LF": first key of the migration advisory lock, the schema's hash the second

_PERSISTENCE = (
    """
    CREATE TABLE {s}.workflow (
        id             text PRIMARY KEY,
        definition_id  text NOT NULL,
        version        integer NOT NULL,
        reference      text,
        status         text NOT NULL,
        next_execution timestamptz,
        create_time    timestamptz NOT NULL,
        complete_time  timestamptz,
        revision       bigint NOT NULL,
        record         text NOT NULL
    )
    """,
    # Only due-able instances are in this index, so the poller's query reads just what it returns.
    """
    CREATE INDEX workflow_runnable ON {s}.workflow (next_execution)
        WHERE status = 'runnable' AND next_execution IS NOT NULL
    """,
    # For purge; instances still running (no complete_time) stay out of it.
    "CREATE INDEX workflow_finished ON {s}.workflow (complete_time, status) WHERE complete_time IS NOT NULL",
    # For query_instances: each filter it is commonly given leads one index, and (create_time, id)
    # follow, so a page comes off the index already in the order asked for.
    "CREATE INDEX workflow_definition ON {s}.workflow (definition_id, create_time, id)",
    "CREATE INDEX workflow_reference ON {s}.workflow (reference, create_time, id) WHERE reference IS NOT NULL",
    "CREATE INDEX workflow_status ON {s}.workflow (status, create_time, id)",
    "CREATE INDEX workflow_created ON {s}.workflow (create_time, id)",
    """
    CREATE TABLE {s}.subscription (
        id              text PRIMARY KEY,
        workflow_id     text NOT NULL,
        event_name      text NOT NULL,
        event_key       text NOT NULL,
        subscribe_as_of timestamptz NOT NULL,
        record          text NOT NULL
    )
    """,
    "CREATE INDEX subscription_event ON {s}.subscription (event_name, event_key, subscribe_as_of)",
    "CREATE INDEX subscription_workflow ON {s}.subscription (workflow_id)",
    """
    CREATE TABLE {s}.event (
        id           text PRIMARY KEY,
        event_name   text NOT NULL,
        event_key    text NOT NULL,
        event_time   timestamptz NOT NULL,
        is_processed boolean NOT NULL,
        record       text NOT NULL
    )
    """,
    "CREATE INDEX event_by_key ON {s}.event (event_name, event_key, event_time, id)",
    # Every event is in exactly one of these two partial indexes: the unprocessed one stays small.
    "CREATE INDEX event_unprocessed ON {s}.event (event_time, id) WHERE NOT is_processed",
    "CREATE INDEX event_processed ON {s}.event (event_time) WHERE is_processed",
    # seq orders one instance's errors by insertion (its saves are serialized by the revision check).
    """
    CREATE TABLE {s}.execution_error (
        seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id          text NOT NULL UNIQUE,
        workflow_id text NOT NULL,
        record      text NOT NULL
    )
    """,
    "CREATE INDEX execution_error_workflow ON {s}.execution_error (workflow_id, seq)",
)

_QUEUE_AND_LOCK = (
    # One row per delivery: waiting (taken_by NULL, visible_at = when queued) or taken (taken_by =
    # the delivery's token, visible_at = when it is handed out again unless acknowledged first).
    """
    CREATE TABLE {s}.queue_item (
        id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        queue      text NOT NULL,
        item_id    text NOT NULL,
        visible_at timestamptz NOT NULL,
        taken_by   text
    )
    """,
    # At most one waiting row per id: enqueue of an id already waiting is a no-op (ON CONFLICT).
    "CREATE UNIQUE INDEX queue_item_waiting ON {s}.queue_item (queue, item_id) WHERE taken_by IS NULL",
    # dequeue reads the first visible row off this index; taken rows sit past "now" until they expire.
    "CREATE INDEX queue_item_next ON {s}.queue_item (queue, visible_at, id)",
    """
    CREATE TABLE {s}.lock_lease (
        resource   text PRIMARY KEY,
        owner      text NOT NULL,
        token      bigint NOT NULL,
        expires_at timestamptz NOT NULL
    )
    """,
    "CREATE INDEX lock_lease_owner ON {s}.lock_lease (owner)",
    "CREATE SEQUENCE {s}.lock_token",
)

_QUEUE_PRIORITY = (
    # Higher priority first, then by visible_at as before; existing rows get the default 0. The
    # index keeps its name: dequeue reads the first visible row off it, as before.
    "ALTER TABLE {s}.queue_item ADD COLUMN priority integer NOT NULL DEFAULT 0",
    "DROP INDEX {s}.queue_item_next",
    "CREATE INDEX queue_item_next ON {s}.queue_item (queue, priority DESC, visible_at, id)",
)

MIGRATIONS: list[tuple[str, ...]] = [_PERSISTENCE, _QUEUE_AND_LOCK, _QUEUE_PRIORITY]
"""Migration ``n`` (1-based) brings the schema from version ``n - 1`` to ``n``."""


def quoted(schema: str) -> str:
    """The schema as a quoted identifier (the name was checked by ``check_schema``)."""
    return f'"{schema}"'


def schema_version(connection: psycopg.Connection[Any], schema: str) -> int:
    """The number of migrations applied (0 for a schema that does not exist yet)."""
    exists = connection.execute("SELECT to_regclass(%s)", (f"{quoted(schema)}.schema_version",)).fetchone()
    if exists is None or exists[0] is None:
        return 0
    row = connection.execute(f"SELECT coalesce(max(version), 0) FROM {quoted(schema)}.schema_version").fetchone()
    return 0 if row is None else int(row[0])


def migrate(connection: psycopg.Connection[Any], schema: str, migrations: list[tuple[str, ...]] | None = None) -> int:
    """Apply the missing migrations on an autocommit connection; return the resulting version."""
    steps = MIGRATIONS if migrations is None else migrations
    target = len(steps)
    name = quoted(schema)
    version = schema_version(connection, schema)  # no lock needed when up to date (the usual case)
    while version < target:
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_CLASS, schema))
            connection.execute(f"CREATE SCHEMA IF NOT EXISTS {name}")
            connection.execute(
                f"CREATE TABLE IF NOT EXISTS {name}.schema_version"
                " (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            version = schema_version(connection, schema)  # another host may have migrated meanwhile
            if version < target:
                for statement in steps[version]:
                    connection.execute(statement.format(s=name))
                version += 1
                connection.execute(f"INSERT INTO {name}.schema_version (version) VALUES (%s)", (version,))
    if version > target:
        raise ProviderError(
            f"the PostgreSQL schema {schema!r} has version {version}, newer than this LiteFlow knows ({target});"
            " upgrade LiteFlow to use it"
        )
    return version
