"""DBOS Transact on SQLite or PostgreSQL, the same workload as bench_sqlite.py and
bench_postgres.py, for comparison. Prints numbers; never passes or fails. Needs ``pip install dbos``.

    python bench/bench_dbos.py [--workflows 1000] [--repeat 3] [--samples 20] [--wal] [--json]
                               [--postgres postgresql://postgres@127.0.0.1:5432/test]

A workflow of three trivial ``@DBOS.step`` functions, ``N`` of them started with
``DBOS.start_workflow`` and waited for through their handles: workflows/s. Then send-to-recv
latency: a workflow parked in ``DBOS.recv`` and the time from the start of ``DBOS.send`` to the
return of ``recv`` (the counterpart of LiteFlow's publish-to-resume). The system database is a
SQLite file in a temporary directory, with DBOS's defaults otherwise: SQLite's rollback journal
and ``synchronous=FULL`` (an fsync per commit, durable across power loss). ``--wal`` switches every
connection to WAL with ``synchronous=NORMAL``, LiteFlow's default, for a like-for-like comparison.

``--postgres URL`` puts the system database on that PostgreSQL server instead, in a database of its
own (``dbos_bench``, created with psycopg before the run and dropped after), with the server's
settings (``synchronous_commit=on``); DBOS then waits for messages with ``LISTEN``/``NOTIFY``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from dbos import DBOS, DBOSConfig
from sqlalchemy import event
from sqlalchemy.engine import Engine


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@DBOS.step()
def noop() -> None:
    pass


@DBOS.workflow()
def three_steps() -> None:
    noop()
    noop()
    noop()


@DBOS.workflow()
def waits_for_message() -> float:
    DBOS.recv("go", timeout_seconds=60)
    return time.perf_counter()  # the workflow resumed: when recv returned


def throughput(count: int, starters: int = 1) -> float:
    started = time.perf_counter()
    if starters == 1:
        handles = [DBOS.start_workflow(three_steps) for _ in range(count)]
    else:  # several threads starting at once, as bench_postgres.py --starters does for LiteFlow
        with ThreadPoolExecutor(starters) as pool:
            shares = [count // starters + (n < count % starters) for n in range(starters)]
            parts = pool.map(lambda share: [DBOS.start_workflow(three_steps) for _ in range(share)], shares)
            handles = [handle for part in parts for handle in part]
    for handle in handles:
        handle.get_result()
    return count / (time.perf_counter() - started)


def use_wal() -> None:
    """WAL and synchronous=NORMAL on every SQLite connection DBOS opens (DBOS sets neither)."""

    @event.listens_for(Engine, "connect")
    def pragmas(connection: Any, record: Any) -> None:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")


DBOS_DATABASE = "dbos_bench"


def postgres_database(url: str, create: bool) -> str:
    """Drop the benchmark's own database on the server of ``url`` and, if ``create``, make it
    again; returns its URL (DBOS's system database)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DBOS_DATABASE} WITH (FORCE)")
        if create:
            conn.execute(f"CREATE DATABASE {DBOS_DATABASE}")
    return urlunsplit(urlsplit(url)._replace(path=f"/{DBOS_DATABASE}"))


def send_latency(samples: int) -> list[float]:
    latencies = []
    for _ in range(samples):
        handle = DBOS.start_workflow(waits_for_message)
        time.sleep(0.05)  # let it reach recv and park
        sent = time.perf_counter()
        DBOS.send(handle.workflow_id, "payload", "go")
        latencies.append((handle.get_result() - sent) * 1000)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workflows", type=int, default=1_000)
    parser.add_argument("--samples", type=int, default=20, help="send-to-recv samples (each waits a poll)")
    parser.add_argument("--repeat", type=int, default=3, help="throughput runs; the median is reported")
    parser.add_argument("--wal", action="store_true", help="WAL and synchronous=NORMAL instead of DBOS's defaults")
    parser.add_argument("--json", action="store_true", help="print one JSON line (used by bench_sqlite.py)")
    parser.add_argument("--postgres", metavar="URL", help="system database on this PostgreSQL server instead")
    parser.add_argument("--starters", type=int, default=1, help="threads calling DBOS.start_workflow")
    args = parser.parse_args()
    if args.wal:
        use_wal()
    if args.postgres:
        mode = f"database {DBOS_DATABASE}, server defaults (DBOS defaults)"
    elif args.wal:
        mode = "WAL, synchronous=NORMAL"
    else:
        mode = "rollback journal, synchronous=FULL (DBOS defaults)"

    logging.getLogger("dbos").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="dbos-bench-") as directory:
        path = Path(directory) / "dbos.sqlite"
        database = postgres_database(args.postgres, create=True) if args.postgres else f"sqlite:///{path}"
        config: DBOSConfig = {
            "name": "liteflow-bench",
            "system_database_url": database,
            "log_level": "WARNING",
        }
        DBOS(config=config)
        DBOS.launch()
        try:
            throughput(20)  # warm up
            rates = [throughput(args.workflows, args.starters) for _ in range(args.repeat)]
            latencies = send_latency(args.samples) if args.samples else []
        finally:
            DBOS.destroy()
            if args.postgres:
                postgres_database(args.postgres, create=False)

    result = {
        "version": _version(),
        "workflows": args.workflows,
        "mode": mode,
        "starters": args.starters,
        "rate": statistics.median(rates),
        "rates": rates,
        "send_recv_p50_ms": statistics.median(latencies) if latencies else None,
        "send_recv_p99_ms": percentile(latencies, 0.99) if latencies else None,
    }
    if args.json:
        print(json.dumps(result))
        return
    runs = ", ".join(f"{r:,.0f}" for r in rates)
    print(f"dbos {result['version']} {'postgresql' if args.postgres else 'sqlite'} ({mode})")
    print(f"dbos: {args.workflows} three-step workflows: {result['rate']:,.0f} workflows/s (median of {runs})")
    if latencies:
        print(
            f"dbos: send-to-recv p50 {result['send_recv_p50_ms']:.1f} ms, "
            f"p99 {result['send_recv_p99_ms']:.1f} ms ({len(latencies)} samples)"
        )


def _version() -> str:
    from importlib.metadata import version

    return version("dbos")


if __name__ == "__main__":
    main()
