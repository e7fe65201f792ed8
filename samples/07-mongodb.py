"""MongoDB persistence: the workflow's state lives in MongoDB between steps, so it survives a
restart of the host.

Needs pymongo (pip install "liteflow-engine[mongo]") and a MongoDB server, by default on
localhost:27017; set LITEFLOW_MONGO_URL to use another.
"""

import os

from liteflow.core import *
from liteflow.providers.mongo import MongoPersistenceProvider


class Hello(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        print("Hello world")


class Goodbye(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        print("Goodbye")
        return ExecutionResult.next()


class MyData:
    def __init__(self):
        self.captured_value = None


class MyWorkflow(Workflow):
    def build(self, builder: WorkflowBuilder):
        builder.start_with(Hello).wait_for("event1", lambda data, context: "key1").output(
            "captured_value", lambda step: step.event_data
        ).then(Goodbye)


persistence = MongoPersistenceProvider(os.environ.get("LITEFLOW_MONGO_URL", "mongodb://localhost:27017/"), "liteflow")
host = configure_workflow_host(persistence)
host.register_workflow(MyWorkflow())
host.start()

wid = host.start_workflow("MyWorkflow", 1, MyData())

# The subscription, the event and every step's result are stored in the "liteflow" database
host.publish_event("event1", "key1", "hello")

instance = host.wait_for_workflow(wid, timeout=30)
print(f"captured_value = {instance.data.captured_value} ({instance.status.value})")
host.stop()
persistence.close()
