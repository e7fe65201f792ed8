"""DBOS Transact on SQLite, the same workload as bench_sqlite.py, for comparison. Prints numbers;
never passes or fails. Needs ``pip install dbos``.

    python bench/bench_dbos.py [--workflows 1000] [--repeat 3] [--samples 20] [--wal] [--json]

A workflow of three trivial ``@DBOS.step`` functions, ``N`` of them started with
``DBOS.start_workflow`` and waited for through their handles: workflows/s. Then send-to-recv
latency: a workflow parked in ``DBOS.recv`` and the time from the start of ``DBOS.send`` to the
return of ``recv`` (the counterpart of LiteFlow's publish-to-resume). The system database is a
SQLite file in a temporary directory, with DBOS's defaults otherwise: SQLite's rollback journal
and ``synchronous=FULL`` (an fsync per commit, durable across power loss). ``--wal`` switches every
connection to WAL with ``synchronous=NORMAL``, LiteFlow's default, for a like-for-like comparison.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

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


def throughput(count: int) -> float:
    started = time.perf_counter()
    handles = [DBOS.start_workflow(three_steps) for _ in range(count)]
    for handle in handles:
        handle.get_result()
    return count / (time.perf_counter() - started)


def use_wal() -> None:
    """WAL and synchronous=NORMAL on every SQLite connection DBOS opens (DBOS sets neither)."""

    @event.listens_for(Engine, "connect")
    def pragmas(connection: Any, record: Any) -> None:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")


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
    args = parser.parse_args()
    if args.wal:
        use_wal()
    mode = "WAL, synchronous=NORMAL" if args.wal else "rollback journal, synchronous=FULL (DBOS defaults)"

    logging.getLogger("dbos").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="dbos-bench-") as directory:
        path = Path(directory) / "dbos.sqlite"
        config: DBOSConfig = {
            "name": "liteflow-bench",
            "system_database_url": f"sqlite:///{path}",
            "log_level": "WARNING",
        }
        DBOS(config=config)
        DBOS.launch()
        try:
            throughput(20)  # warm up
            rates = [throughput(args.workflows) for _ in range(args.repeat)]
            latencies = send_latency(args.samples) if args.samples else []
        finally:
            DBOS.destroy()

    result = {
        "version": _version(),
        "workflows": args.workflows,
        "mode": mode,
        "rate": statistics.median(rates),
        "rates": rates,
        "send_recv_p50_ms": statistics.median(latencies) if latencies else None,
        "send_recv_p99_ms": percentile(latencies, 0.99) if latencies else None,
    }
    if args.json:
        print(json.dumps(result))
        return
    runs = ", ".join(f"{r:,.0f}" for r in rates)
    print(f"dbos {result['version']} sqlite ({mode})")
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
