"""Fixtures of the command-line tests: a store per module on a SQLite file and on PostgreSQL, and
``liteflow worker`` processes on it. (tests/cli is a package so that this conftest does not shadow
the ``conftest`` module other test directories import from.)"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .cli_harness import Backend, Worker


def _backend(name: str, directory: Path, postgres_url: str | None, schema: str | None) -> Backend:
    if name == "sqlite":
        return Backend(name, f"sqlite:///{directory / 'store.db'}", None, directory)
    assert postgres_url is not None
    url = f"{postgres_url}?schema={schema}"
    return Backend(name, url, f"{url}&lease=2", directory)  # a killed worker's locks lapse in 2 s


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """A fresh store per test module and backend: a SQLite file, or a PostgreSQL schema (with the
    lock in PostgreSQL too, shared by the worker and the commands)."""
    schema = None
    postgres_url = None
    if request.param == "postgres":
        postgres_url = request.getfixturevalue("postgres_url")
        psycopg = pytest.importorskip("psycopg")
        schema = f"lf_cli_{uuid.uuid4().hex[:8]}"
    found = _backend(request.param, tmp_path_factory.mktemp(f"cli-{request.param}"), postgres_url, schema)
    if request.param == "sqlite":
        found.host.persistence  # creates the file, which the reading commands expect to exist  # noqa: B018
    yield found
    found.close()
    if schema is not None:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="module")
def worker(backend: Backend) -> Iterator[Worker]:
    """One worker for all the tests of a module (and backend)."""
    running = Worker(backend)
    try:
        yield running
        assert running.stop() == 0, "".join(running.log)
    finally:
        running.kill()


@pytest.fixture
def start_worker(backend: Backend) -> Iterator[Callable[..., Worker]]:
    """Starts workers of a test's own (``start_worker("--stop-timeout", "1")``); none outlives the test."""
    started: list[Worker] = []

    def start(*args: str) -> Worker:
        started.append(Worker(backend, *args))
        return started[-1]

    yield start
    for running in started:
        running.kill()
