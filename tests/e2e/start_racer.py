"""One process of the idempotent-start race (tests/e2e/test_starting_workflows.py).

    python start_racer.py STORE_URL NODE

Configures a host on the store (never started: it runs nothing), prints ``READY``, waits for a
line on stdin, then starts ``Order`` with the instance id ``order-42`` and prints the id it got.
"""

from __future__ import annotations

import sys

from liteflow.core import StepBody, StepExecutionContext, Workflow, WorkflowBuilder, configure_workflow_host


class Noop(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        pass


class Order(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Noop)


def main() -> None:
    store, node = sys.argv[1], sys.argv[2]
    host = configure_workflow_host(store)
    host.register_workflow(Order())
    print("READY", flush=True)
    sys.stdin.readline()
    started = host.start_workflow("Order", data={"node": node}, instance_id="order-42")
    print(f"STARTED {started}", flush=True)
    host.persistence.close()


if __name__ == "__main__":
    main()
