"""PostgreSQL engine benchmark: throughput with one and two host processes, event latency, and the
same workload on DBOS Transact on the same server. Prints numbers; never passes or fails.

    python bench/bench_postgres.py [--url postgresql://postgres@127.0.0.1:5432/test] [--workflows 3000]
                                   [--repeat 3] [--samples 200] [--workers 8] [--[no-]redis]
                                   [--[no-]compare-dbos]

Every configuration gets a fresh schema (``liteflow_bench_<pid>_<n>``), dropped at the end.

1. One host process: ``--workflows`` three-step workflows started from the main thread and waited
   for (``bench_sqlite.throughput``), in two configurations: ``all-postgres`` (PostgreSQL
   persistence, queue and lock: a cluster) and ``pg+local`` (PostgreSQL persistence, the default
   in-process queue and lock: a single node). Then publish-to-resume latency
   (``bench_memory.event_latency``).
2. Host processes sharing the work: the main process (the starter) stores and queues
   ``--workflows`` workflows without running them, then tells 1 or 2 worker processes (each a
   started host) to go and counts completed rows in SQL until all are done: workflows/s for the
   queue and lock on PostgreSQL, and on Redis (``--redis``, default on when Redis answers).
3. DBOS Transact on PostgreSQL (``bench_dbos.py --postgres``, its own database ``dbos_bench``):
   workflows/s and send-to-recv latency, and the ratios.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from bench_memory import event_latency
from bench_sqlite import ThreeSteps, WaitsForEvent, percentile, throughputs

from liteflow.core import WorkflowHost, configure_workflow_host
from liteflow.providers.postgres import (
    PostgresLockProvider,
    PostgresPersistenceProvider,
    PostgresQueueProvider,
)

DEFAULT_URL = os.environ.get("LITEFLOW_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("LITEFLOW_REDIS_URL", "redis://127.0.0.1:6379/0")
_schemas = iter(f"liteflow_bench_{os.getpid()}_{n}" for n in range(1000))


@contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    """A schema name no one uses; the schema (created by the providers) is dropped afterwards."""
    name = next(_schemas)
    try:
        yield name
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def make_host(url: str, schema: str, config: str, workers: int, event_workers: int) -> tuple[WorkflowHost, list[Any]]:
    """A host on PostgreSQL persistence with the queue and lock of ``config``: ``postgres``
    (PostgreSQL), ``local`` (the default in-process ones) or ``redis``. Returns the host and the
    providers to close after it stops."""
    # A connection for every worker thread, and no more: the server's max_connections is shared.
    pool = max(4, workers + event_workers)
    store = PostgresPersistenceProvider(url, schema=schema, max_size=pool)
    queue: Any = None
    lock: Any = None
    if config in ("postgres", "postgres-async"):
        synchronous = config == "postgres"  # the queue and lock's synchronous_commit option
        queue = PostgresQueueProvider(url, schema=schema, max_size=pool, synchronous_commit=synchronous)
        lock = PostgresLockProvider(url, schema=schema, max_size=pool, synchronous_commit=synchronous)
    elif config == "redis":
        from liteflow.providers.redis import RedisLockProvider, RedisQueueProvider

        queue = RedisQueueProvider(REDIS_URL, prefix=schema)
        lock = RedisLockProvider(REDIS_URL, prefix=schema)
    host = configure_workflow_host(store, queue, lock, max_concurrent_workflows=workers, event_workers=event_workers)
    host.register_workflow(ThreeSteps())
    host.register_workflow(WaitsForEvent())
    return host, [p for p in (queue, lock, store) if p is not None]


def close_all(providers: list[Any]) -> None:
    for provider in providers:
        provider.close()


def drop_redis_keys(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def redis_answers() -> bool:
    if importlib.util.find_spec("redis") is None:
        return False
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


LABELS = {
    "postgres": "all-postgres (PG persistence + PG queue + PG lock)",
    "postgres-async": "all-postgres, queue and lock with synchronous_commit=false",
    "local": "pg+local (PG persistence + in-process queue and lock)",
    "redis": "pg+redis (PG persistence + Redis queue and lock)",
}


def started_by_threads(host: WorkflowHost, count: int, starters: int) -> float:
    """bench_sqlite.throughput with ``starters`` threads calling ``start_workflow`` at once (the
    host's callers are usually concurrent, and a start waits for its commit): workflows/s."""
    ids: list[list[str]] = [[] for _ in range(starters)]

    def start(mine: list[str], share: int) -> None:
        mine.extend(host.start_workflow("ThreeSteps") for _ in range(share))

    began = time.perf_counter()
    threads = [
        threading.Thread(target=start, args=(ids[n], count // starters + (n < count % starters)))
        for n in range(starters)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for workflow_id in (workflow_id for mine in ids for workflow_id in mine):
        host.wait_for_workflow(workflow_id, timeout=600)
    return count / (time.perf_counter() - began)


def one_host(args: argparse.Namespace, config: str) -> tuple[float, float, float]:
    """Phase 1 for one configuration; returns the median workflows/s with one starting thread and
    with ``--starters``, and the publish-to-resume p50."""
    with fresh_schema(args.url) as schema:
        host, providers = make_host(args.url, schema, config, args.workers, args.event_workers)
        try:
            with host:
                for _ in range(50):  # warm up
                    host.wait_for_workflow(host.start_workflow("ThreeSteps"), timeout=30)
                rates, gaps = throughputs(host, args.workflows, args.repeat)
                threaded = [started_by_threads(host, args.workflows, args.starters) for _ in range(args.repeat)]
                resume, cost = event_latency(host, args.samples, args.samples)
        finally:
            close_all(providers)
    runs = ", ".join(f"{rate:,.0f}" for rate in rates)
    print(
        f"postgres: 1 host, {LABELS[config]}: {args.workflows} three-step workflows started by 1 thread "
        f"{statistics.median(rates):,.0f}/s (median of {runs}); step-to-step p50 {statistics.median(gaps):.2f} ms, "
        f"p99 {percentile(gaps, 0.99):.2f} ms"
    )
    runs = ", ".join(f"{rate:,.0f}" for rate in threaded)
    print(
        f"postgres: 1 host, {config}: started by {args.starters} threads {statistics.median(threaded):,.0f}/s "
        f"(median of {runs})"
    )
    print(
        f"postgres: 1 host, {config}: publish-to-resume p50 {statistics.median(resume):.2f} ms, "
        f"p99 {percentile(resume, 0.99):.2f} ms; publish_event call p50 {statistics.median(cost):.2f} ms"
    )
    sys.stdout.flush()
    return statistics.median(rates), statistics.median(threaded), statistics.median(resume)


def run_dbos(args: argparse.Namespace, starters: int) -> dict[str, Any] | None:
    """bench_dbos.py on this server (its own database), as bench_sqlite.run_dbos does on SQLite."""
    command = [sys.executable, str(Path(__file__).with_name("bench_dbos.py")), "--json", "--postgres", args.url]
    command += ["--workflows", str(args.dbos_workflows), "--repeat", str(args.repeat), "--starters", str(starters)]
    command += ["--samples", str(args.dbos_samples if starters == 1 else 0)]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=3600)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        print(f"dbos: benchmark failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
        return None
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# -- several host processes -------------------------------------------------------------------


def worker_main(spec: str) -> None:
    """A worker process: build the host, say ``ready``, start it on ``go``, stop at end of input."""
    options = json.loads(spec)
    host, providers = make_host(options["url"], options["schema"], options["config"], options["workers"], 1)
    print("ready", flush=True)
    if sys.stdin.readline().strip() == "go":
        with host:
            sys.stdin.readline()  # blocks until the starter closes our input
    close_all(providers)


def completed(conn: psycopg.Connection[Any], schema: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM \"{schema}\".workflow WHERE status = 'complete'").fetchone()
    return 0 if row is None else int(row[0])


def several_hosts(args: argparse.Namespace, config: str, processes: int) -> tuple[float, float]:
    """Phase 2: ``processes`` worker processes run ``--workflows`` workflows queued beforehand.
    Returns (workflows/s run by the workers, workflows/s stored and queued by the starter)."""
    with fresh_schema(args.url) as schema:
        starter, providers = make_host(args.url, schema, config, 1, 1)  # never started: it only stores and queues
        spec = json.dumps({"url": args.url, "schema": schema, "config": config, "workers": args.workers})
        command = [sys.executable, __file__, "--worker", spec]
        workers = [
            subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in range(processes)
        ]
        try:
            for worker in workers:
                assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
            started = time.perf_counter()
            for _ in range(args.workflows):
                starter.start_workflow("ThreeSteps")
            start_rate = args.workflows / (time.perf_counter() - started)
            with psycopg.connect(args.url, autocommit=True) as conn:
                began = time.perf_counter()
                for worker in workers:
                    assert worker.stdin is not None
                    worker.stdin.write("go\n")
                    worker.stdin.flush()
                deadline = began + 600
                while completed(conn, schema) < args.workflows and time.perf_counter() < deadline:
                    time.sleep(0.02)
                rate = completed(conn, schema) / (time.perf_counter() - began)
        finally:
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.close()
            for worker in workers:
                worker.wait(timeout=60)
            close_all(providers)
            if config == "redis":
                drop_redis_keys(schema)
    return rate, start_rate


def hosts_phase(args: argparse.Namespace, config: str) -> dict[int, float]:
    medians: dict[int, float] = {}
    for processes in (1, 2):
        results = [several_hosts(args, config, processes) for _ in range(args.repeat)]
        rates = [rate for rate, _ in results]
        medians[processes] = statistics.median(rates)
        runs = ", ".join(f"{rate:,.0f}" for rate in rates)
        starts = statistics.median(start for _, start in results)
        print(
            f"postgres: {processes} host process{'es' if processes > 1 else ''} x {args.workers} workers, "
            f"{LABELS[config]}: {args.workflows} queued three-step workflows run at {medians[processes]:,.0f}/s "
            f"(median of {runs}); the starter stored and queued them at {starts:,.0f}/s",
            flush=True,
        )
    print(f"postgres: {config}: 2 hosts / 1 host = {medians[2] / medians[1]:.2f}x", flush=True)
    return medians


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2])
        return
    has_dbos = importlib.util.find_spec("dbos") is not None
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=DEFAULT_URL, help="PostgreSQL server and database (a schema is made per run)")
    parser.add_argument("--workflows", type=int, default=3_000, help="three-step workflows per throughput run")
    parser.add_argument("--samples", type=int, default=200, help="publish-to-resume samples")
    parser.add_argument("--repeat", type=int, default=3, help="throughput runs per measure; the median is reported")
    parser.add_argument("--workers", type=int, default=8, help="host option max_concurrent_workflows (per host)")
    parser.add_argument("--starters", type=int, default=4, help="threads starting workflows, second measure")
    parser.add_argument(
        "--configs", default="postgres,local", help="one-host configurations: postgres, postgres-async, local, redis"
    )
    parser.add_argument("--event-workers", type=int, default=2, help="host option event_workers")
    parser.add_argument("--redis", action=argparse.BooleanOptionalAction, help="default: on when Redis answers")
    parser.add_argument("--hosts", action=argparse.BooleanOptionalAction, default=True, help="phase 2")
    parser.add_argument(
        "--compare-dbos", action=argparse.BooleanOptionalAction, help="default: on when `import dbos` works"
    )
    parser.add_argument("--dbos-workflows", type=int, default=1_000, help="DBOS is slower: fewer workflows")
    parser.add_argument("--dbos-samples", type=int, default=20, help="DBOS send-to-recv samples")
    args = parser.parse_args()

    try:
        conn = psycopg.connect(args.url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        print(f"postgres: cannot reach {args.url} ({str(error).strip()}): skipped (set --url or LITEFLOW_POSTGRES_URL)")
        return
    with conn:
        settings = conn.execute(
            "SELECT current_setting('server_version'), current_setting('synchronous_commit'), current_setting('fsync')"
        ).fetchone()
    assert settings is not None
    print(
        f"postgres: {args.url}, PostgreSQL {settings[0]}, synchronous_commit={settings[1]}, fsync={settings[2]}; "
        f"host options max_concurrent_workflows={args.workers}, event_workers={args.event_workers}, others default; "
        f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}",
        flush=True,
    )
    rates: dict[str, float] = {}
    resume_p50 = None
    for config in args.configs.split(","):
        one, several, resume = one_host(args, config)
        rates[f"1 host, {config}, 1 starting thread"] = one
        rates[f"1 host, {config}, {args.starters} starting threads"] = several
        resume_p50 = resume if resume_p50 is None else resume_p50
    if args.hosts:
        for config in ("postgres", "redis"):
            if config == "redis" and not (args.redis if args.redis is not None else redis_answers()):
                continue
            medians = hosts_phase(args, config)
            rates[f"2 host processes, {config}"] = medians[2]
    print(f"postgres: load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)

    if args.compare_dbos is False:
        return
    if not has_dbos:
        print("DBOS not installed: pip install dbos")
        return
    print(f"dbos: running bench_dbos.py --postgres ({args.dbos_workflows} workflows x {args.repeat})", flush=True)
    dbos = run_dbos(args, 1)
    threaded = run_dbos(args, args.starters) if args.starters > 1 else None
    if dbos is None:
        return
    runs = ", ".join(f"{r:,.0f}" for r in dbos["rates"])
    print(f"dbos {dbos['version']} postgresql, {dbos['mode']}:")
    rate = dbos["rate"]
    print(f"dbos:   {args.dbos_workflows} three-step workflows started by 1 thread {rate:,.0f}/s (median of {runs})")
    if threaded is not None:
        runs = ", ".join(f"{r:,.0f}" for r in threaded["rates"])
        print(f"dbos:   started by {args.starters} threads {threaded['rate']:,.0f}/s (median of {runs})")
    print(f"dbos:   send-to-recv p50 {dbos['send_recv_p50_ms']:.1f} ms, p99 {dbos['send_recv_p99_ms']:.1f} ms")
    for label, rate in rates.items():
        peer = threaded if threaded is not None and "starting threads" in label else dbos
        print(f"ratio LiteFlow ({label})/DBOS (same starting threads), workflows/s: {rate / peer['rate']:.1f}x")
    assert resume_p50 is not None
    first = args.configs.split(",")[0]
    print(f"ratio DBOS/LiteFlow ({first}), event latency p50: {dbos['send_recv_p50_ms'] / resume_p50:.1f}x")


if __name__ == "__main__":
    main()
