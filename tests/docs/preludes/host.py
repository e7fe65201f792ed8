# requires: steps
"""A running host in memory, stopped when the page is done, and the steps of ``steps``.

``workflow_id`` is an instance of ``OrderWorkflow`` (steps "charge", a wait for the event
("paid", "order-42"), "ship") started with the reference "order-42"; ``MyWorkflow`` (Hello,
AddNumbers, Goodbye) is registered too."""

import time


class OrderWorkflow(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        (
            builder.start_with(Hello).name("charge")
            .wait_for("paid", lambda data, context: "order-42")
            .then(Goodbye).name("ship")
        )  # fmt: skip


class MyWorkflow(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        (
            builder.start_with(Hello)
            .then(AddNumbers)
            .input("input1", lambda data, context: data.value1)
            .input("input2", lambda data, context: data.value2)
            .output("value3", lambda step: step.output)
            .then(Goodbye)
        )


def start_docs_host() -> tuple[WorkflowHost, str]:
    """A started host with both workflows and a waiting ``OrderWorkflow``, stopped at teardown."""
    started = configure_workflow_host()
    started.register_workflow(OrderWorkflow())
    started.register_workflow(MyWorkflow())
    started.start()
    teardown.append(started.stop)
    workflow_id = started.start_workflow("OrderWorkflow", reference="order-42")
    _until_parked(started, workflow_id)
    return started, workflow_id


def _until_parked(started: WorkflowHost, workflow_id: str) -> None:
    """Until the instance waits for its event and no worker holds it: a control asked for earlier
    would only be recorded, to be applied when the running turn ends, and a page's block expects
    it to apply at once."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pointers = started.get_workflow_instance(workflow_id).execution_pointers
        if any(p.status is PointerStatus.WAITING_FOR_EVENT for p in pointers) and started.lock.acquire(workflow_id):
            started.lock.release(workflow_id)
            return
        time.sleep(0.005)  # polling a condition, with the deadline above
    raise AssertionError(f"workflow {workflow_id} never reached its wait_for step")


host, workflow_id = start_docs_host()
