"""Error handling: a failing step is retried after an interval until it succeeds."""

from datetime import timedelta

from liteflow.core import *


class Flaky(StepBody):
    attempts = 0

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        Flaky.attempts += 1
        print(f"attempt {Flaky.attempts}")
        if Flaky.attempts < 3:
            raise ConnectionError(f"service unavailable (attempt {Flaky.attempts})")
        print("it worked")
        return ExecutionResult.next()


class MyWorkflow(Workflow):
    def build(self, builder: WorkflowBuilder):
        builder.start_with(Flaky).on_error(WorkflowStep.RETRY, timedelta(milliseconds=200))


host = configure_workflow_host()
host.register_workflow(MyWorkflow())
host.start()

wid = host.start_workflow("MyWorkflow", 1, None)
instance = host.wait_for_workflow(wid, timeout=5)
print(f"Workflow is {instance.status.value} after {Flaky.attempts} attempts")
for error in host.get_workflow_errors(wid):
    print(f"  error on attempt {error.attempt}: {error.message}")
host.stop()
