"""Sagas: a trip booking whose payment fails; the bookings made so far are undone, latest first,
and the workflow goes on after the saga."""

from liteflow.core import *


class BookHotel(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        print("book hotel")


class CancelHotel(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        print("cancel hotel")


class BookFlight(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        print("book flight")


class CancelFlight(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        print("cancel flight")


class TakePayment(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        print("take payment")
        raise RuntimeError("card declined")


class SendItinerary(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        print("send itinerary")


class NotifyCustomer(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        print("notify customer")


class TripWorkflow(Workflow):
    def build(self, builder: WorkflowBuilder):
        builder.start_with(lambda context: print("trip requested")).saga(
            lambda saga: (
                saga.start_with(BookHotel)
                .compensate_with(CancelHotel)
                .then(BookFlight)
                .compensate_with(CancelFlight)
                .then(TakePayment)
                .then(SendItinerary)
            )
        ).then(NotifyCustomer)


host = configure_workflow_host()
host.register_workflow(TripWorkflow())
host.start()

wid = host.start_workflow("TripWorkflow", 1, None)
instance = host.wait_for_workflow(wid, timeout=5)
print(f"Workflow is {instance.status.value}")
for error in host.get_workflow_errors(wid):
    print(f"  recorded error: {error.message}")
host.stop()
