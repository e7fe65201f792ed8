"""Retry policy: a step that keeps failing is retried with exponential backoff (100, 200, 400 ms),
and after the fourth failure the workflow is terminated. Every failure is recorded."""

from datetime import timedelta

from liteflow.core import *


class CallPaymentApi(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        attempt = context.execution_pointer.retry_count + 1
        print(f"calling the payment API (attempt {attempt})")
        raise ConnectionError("payment API unavailable")


POLICY = RetryPolicy(
    max_attempts=4,
    initial_interval=timedelta(milliseconds=100),
    backoff=2.0,
    then=WorkflowStep.TERMINATE,
)


class MyWorkflow(Workflow):
    def build(self, builder: WorkflowBuilder):
        builder.start_with(CallPaymentApi).on_error(POLICY).then(lambda context: print("never printed"))


host = configure_workflow_host()
host.register_workflow(MyWorkflow())
host.start()

wid = host.start_workflow("MyWorkflow", 1, None)
instance = host.wait_for_workflow(wid, timeout=5)
print(f"Workflow is {instance.status.value}")
errors = host.get_workflow_errors(wid)
for error in errors:
    after = (error.error_time - errors[0].error_time).total_seconds()
    print(f"  attempt {error.attempt} at +{after:.1f} s: {error.error_type}: {error.message}")
host.stop()
