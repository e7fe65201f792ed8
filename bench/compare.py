"""The engine of the working tree against the engine of a past commit (4af9752 by default), the same
workloads run alternately in subprocesses, and DBOS Transact where installed. Prints numbers; never
passes or fails.

    python bench/compare.py [--rounds 3] [--quick] [--providers memory sqlite pg-store pg-all]
    python bench/compare.py --loop 10000          # a while_ loop: iteration N against iteration 100
    python bench/compare.py --each 10000          # the same as a for_each over N items, in sequence
    python bench/compare.py --each 10000 --parallel   # ... all at once: total time, pointers, bytes
    python bench/compare.py --waiting 1000000 --new-only --rounds 1   # parked on events in SQLite

The old commit is taken from the repository's own history (``git archive``, offline) into
.cache/compare/<commit>/src; its venv (.cache/compare/<commit>/venv) imports that tree first and the
working tree's venv's site-packages for the dependencies. Each engine+provider+round is one
subprocess, so the two packages never meet in one interpreter; the subprocess prints one JSON line.

Workloads, per provider: (a) ``--workflows`` three-step workflows whose middle step takes ``input``
from a data object and writes an ``output`` back, started from one thread, wait for all; (b) the
same started from 4 threads; (c) publish-to-resume p50/p99 with ``--waiting-events`` instances
parked on an event. CPU is ``time.process_time`` of the host process per workflow of (a) and (b).
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "4af9752"
PG_URL = os.environ.get("LITEFLOW_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
PROVIDERS = ("memory", "sqlite", "pg-store", "pg-all")


# ---------------------------------------------------------------- the old engine's venv


def prepare_baseline(commit: str) -> Path:
    """The python of a venv that imports ``commit``'s liteflow; made once, kept in .cache/."""
    home = ROOT / ".cache" / "compare" / commit
    python = home / "venv" / "bin" / "python"
    if (home / ".ready").exists():
        return python
    shutil.rmtree(home, ignore_errors=True)
    (home / "src").mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "liteflow"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(home / "src")], input=archive.stdout, check=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(home / "venv")], check=True)
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # .pth files are read in name order: the old tree first, then this venv's dependencies (a path
    # added by a .pth line does not run that directory's own .pth files, so the working tree's
    # editable install stays out).
    Path(site, "a_liteflow_baseline.pth").write_text(str(home / "src") + "\n")
    Path(site, "b_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (home / ".ready").touch()
    return python


# ---------------------------------------------------------------- the workloads (in a subprocess)

# Defined at module level in the subprocess (``__main__``), where both engines can load them.


def define() -> dict[str, Any]:
    from liteflow.core import StepBody, StepExecutionContext, Workflow, WorkflowBuilder

    class Noop(StepBody):
        def run(self, context: StepExecutionContext) -> None:
            pass

    class Add(StepBody):
        def __init__(self) -> None:
            self.input1 = 0
            self.input2 = 0
            self.output = 0

        def run(self, context: StepExecutionContext) -> None:
            self.output = self.input1 + self.input2

    class Tick(StepBody):
        def run(self, context: StepExecutionContext) -> None:
            TICKS.append(time.perf_counter())

    class WithData(Workflow):
        def build(self, builder: WorkflowBuilder) -> None:
            builder.start_with(Noop).then(Add).input("input1", lambda data, context: data.value1).input(
                "input2", lambda data, context: data.value2
            ).output("value3", lambda step: step.output).then(Noop)

    class WaitsForEvent(Workflow):
        def build(self, builder: WorkflowBuilder) -> None:
            builder.start_with(Noop).wait_for("go", lambda data, context: data["key"]).then(Noop)

    def one_round(then: Any) -> Any:
        """The two steps of a round of Loop and Each: a tick, then value1 += 1."""
        return (
            then.start_with(Tick)
            .then(Add)
            .input("input1", lambda data, context: data.value1)
            .input("input2", lambda data, context: 1)
            .output("value1", lambda step: step.output)
        )

    class Loop(Workflow):
        def build(self, builder: WorkflowBuilder) -> None:
            builder.start_with(Noop).while_(lambda data, context: data.value1 < data.value2).do(one_round).then(Noop)

    class Each(Workflow):
        def build(self, builder: WorkflowBuilder) -> None:
            builder.start_with(Noop).for_each(lambda data, context: range(data.value2), run_parallel=False).do(
                one_round
            ).then(Noop)

    class EachInParallel(Workflow):
        def build(self, builder: WorkflowBuilder) -> None:
            builder.start_with(Noop).for_each(lambda data, context: range(data.value2), run_parallel=True).do(
                lambda then: then.start_with(Tick).then(Noop)
            ).then(Noop)

    classes = (Noop, Add, Tick, WithData, WaitsForEvent, Loop, Each, EachInParallel)
    for cls in classes:
        cls.__qualname__ = cls.__name__
        globals()[cls.__name__] = cls
    return {cls.__name__: cls for cls in classes if issubclass(cls, Workflow)}


TICKS: list[float] = []


class Data:
    def __init__(self, value1: int = 2, value2: int = 3) -> None:
        self.value1 = value1
        self.value2 = value2
        self.value3 = 0
        self.customer = {"name": "Ada Lovelace", "tier": "gold", "tags": ["a", "b"]}


def make_host(provider: str, directory: str, schema: str, workers: int) -> tuple[Any, list[Any]]:
    from liteflow.core import configure_workflow_host

    if provider == "memory":
        return configure_workflow_host(), []
    if provider == "sqlite":
        from liteflow.providers.sqlite import SqlitePersistenceProvider

        store = SqlitePersistenceProvider(os.path.join(directory, "bench.db"))
        return configure_workflow_host(store), [store]
    from liteflow.providers.postgres import PostgresLockProvider, PostgresPersistenceProvider, PostgresQueueProvider

    pool = max(4, workers + 2)
    store = PostgresPersistenceProvider(PG_URL, schema=schema, max_size=pool)
    if provider == "pg-store":
        host = configure_workflow_host(store, max_concurrent_workflows=workers, event_workers=2)
        return host, [store]
    queue = PostgresQueueProvider(PG_URL, schema=schema, max_size=pool)
    lock = PostgresLockProvider(PG_URL, schema=schema, max_size=pool)
    host = configure_workflow_host(store, queue, lock, max_concurrent_workflows=workers, event_workers=2)
    return host, [queue, lock, store]


def start_and_wait(host: Any, count: int, starters: int) -> tuple[float, float]:
    """Workflows/s and host CPU µs per workflow for ``count`` WithData workflows."""
    ids: list[list[str]] = [[] for _ in range(starters)]

    def start(mine: list[str], share: int) -> None:
        mine.extend(host.start_workflow("WithData", 1, Data()) for _ in range(share))

    cpu, began = time.process_time(), time.perf_counter()
    threads = [
        threading.Thread(target=start, args=(ids[n], count // starters + (n < count % starters)))
        for n in range(starters)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for workflow_id in (w for mine in ids for w in mine):
        instance = host.wait_for_workflow(workflow_id, timeout=600)
        assert instance.data.value3 == 5, instance.status
    elapsed = time.perf_counter() - began
    return count / elapsed, (time.process_time() - cpu) / count * 1e6


def one_thread_cpu(host: Any, count: int) -> float:
    """CPU µs per workflow of (a)'s workflows run by ``run_until_idle`` on the host not yet started:
    no thread, no hand-off, so the engine's own cost, little disturbed by the machine's load."""
    host.start_workflow("WithData", 1, Data())
    host.run_until_idle()  # warm up
    cpu = time.process_time()
    ids = [host.start_workflow("WithData", 1, Data()) for _ in range(count)]
    host.run_until_idle()
    spent = (time.process_time() - cpu) / count * 1e6
    assert host.get_workflow_instance(ids[-1]).data.value3 == 5
    return spent


def park(host: Any, count: int, prefix: str) -> list[str]:
    ids = [host.start_workflow("WaitsForEvent", 1, {"key": f"{prefix}{n}"}) for n in range(count)]
    for workflow_id in (ids[-1], ids[0]):
        while host.get_workflow_instance(workflow_id).execution_pointers[-1].event_name is None:
            time.sleep(0.01)
    return ids


def publish_to_resume(host: Any, ids: list[str], keys: list[str]) -> list[float]:
    """Publish to each instance of ``ids`` (waiting on the key of the same index) in turn: ms."""
    resume = []
    for workflow_id, key in zip(ids, keys, strict=True):
        while host.get_workflow_instance(workflow_id).execution_pointers[-1].event_name is None:
            time.sleep(0.01)  # not parked yet (a bench may wait; the first samples are long parked)
        sent = datetime.now(timezone.utc)
        host.publish_event("go", key, None)
        instance = host.wait_for_workflow(workflow_id, timeout=60)
        waited = next(p for p in instance.execution_pointers if p.event_name)
        resume.append((waited.end_time - sent).total_seconds() * 1000)
    return resume


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def child(spec: dict[str, Any]) -> dict[str, Any]:
    import liteflow

    workflows = define()
    schema = f"liteflow_compare_{os.getpid()}"
    directory = tempfile.mkdtemp(prefix="liteflow-compare-")
    host, providers = make_host(spec["provider"], directory, schema, spec["workers"])
    result: dict[str, Any] = {"package": os.path.dirname(liteflow.__file__)}
    try:
        for workflow in workflows.values():
            host.register_workflow(workflow())
        if spec["workload"] == "main":
            result["d_cpu"] = one_thread_cpu(host, spec["workflows"] // 4)
        host.start()
        try:
            result.update(run_workload(host, spec, directory))
        finally:
            host.stop()
    finally:
        for provider in providers:
            provider.close()
        shutil.rmtree(directory, ignore_errors=True)
        if spec["provider"].startswith("pg"):
            drop_schema(schema)
    return result


def run_workload(host: Any, spec: dict[str, Any], directory: str) -> dict[str, Any]:
    host.wait_for_workflow(host.start_workflow("WithData", 1, Data()), timeout=60)  # warm up
    if spec["workload"] == "loop":
        return loop(host, "Loop", spec["count"], directory)
    if spec["workload"] == "each":
        return loop(host, "Each", spec["count"], directory)
    if spec["workload"] == "each-parallel":
        return loop(host, "EachInParallel", spec["count"], directory)
    if spec["workload"] == "waiting":
        return waiting(host, spec["count"], spec["samples"], spec["starters"], spec["backlog"], directory)
    one, cpu_one = start_and_wait(host, spec["workflows"], 1)
    four, cpu_four = start_and_wait(host, spec["workflows"], 4)
    ids = park(host, spec["waiting"], "k")
    chosen = range(0, len(ids), max(1, len(ids) // spec["samples"]))[: spec["samples"]]
    resume = publish_to_resume(host, [ids[n] for n in chosen], [f"k{n}" for n in chosen])
    return {
        "a": one,
        "a_cpu": cpu_one,
        "b": four,
        "b_cpu": cpu_four,
        "p50": statistics.median(resume),
        "p99": percentile(resume, 0.99),
    }


def loop(host: Any, workflow: str, count: int, directory: str) -> dict[str, Any]:
    """Iteration costs (the gap between one round's first step and the next's, around round 100
    and round N), the total, and what is stored at the end."""
    TICKS.clear()
    began = time.perf_counter()
    workflow_id = host.start_workflow(workflow, 1, Data(0, count))
    instance = host.wait_for_workflow(workflow_id, timeout=7200)
    seconds = time.perf_counter() - began
    assert len(TICKS) == count and instance.status.value == "complete", instance.status
    gaps = [b - a for a, b in itertools.pairwise(TICKS)]

    def around(n: int) -> float:
        return statistics.median(gaps[max(0, n - 20) : n + 20]) * 1e6

    size = None
    if os.path.exists(os.path.join(directory, "bench.db")):
        import sqlite3

        with sqlite3.connect(os.path.join(directory, "bench.db")) as conn:
            size = conn.execute("SELECT length(record) FROM workflow WHERE id = ?", (workflow_id,)).fetchone()[0]
    return {
        "iterations": count,
        "seconds": seconds,
        "at_100_us": around(100),
        "at_n_us": around(len(gaps) - 20),
        "pointers": len(instance.execution_pointers),
        "record_bytes": size,
    }


def rss_mb() -> float:
    """The process's resident set now (``ru_maxrss`` is only the peak)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def subscriptions_stored(directory: str) -> int:
    import sqlite3

    with sqlite3.connect(os.path.join(directory, "bench.db")) as conn:
        counted: int = conn.execute("SELECT count(*) FROM subscription").fetchone()[0]
    return counted


def waiting(host: Any, count: int, samples: int, starters: int, backlog: int, directory: str) -> dict[str, Any]:
    """Park ``count`` instances from ``starters`` threads, keeping only the ids of the instances that
    will be sampled (a list of a million ids would be 90 MB of the benchmark's own in the RSS), then
    publish to ``samples`` of them. Progress and RSS every tenth go to stderr."""
    import resource

    step = max(1, count // samples)
    sampled = set(range(0, count, step)[:samples])
    ids: dict[int, str] = {}
    started = [0] * starters
    rss_start, began = rss_mb(), time.perf_counter()

    def parked(workflow_id: str) -> bool:
        return host.get_workflow_instance(workflow_id).execution_pointers[-1].event_name is not None

    def start(thread: int) -> None:
        # A starter ahead of the workers by more than ``backlog`` waits for them: an unbounded burst
        # would measure the queue's backlog (and the heap it leaves behind) instead of the store.
        recent: collections.deque[str] = collections.deque()
        for n in range(thread, count, starters):
            workflow_id = host.start_workflow("WaitsForEvent", 1, {"key": f"w{n}"})
            if n in sampled or n >= count - starters:
                ids[n] = workflow_id
            started[thread] += 1
            if backlog:
                recent.append(workflow_id)
                if len(recent) > backlog // starters:
                    oldest = recent.popleft()
                    while not parked(oldest):
                        time.sleep(0.005)

    def report(what: str) -> None:
        done = sum(started)
        elapsed = time.perf_counter() - began
        print(
            f"    {what}: {done:,} started in {elapsed:,.0f} s ({done / max(elapsed, 1e-9):,.0f}/s), "
            f"RSS {rss_mb():,.0f} MB; {load()}",
            file=sys.stderr,
            flush=True,
        )

    threads = [threading.Thread(target=start, args=(n,)) for n in range(starters)]
    for thread in threads:
        thread.start()
    tenth, reported = max(1, count // 10), 0
    while any(thread.is_alive() for thread in threads):
        threads[0].join(1.0)
        if sum(started) // tenth != reported:
            reported = sum(started) // tenth
            report("starting")
    start_rate = count / (time.perf_counter() - began)
    while subscriptions_stored(directory) < count:
        time.sleep(0.2)
    rate = count / (time.perf_counter() - began)
    report("parked")
    rss_parked = rss_mb()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sizes = {name: os.path.getsize(os.path.join(directory, name)) for name in os.listdir(directory)}
    resume = publish_to_resume(host, [ids[n] for n in sorted(sampled)], [f"w{n}" for n in sorted(sampled)])
    return {
        "count": count,
        "starters": starters,
        "backlog": backlog,
        "start_calls_per_s": start_rate,
        "start_rate": rate,
        "rss_start_mb": rss_start,
        "rss_peak_mb": peak,
        "rss_parked_mb": rss_parked,
        "rss_end_mb": rss_mb(),
        "bytes_per_instance": sum(sizes.values()) / count,
        "db_mb": sizes.get("bench.db", 0) / 2**20,
        "wal_mb": sizes.get("bench.db-wal", 0) / 2**20,
        "p50": statistics.median(resume),
        "p99": percentile(resume, 0.99),
    }


# ---------------------------------------------------------------- the parent


def run(python: Path, spec: dict[str, Any], *, progress: bool = False) -> dict[str, Any] | None:
    """One subprocess; its stderr is shown as it comes with ``progress`` (long runs), else on failure."""
    command = [str(python), "-X", "frozen_modules=off", __file__, "--child", json.dumps(spec)]
    stderr = None if progress else subprocess.PIPE
    done = subprocess.run(
        command, stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=7200, cwd=tempfile.gettempdir()
    )
    if done.returncode != 0:
        print(
            f"  {spec['engine']} {spec['provider']}: failed (exit {done.returncode})\n{(done.stderr or '')[-1500:]}",
            flush=True,
        )
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def pg_answers() -> bool:
    try:
        import psycopg

        psycopg.connect(PG_URL, connect_timeout=2).close()
        return True
    except Exception:
        return False


def dbos_figures(provider: str, workflows: int) -> dict[str, Any] | None:
    if importlib.util.find_spec("dbos") is None or provider in ("memory", "pg-all"):
        return None  # DBOS has no in-memory mode; on PostgreSQL it is compared once, on pg-store
    command = [sys.executable, str(ROOT / "bench" / "bench_dbos.py"), "--json", "--workflows", str(workflows)]
    command += ["--repeat", "1", "--samples", "5"]
    command += ["--wal"] if provider == "sqlite" else ["--postgres", PG_URL]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        print(f"  dbos {provider}: failed\n{done.stderr[-1000:]}")
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def compare(args: argparse.Namespace, engines: dict[str, Path]) -> None:
    providers = [p for p in args.providers if not p.startswith("pg") or pg_answers()]
    spec = {"workload": "main", "workflows": args.workflows, "waiting": args.waiting_events, "samples": args.samples}
    table: dict[tuple[str, str], list[dict[str, Any]]] = {}
    print(
        f"compare: {BASELINE if args.baseline == BASELINE else args.baseline} (old) against the working tree (new); "
        f"{args.rounds} rounds; {load()}",
        flush=True,
    )
    for provider in providers:
        for round_ in range(args.rounds):
            for engine in engines if round_ % 2 == 0 else reversed(engines):
                workers = 8 if provider.startswith("pg") else 4
                figures = run(engines[engine], {**spec, "engine": engine, "provider": provider, "workers": workers})
                if figures:
                    if (provider, engine) not in table and provider == providers[0] and round_ == 0:
                        print(f"  {engine}: liteflow from {figures['package']}")
                    table.setdefault((provider, engine), []).append(figures)
                    print(
                        f"  {provider:8} {engine} round {round_ + 1}: "
                        + ", ".join(f"{k} {v:,.1f}" for k, v in figures.items() if isinstance(v, float))
                        + f"; {load()}",
                        flush=True,
                    )
    print_table(args, providers, table)


def print_table(
    args: argparse.Namespace, providers: list[str], table: dict[tuple[str, str], list[dict[str, Any]]]
) -> None:
    def median(provider: str, engine: str, key: str) -> float:
        return statistics.median(r[key] for r in table.get((provider, engine), [{key: float("nan")}]))

    print(f"\n{args.workflows} workflows per run, {args.waiting_events} waiting, median of {args.rounds}; {load()}")
    print("| provider | workload | old | new | new/old | old CPU µs/wf | new CPU µs/wf | DBOS | new/DBOS |")
    print("|---|---|---|---|---|---|---|---|---|")
    for provider in providers:
        dbos = dbos_figures(provider, args.dbos_workflows) if args.dbos else None
        for key, label in (("a", "(a) wf/s, 1 thread"), ("b", "(b) wf/s, 4 threads")):
            old, new = median(provider, "old", key), median(provider, "new", key)
            cpu_old, cpu_new = median(provider, "old", key + "_cpu"), median(provider, "new", key + "_cpu")
            versus = f"{dbos['rate']:,.0f} | {new / dbos['rate']:.1f}x" if dbos and key == "a" else " | "
            print(
                f"| {provider} | {label} | {old:,.0f} | {new:,.0f} | **{new / old:.2f}x** "
                f"| {cpu_old:,.0f} | {cpu_new:,.0f} | {versus} |"
            )
        old, new = median(provider, "old", "d_cpu"), median(provider, "new", "d_cpu")
        print(f"| {provider} | (d) CPU only: run_until_idle | | | {new / old:.2f}x | {old:,.0f} | {new:,.0f} | | |")
        for key in ("p50", "p99"):
            old, new = median(provider, "old", key), median(provider, "new", key)
            versus = (
                f"{dbos['send_recv_p50_ms']:.1f} | "
                if dbos and key == "p50" and dbos.get("send_recv_p50_ms")
                else " | "
            )
            print(
                f"| {provider} | (c) publish-to-resume {key} ms | {old:.2f} | {new:.2f} | {new / old:.2f}x "
                f"| | | {versus} |"
            )


def special(args: argparse.Namespace, engines: dict[str, Path], workload: str, count: int) -> None:
    provider = "sqlite"
    print(f"compare {workload} {count} on {provider}; {load()}", flush=True)
    for round_ in range(args.rounds):
        for engine in engines if round_ % 2 == 0 else reversed(engines):
            spec = {
                "workload": workload,
                "count": count,
                "samples": args.samples,
                "engine": engine,
                "provider": provider,
                "workers": 4,
                "starters": args.starters,
                "backlog": args.backlog,
            }
            figures = run(engines[engine], spec, progress=True)
            if figures:
                figures.pop("package", None)
                print(
                    f"  {engine} round {round_ + 1}: "
                    + ", ".join(f"{k} {v:,.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items())
                    + f"; {load()}",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--baseline", default=BASELINE, help="the commit to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2,000 workflows and 2,000 waiting")
    parser.add_argument("--workflows", type=int, default=10_000)
    parser.add_argument("--waiting-events", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=1_000, help="publish-to-resume samples")
    parser.add_argument("--providers", nargs="+", default=list(PROVIDERS), choices=PROVIDERS)
    parser.add_argument("--no-dbos", dest="dbos", action="store_false")
    parser.add_argument("--dbos-workflows", type=int, default=500)
    parser.add_argument("--loop", type=int, metavar="N", help="a while_ loop of N iterations instead")
    parser.add_argument("--each", type=int, metavar="N", help="a for_each over N items (in sequence) instead")
    parser.add_argument("--parallel", action="store_true", help="with --each: all items at once")
    parser.add_argument("--waiting", type=int, metavar="N", help="N instances parked on events in SQLite instead")
    parser.add_argument("--starters", type=int, default=1, help="--waiting: threads starting the instances")
    parser.add_argument(
        "--backlog", type=int, default=5_000, help="--waiting: most instances started and not yet parked (0: no limit)"
    )
    parser.add_argument("--new-only", action="store_true", help="skip the old engine (profiling, quick looks)")
    if "--quick" in sys.argv:
        parser.set_defaults(workflows=2_000, waiting_events=2_000, samples=500, dbos_workflows=200)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    engines = {"new": Path(sys.executable)}
    if not args.new_only:
        engines = {"old": prepare_baseline(args.baseline), **engines}
    if args.loop:
        special(args, engines, "loop", args.loop)
    elif args.each:
        special(args, engines, "each-parallel" if args.parallel else "each", args.each)
    elif args.waiting:
        special(args, engines, "waiting", args.waiting)
    else:
        compare(args, engines)


if __name__ == "__main__":
    main()
