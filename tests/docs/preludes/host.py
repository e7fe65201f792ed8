# requires: steps
"""A running host in memory, stopped when the page is done, and the steps of ``steps``.

``workflow_id`` is an instance of ``OrderWorkflow`` (steps "charge", a wait for the event
("paid", "order-42"), "ship") started with the reference "order-42"; ``MyWorkflow`` (Hello,
AddNumbers, Goodbye) is registered too."""


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
    return started, started.start_workflow("OrderWorkflow", reference="order-42")


host, workflow_id = start_docs_host()
