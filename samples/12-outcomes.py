"""Outcomes: a step completes with an outcome value and when(value) runs the block for it; then
decide(...) picks a branch from the workflow data. After either, the workflow goes on."""

from liteflow.core import *


class CheckRisk(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        risk = "low" if context.workflow.data.total < 1000 else "high"
        print(f"risk: {risk}")
        return ExecutionResult.outcome(risk)


class MyData:
    def __init__(self, total):
        self.total = total


class OrderWorkflow(Workflow):
    def build(self, builder: WorkflowBuilder):
        by_post = builder.create_branch().start_with(lambda context: print("ship by post"))
        builder.start_with(CheckRisk).when("low").do(
            lambda then: then.start_with(lambda context: print("accepted at once"))
        ).when("high").do(lambda then: then.start_with(lambda context: print("held for a manual check"))).decide(
            lambda data, context: "small" if data.total < 100 else "large"
        ).branch("small", by_post).branch(
            "large", lambda branch: branch.start_with(lambda context: print("ship by courier"))
        ).then(lambda context: print("done"))


host = configure_workflow_host()
host.register_workflow(OrderWorkflow())
host.start()

for total in (50, 500, 5000):
    print(f"--- total = {total}")
    wid = host.start_workflow("OrderWorkflow", 1, MyData(total))
    instance = host.wait_for_workflow(wid, timeout=5)
    print(f"outcome of CheckRisk: {instance.execution_pointers[0].outcome!r} ({instance.status.value})")
host.stop()
