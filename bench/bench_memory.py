"""In-memory engine benchmark: throughput and latencies. Prints numbers; never passes or fails.

python bench/bench_memory.py [--workflows 10000] [--waiting 10000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timezone
from itertools import pairwise
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from liteflow.core import (
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowHost,
    configure_workflow_host,
)


class Noop(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        pass


class ThreeSteps(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Noop).then(Noop).then(Noop)


class WaitsForEvent(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Noop).wait_for("go", lambda data, context: data["key"]).then(Noop)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def throughput(host: WorkflowHost, count: int) -> tuple[float, list[float]]:
    started = time.perf_counter()
    ids = [host.start_workflow("ThreeSteps") for _ in range(count)]
    gaps: list[float] = []
    for workflow_id in ids:
        instance = host.wait_for_workflow(workflow_id, timeout=120)
        pointers = instance.execution_pointers
        for before, after in pairwise(pointers):
            assert before.end_time and after.start_time
            gaps.append((after.start_time - before.end_time).total_seconds() * 1000)
    return count / (time.perf_counter() - started), gaps


def event_latency(host: WorkflowHost, waiting: int, samples: int) -> tuple[list[float], list[float]]:
    ids = [host.start_workflow("WaitsForEvent", 1, {"key": f"k{n}"}) for n in range(waiting)]
    # Wait until every workflow is parked on its subscription.
    while host.get_workflow_instance(ids[-1]).execution_pointers[-1].event_name is None:
        time.sleep(0.01)
    time.sleep(0.2)
    resume, publish_cost = [], []
    step = max(1, waiting // samples)
    for n in range(0, waiting, step)[:samples]:
        sent = datetime.now(timezone.utc)
        before = time.perf_counter()
        host.publish_event("go", f"k{n}", None)
        publish_cost.append((time.perf_counter() - before) * 1000)
        instance = host.wait_for_workflow(ids[n], timeout=30)
        waited = next(p for p in instance.execution_pointers if p.event_name)
        assert waited.end_time is not None
        resume.append((waited.end_time - sent).total_seconds() * 1000)
    return resume, publish_cost


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workflows", type=int, default=10_000)
    parser.add_argument("--waiting", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=500)
    args = parser.parse_args()

    with configure_workflow_host() as host:
        host.register_workflow(ThreeSteps())
        host.register_workflow(WaitsForEvent())
        host.start_workflow("ThreeSteps")  # warm up
        rate, gaps = throughput(host, args.workflows)
        print(f"memory: {args.workflows} three-step workflows: {rate:,.0f} workflows/s")
        print(f"memory: step-to-step latency p50 {statistics.median(gaps):.3f} ms, p99 {percentile(gaps, 0.99):.3f} ms")

    for waiting in (100, args.waiting):
        with configure_workflow_host() as host:
            host.register_workflow(WaitsForEvent())
            resume, cost = event_latency(host, waiting, min(args.samples, waiting))
            print(
                f"memory: {waiting:>6} waiting: publish-to-resume p50 {statistics.median(resume):.3f} ms, "
                f"p99 {percentile(resume, 0.99):.3f} ms; publish_event call p50 {statistics.median(cost):.3f} ms"
            )


if __name__ == "__main__":
    main()
