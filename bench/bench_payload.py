"""What the payload limit and quarantine cost. Prints numbers; never passes or fails.

python bench/bench_payload.py [--workflows 3000] [--repeat 3]

1. Memory host, three-step workflows with a small dict as data: throughput with the default
   ``max_payload_bytes`` (2 MB, every pass measures its data) and with ``None`` (not measured).
2. The check alone against a SQLite save of the same instance, for data of 1 KB to 1 MB.
3. Reading a healthy instance and a quarantined one from SQLite.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from liteflow.core import StepBody, StepExecutionContext, Workflow, WorkflowBuilder, configure_workflow_host
from liteflow.core._models import ExecutionPointer, WorkflowInstance
from liteflow.core._payload import lend_checked
from liteflow.core._records import forget_lent_data
from liteflow.providers.sqlite import SqlitePersistenceProvider


class Noop(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        pass


class ThreeSteps(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Noop).then(Noop).then(Noop)


def throughput(limit: int | None, count: int) -> float:
    data = {"order": "A-1", "items": [{"sku": n, "qty": 1} for n in range(5)]}
    with configure_workflow_host(max_payload_bytes=limit) as host:
        host.register_workflow(ThreeSteps())
        started = time.perf_counter()
        ids = [host.start_workflow("ThreeSteps", data=data) for _ in range(count)]
        for workflow_id in ids:
            host.wait_for_workflow(workflow_id, timeout=120)
        return count / (time.perf_counter() - started)


def timed(action: Callable[[], object], rounds: int) -> float:
    """Median milliseconds of ``action()`` over ``rounds`` runs."""
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def check_only(instance: WorkflowInstance, limit: int) -> None:
    """The check a pass's save makes, without the save (which would take what it lends)."""
    lend_checked(instance, limit)
    forget_lent_data()


def check_versus_save(directory: Path) -> None:
    store = SqlitePersistenceProvider(directory / "payload.db")
    for size in (1_000, 100_000, 1_000_000):
        instance = WorkflowInstance("W", 1, data={"rows": ["x" * 100] * (size // 100)}, next_execution=None)
        instance.execution_pointers.append(ExecutionPointer(step_id=0))
        store.create_workflow(instance)
        rounds = 200 if size < 1_000_000 else 20
        check = timed(partial(check_only, instance, 2 * 1024 * 1024), rounds)
        save = timed(partial(store.persist_workflow, instance), rounds)
        print(f"  data {size:>9,} B: check {check:7.3f} ms, SQLite save {save:7.3f} ms ({check / save:.0%} extra)")
    store.close()


def quarantined_read(directory: Path) -> None:
    store = SqlitePersistenceProvider(directory / "quarantine.db")
    healthy = WorkflowInstance("W", 1, data={"n": 1}, execution_pointers=[ExecutionPointer(step_id=0)])
    broken = WorkflowInstance("W", 1, data={"n": 1}, execution_pointers=[ExecutionPointer(step_id=0)])
    for instance in (healthy, broken):
        store.create_workflow(instance)
    with store._lock:
        store._writer.execute("UPDATE workflow SET record = '{\"broken' WHERE id = ?", (broken.id,))
    for name, instance in (("healthy", healthy), ("unreadable (first read)", broken)):
        ms = timed(partial(store.get_workflow_instance, instance.id), 2000)
        print(f"  get_workflow_instance, {name}: {ms * 1000:.0f} us")
    placeholder = store.get_workflow_instance(broken.id)
    store.persist_workflow(placeholder)  # the quarantine record
    ms = timed(partial(store.get_workflow_instance, broken.id), 2000)
    print(f"  get_workflow_instance, quarantine record: {ms * 1000:.0f} us")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflows", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"memory host, {args.workflows} three-step workflows, best of {args.repeat} (runs interleaved):")
    settings = {"limit 2 MB (default)": 2 * 1024 * 1024, "limit None": None}
    best = dict.fromkeys(settings, 0.0)
    for _ in range(args.repeat):  # interleaved, so a burst of load on the machine hits both alike
        for label, limit in settings.items():
            best[label] = max(best[label], throughput(limit, args.workflows))
    for label, rate in best.items():
        print(f"  {label:<22} {rate:8,.0f} workflows/s")
    with tempfile.TemporaryDirectory() as directory:
        print("payload check against a SQLite save (median):")
        check_versus_save(Path(directory))
        print("reading from SQLite (median):")
        quarantined_read(Path(directory))


if __name__ == "__main__":
    main()
