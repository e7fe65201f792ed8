"""The floor under workload (a): what plain Python costs for the work any engine with LiteFlow's
guarantees must do per workflow, with none of the engine around it. Prints numbers; never passes
or fails.

Per workflow: a new id and a record of the instance with one pointer (the same fields as LiteFlow's
record, about 2 KB of JSON at the end); the record encoded and stored; the id handed to a worker
through a queue; the worker decodes the record, and for each of the three steps calls the step
(the middle one with two inputs and one output through lambdas, as in ``compare.py``), appends a
finished pointer with its times, and encodes and stores the whole record again: a save between
every two steps, four in all, as in LiteFlow. No locks, no revision check, no payload limit, no
lifecycle, no error handling: a floor, not an engine.

    python bench/floor.py [--workflows 10000] [--store memory|sqlite|postgres] [--workers 4]

``(d)`` runs each workflow's start and its turn in one thread; ``(a)`` starts from one thread while
``--workers`` threads take the ids from a ``queue.Queue``, as the host does. Compare the figures
with ``compare.py``'s for the same store on the same machine: 2.5x 4af9752's (a) is reachable only
if it is below what this prints.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

POINTER_FIELDS = dict.fromkeys(
    ("sleep_until", "persistence_data", "event_name", "event_key", "event_id", "event_data", "context_item", "outcome")
)
ENCODE = json.JSONEncoder(separators=(",", ":")).encode
DECODE = json.JSONDecoder().decode
IDS = random.Random()


def new_id() -> str:
    return f"{IDS.getrandbits(128):032x}"  # as LiteFlow: uuid4 reads os.urandom, which lets go of the GIL


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


def pointer(step_id: int, predecessor: str | None) -> dict[str, Any]:
    started = now()
    return {
        "id": new_id(),
        "step_id": step_id,
        "active": False,
        "status": "complete",
        "start_time": started,
        "end_time": now(),
        "predecessor_id": predecessor,
        "event_published": False,
        "retry_count": 0,
        "retries_before_resume": 0,
        "children": [],
        "scope": [],
        **POINTER_FIELDS,
    }


def add(input1: int, input2: int) -> int:
    return input1 + input2


STEPS: list[Callable[[dict[str, Any]], None]] = [
    lambda data: None,
    lambda data: data.__setitem__("value3", add((lambda d: d["value1"])(data), (lambda d: d["value2"])(data))),
    lambda data: None,
]


class MemoryStore:
    def __init__(self) -> None:
        self._records: dict[str, str] = {}
        self._lock = threading.Lock()

    def put(self, workflow_id: str, text: str, new: bool) -> None:
        with self._lock:
            self._records[workflow_id] = text

    def get(self, workflow_id: str) -> str:
        with self._lock:
            return self._records[workflow_id]


class SqliteStore:
    def __init__(self, path: str) -> None:
        self._path = path
        self._local = threading.local()
        with self._connection() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE IF NOT EXISTS instances (id TEXT PRIMARY KEY, record TEXT NOT NULL)")

    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA synchronous=NORMAL")
        return db

    def put(self, workflow_id: str, text: str, new: bool) -> None:
        db = self._connection()
        if new:
            db.execute("INSERT INTO instances (id, record) VALUES (?, ?)", (workflow_id, text))
        else:
            db.execute("UPDATE instances SET record = ? WHERE id = ?", (text, workflow_id))

    def get(self, workflow_id: str) -> str:
        row = self._connection().execute("SELECT record FROM instances WHERE id = ?", (workflow_id,)).fetchone()
        return str(row[0])


class PostgresStore:
    """One connection per thread, autocommit: each statement its own (synchronous) commit."""

    def __init__(self, url: str) -> None:
        import psycopg

        self._connect = lambda: psycopg.connect(url, autocommit=True)
        self._local = threading.local()
        self._table = f"liteflow_floor_{os.getpid()}"
        self._all: list[Any] = []
        self._connection().execute(f"CREATE TABLE {self._table} (id TEXT PRIMARY KEY, record TEXT NOT NULL)")

    def _connection(self) -> Any:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
            self._all.append(db)
        return db

    def put(self, workflow_id: str, text: str, new: bool) -> None:
        if new:
            self._connection().execute(f"INSERT INTO {self._table} (id, record) VALUES (%s, %s)", (workflow_id, text))
        else:
            self._connection().execute(f"UPDATE {self._table} SET record = %s WHERE id = %s", (text, workflow_id))

    def get(self, workflow_id: str) -> str:
        row = self._connection().execute(f"SELECT record FROM {self._table} WHERE id = %s", (workflow_id,)).fetchone()
        return str(row[0])

    def close(self) -> None:
        self._connection().execute(f"DROP TABLE {self._table}")
        for db in self._all:
            db.close()


def start(store: Any) -> str:
    workflow_id = new_id()
    customer = {"name": "Ada Lovelace", "tier": "gold", "tags": ["a", "b"]}
    data = {"value1": 2, "value2": 3, "value3": 0, "customer": customer}
    record = {
        "id": workflow_id,
        "workflow_definition_id": "WithData",
        "version": 1,
        "status": "runnable",
        "create_time": now(),
        "revision": 0,
        "data": {"$t": "object", "c": "compare:Data", "v": data},
        "execution_pointers": [pointer(0, None)],
    }
    store.put(workflow_id, ENCODE(record), True)
    return workflow_id


def turn(store: Any, workflow_id: str) -> None:
    record = DECODE(store.get(workflow_id))
    data = record["data"]["v"]
    pointers = record["execution_pointers"]
    pointers.clear()
    for step_id, step in enumerate(STEPS):
        step(data)
        pointers.append(pointer(step_id, pointers[-1]["id"] if pointers else None))
        record["revision"] += 1
        if step_id == len(STEPS) - 1:
            record["status"], record["complete_time"] = "complete", now()
        store.put(workflow_id, ENCODE(record), False)


def one_thread(store: Any, count: int) -> tuple[float, float]:
    cpu, began = time.process_time(), time.perf_counter()
    for _ in range(count):
        turn(store, start(store))
    return count / (time.perf_counter() - began), (time.process_time() - cpu) / count * 1e6


def threaded(store: Any, count: int, workers: int) -> tuple[float, float]:
    ids: queue.Queue[str | None] = queue.Queue()

    def work() -> None:
        while (workflow_id := ids.get()) is not None:
            turn(store, workflow_id)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    cpu, began = time.process_time(), time.perf_counter()
    for _ in range(count):
        ids.put(start(store))
    for _ in threads:
        ids.put(None)
    for thread in threads:
        thread.join()
    return count / (time.perf_counter() - began), (time.process_time() - cpu) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workflows", type=int, default=10_000)
    parser.add_argument("--store", choices=("memory", "sqlite", "postgres"), default="memory")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    print(f"floor, {args.store}, {args.workflows:,} workflows; load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as directory:
        for name, run in (("(d) one thread", one_thread), ("(a) 1 starter", threaded)):
            store: Any = MemoryStore()
            if args.store == "sqlite":
                store = SqliteStore(os.path.join(directory, f"{name[1]}.db"))
            elif args.store == "postgres":
                store = PostgresStore(
                    os.environ.get("LITEFLOW_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
                )
            rate, cpu = run(store, args.workflows) if run is one_thread else run(store, args.workflows, args.workers)
            if hasattr(store, "close"):
                store.close()
            print(f"  {name:16} {rate:9,.0f} wf/s  {cpu:7,.0f} µs CPU per workflow")


if __name__ == "__main__":
    main()
