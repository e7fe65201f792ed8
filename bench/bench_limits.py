"""The cost of a concurrency limit: three-step workflows with no limit, with a limit on the whole
definition, and with a limit per key, on the memory host and on SQLite. Prints numbers; never
passes or fails.

python bench/bench_limits.py [--workflows 2000] [--sqlite-workflows 500]

A limited instance reads its slot records (and, when it must wait, the waiting instances) at each
pass, and writes its slot when it takes and frees one: the figures say what that costs per workflow.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from liteflow.core import (
    Concurrency,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    configure_workflow_host,
)


class Noop(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        pass


class Free(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Noop).then(Noop).then(Noop)


class LimitedInAll(Free):
    def concurrency(self) -> Concurrency:
        return Concurrency(limit=4)  # as many as the host has workers: a limit that rarely makes anyone wait


class LimitedPerKey(Free):
    def concurrency(self) -> Concurrency:
        return Concurrency(limit=1, key=lambda data: data["customer"])


def run(store: str | None, workflow: str, count: int) -> float:
    host = configure_workflow_host(store)
    for definition in (Free(), LimitedInAll(), LimitedPerKey()):
        host.register_workflow(definition)
    with host:
        started = time.perf_counter()
        ids = [host.start_workflow(workflow, data={"customer": f"c{n % 100}"}) for n in range(count)]
        for workflow_id in ids:
            host.wait_for_workflow(workflow_id, timeout=600)
        elapsed = time.perf_counter() - started
    host.persistence.close()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workflows", type=int, default=2000)
    parser.add_argument("--sqlite-workflows", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        for label, count, store in (
            ("memory", args.workflows, None),
            ("sqlite", args.sqlite_workflows, f"sqlite:///{directory}/limits.db"),
        ):
            rates = {w: run(store, w, count) for w in ("Free", "LimitedInAll", "LimitedPerKey")}
            free = rates["Free"]
            print(
                f"{label}: {count} three-step workflows: no limit {free:,.0f}/s; "
                f"limit 4 in all {rates['LimitedInAll']:,.0f}/s ({rates['LimitedInAll'] / free:.0%}); "
                f"limit 1 per key (100 keys) {rates['LimitedPerKey']:,.0f}/s ({rates['LimitedPerKey'] / free:.0%})",
                flush=True,
            )


if __name__ == "__main__":
    main()
