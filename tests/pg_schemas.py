"""PostgreSQL schemas for the tests, handed out empty and migrated when one is spare.

Creating a schema and running LiteFlow's migrations takes 0.1 to 0.4 s (a dozen DDL statements,
each committed), and about a hundred fast-tier tests each want a schema of their own. So a schema
a test has finished with is emptied (its rows deleted, its sequences restarted) and handed to the
next test instead of being dropped, provided it still has exactly the tables, columns, indexes and
migrations of a freshly migrated schema; anything else (an extra table, a missing index, a newer
version, a big table that would leave many dead rows behind) is dropped, as before.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from liteflow.providers.postgres._schema import migrate

_BIG = 1000
"""A schema whose tables held more rows than this is dropped rather than emptied."""

_SHAPE = """
SELECT c.relname, c.relkind::text, a.attname, a.atttypid::integer
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = %s
"""


def new_name() -> str:
    return f"lf_test_{uuid.uuid4().hex[:8]}"


def _shape(conn: psycopg.Connection[Any], name: str) -> tuple[frozenset[tuple[Any, ...]], tuple[int, ...]]:
    """What a schema holds (relations with their columns) and the migrations recorded in it."""
    relations = frozenset(tuple(row) for row in conn.execute(_SHAPE, (name,)).fetchall())
    if not any(row[0] == "schema_version" for row in relations):
        return relations, ()
    versions = conn.execute(f'SELECT version FROM "{name}".schema_version ORDER BY version').fetchall()
    return relations, tuple(row[0] for row in versions)


class SchemaPool:
    """Spare migrated schemas, empty, for the ``schema`` fixture of tests/conftest.py."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.spare: list[str] = []
        with psycopg.connect(url, autocommit=True) as conn:  # the first spare, and what every spare must match
            name = new_name()
            migrate(conn, name)
            self._reference = _shape(conn, name)
            self.spare.append(name)

    def take(self) -> str:
        """An empty migrated schema if one is spare, else a new name (the provider migrates it)."""
        return self.spare.pop() if self.spare else new_name()

    def give_back(self, conn: psycopg.Connection[Any], name: str) -> None:
        """Empty ``name`` and keep it for the next test if it is as migrated; drop it otherwise."""
        if not self._empty_if_pristine(conn, name):
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            return
        self.spare.append(name)

    def close(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            for name in self.spare:
                conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        self.spare.clear()

    def _empty_if_pristine(self, conn: psycopg.Connection[Any], name: str) -> bool:
        shape = _shape(conn, name)
        if shape != self._reference:
            return False
        tables = {row[0] for row in shape[0] if row[1] == "r"} - {"schema_version"}
        sequences = {row[0] for row in shape[0] if row[1] == "S"}
        conn.execute("SET lock_timeout = '2s'")  # a connection a test left open must not hang the run
        try:
            with conn.transaction():
                deleted = sum(conn.execute(f'DELETE FROM "{name}"."{table}"').rowcount for table in sorted(tables))
                for sequence in sorted(sequences):
                    conn.execute(f'ALTER SEQUENCE "{name}"."{sequence}" RESTART')
        except psycopg.errors.LockNotAvailable:
            return False
        return deleted <= _BIG
