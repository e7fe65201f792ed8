"""SQLite engine benchmark: throughput and event latency, on an empty store and with many instances
waiting in it, and the same workload on DBOS Transact for comparison. Prints numbers; never passes
or fails.

    python bench/bench_sqlite.py [--workflows 5000] [--waiting 100000] [--samples 200]
                                 [--synchronous NORMAL] [--[no-]compare-dbos]

The store is a SQLite file (WAL) in a temporary directory. Each phase prints one line; the
"waiting" column says how many instances were parked on an event subscription in the store when
the phase ran, so the two rows of each measure show whether its cost grows with the store.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_memory import Noop, ThreeSteps, WaitsForEvent, percentile  # noqa: F401 - shared with the other benchmarks

from liteflow.core import (
    WorkflowHost,
    configure_workflow_host,
)
from liteflow.providers.sqlite import SqlitePersistenceProvider


def subscriptions(path: Path) -> int:
    """Subscriptions in the store: one per parked WaitsForEvent instance."""
    with sqlite3.connect(path) as connection:
        return int(connection.execute("SELECT count(*) FROM subscription").fetchone()[0])


def throughput(host: WorkflowHost, count: int) -> tuple[float, list[float]]:
    started = time.perf_counter()
    ids = [host.start_workflow("ThreeSteps") for _ in range(count)]
    instances = [host.wait_for_workflow(workflow_id, timeout=600) for workflow_id in ids]
    rate = count / (time.perf_counter() - started)
    gaps: list[float] = []
    for instance in instances:
        pointers = instance.execution_pointers
        for before, after in pairwise(pointers):
            assert before.end_time and after.start_time
            gaps.append((after.start_time - before.end_time).total_seconds() * 1000)
    return rate, gaps


def throughputs(host: WorkflowHost, count: int, repeat: int) -> tuple[list[float], list[float]]:
    rates, gaps = [], []
    for _ in range(repeat):
        rate, more = throughput(host, count)
        rates.append(rate)
        gaps += more
    return rates, gaps


def park(host: WorkflowHost, path: Path, count: int, prefix: str) -> tuple[list[str], float]:
    """Start ``count`` WaitsForEvent instances (keys ``prefix0``...) and wait until all are parked
    on their subscription. Returns their ids and the rate, instances parked per second."""
    before = subscriptions(path)
    started = time.perf_counter()
    ids = [host.start_workflow("WaitsForEvent", 1, {"key": f"{prefix}{n}"}) for n in range(count)]
    while subscriptions(path) < before + count:
        time.sleep(0.05)
    return ids, count / (time.perf_counter() - started)


def event_latency(host: WorkflowHost, path: Path, samples: int, prefix: str) -> tuple[list[float], list[float]]:
    ids, _ = park(host, path, samples, prefix)
    time.sleep(0.2)
    resume, publish_cost = [], []
    for n, workflow_id in enumerate(ids):
        sent = datetime.now(timezone.utc)
        before = time.perf_counter()
        host.publish_event("go", f"{prefix}{n}", None)
        publish_cost.append((time.perf_counter() - before) * 1000)
        instance = host.wait_for_workflow(workflow_id, timeout=30)
        waited = next(p for p in instance.execution_pointers if p.event_name)
        assert waited.end_time is not None
        resume.append((waited.end_time - sent).total_seconds() * 1000)
    return resume, publish_cost


def report(label: str, rates: list[float], gaps: list[float], resume: list[float], cost: list[float]) -> None:
    runs = ", ".join(f"{rate:,.0f}" for rate in rates)
    print(
        f"sqlite: {label}: three-step workflows {statistics.median(rates):,.0f}/s (median of {runs}); "
        f"step-to-step p50 {statistics.median(gaps):.2f} ms, p99 {percentile(gaps, 0.99):.2f} ms"
    )
    print(
        f"sqlite: {label}: publish-to-resume p50 {statistics.median(resume):.2f} ms, "
        f"p99 {percentile(resume, 0.99):.2f} ms; publish_event call p50 {statistics.median(cost):.2f} ms"
    )


def run_dbos(workflows: int, repeat: int, samples: int, wal: bool) -> dict[str, Any] | None:
    command = [sys.executable, str(Path(__file__).with_name("bench_dbos.py")), "--json"]
    command += ["--workflows", str(workflows), "--repeat", str(repeat), "--samples", str(samples)]
    command += ["--wal"] if wal else []
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=3600)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        print(f"dbos: benchmark failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
        return None
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def compare_dbos(args: argparse.Namespace, rate: float, resume_p50: float) -> None:
    for wal in (False, True):
        dbos = run_dbos(args.dbos_workflows, args.repeat, args.dbos_samples, wal)
        if dbos is None:
            continue
        runs = ", ".join(f"{r:,.0f}" for r in dbos["rates"])
        print(f"dbos {dbos['version']} sqlite, {dbos['mode']}:")
        print(f"dbos:   {args.dbos_workflows} three-step workflows {dbos['rate']:,.0f}/s (median of {runs})")
        if dbos.get("send_recv_p50_ms") is not None:
            print(f"dbos:   send-to-recv p50 {dbos['send_recv_p50_ms']:.1f} ms, p99 {dbos['send_recv_p99_ms']:.1f} ms")
        print(f"ratio LiteFlow/DBOS, workflows/s: {rate / dbos['rate']:.1f}x")
        if dbos.get("send_recv_p50_ms") is not None:
            print(f"ratio DBOS/LiteFlow, event latency p50: {dbos['send_recv_p50_ms'] / resume_p50:,.0f}x")


def main() -> None:
    has_dbos = importlib.util.find_spec("dbos") is not None
    parser = argparse.ArgumentParser()
    parser.add_argument("--workflows", type=int, default=5_000, help="three-step workflows per throughput run")
    parser.add_argument("--waiting", type=int, default=100_000, help="instances parked in the store for phase 2")
    parser.add_argument("--samples", type=int, default=200, help="publish-to-resume samples per phase")
    parser.add_argument("--repeat", type=int, default=3, help="throughput runs per phase; the median is reported")
    parser.add_argument("--synchronous", default="NORMAL", choices=["OFF", "NORMAL", "FULL", "EXTRA"])
    parser.add_argument("--workers", type=int, default=4, help="host option max_concurrent_workflows")
    parser.add_argument("--event-workers", type=int, default=2, help="host option event_workers")
    parser.add_argument(
        "--compare-dbos", action=argparse.BooleanOptionalAction, help="default: on when `import dbos` works"
    )
    parser.add_argument("--dbos-workflows", type=int, default=1_000, help="DBOS is slower: fewer workflows")
    parser.add_argument("--dbos-samples", type=int, default=10, help="DBOS send-to-recv samples (~1 s each)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="liteflow-bench-") as directory:
        path = Path(directory) / "bench.db"
        print(
            f"sqlite: store {path} (WAL, synchronous={args.synchronous}); host options "
            f"max_concurrent_workflows={args.workers}, event_workers={args.event_workers}, others default"
        )
        store = SqlitePersistenceProvider(path, synchronous=args.synchronous)
        host = configure_workflow_host(store, max_concurrent_workflows=args.workers, event_workers=args.event_workers)
        host.register_workflow(ThreeSteps())
        host.register_workflow(WaitsForEvent())
        with host:
            for _ in range(50):  # warm up
                host.wait_for_workflow(host.start_workflow("ThreeSteps"), timeout=30)
            rates, gaps = throughputs(host, args.workflows, args.repeat)
            resume, cost = event_latency(host, path, args.samples, "a")
            report(f"{0:>7,} waiting", rates, gaps, resume, cost)
            empty_rate, empty_resume = statistics.median(rates), statistics.median(resume)

            if args.waiting:
                _, fill_rate = park(host, path, args.waiting, "w")
                size = sum(f.stat().st_size for f in Path(directory).iterdir()) / 1e6
                print(
                    f"sqlite: parked {args.waiting:,} instances on an event in {args.waiting / fill_rate:.1f} s "
                    f"({fill_rate:,.0f}/s, start to subscription); store {size:.0f} MB"
                )
                rates, gaps = throughputs(host, args.workflows, args.repeat)
                resume, cost = event_latency(host, path, args.samples, "b")
                report(f"{args.waiting:>7,} waiting", rates, gaps, resume, cost)
                print(f"sqlite: {subscriptions(path):,} subscriptions still in the store")
        store.close()

    if args.compare_dbos is False:
        return
    if not has_dbos:
        print("DBOS not installed: pip install dbos")
        return
    print(
        f"dbos: running bench_dbos.py twice ({args.dbos_workflows} workflows x {args.repeat}, "
        f"{args.dbos_samples} send-to-recv samples)"
    )
    compare_dbos(args, empty_rate, empty_resume)


if __name__ == "__main__":
    main()
