"""The steps and data the documentation's examples take for granted.

Hello, Goodbye, AddNumbers, MyData, DoStuff and Increment are the README's own; every other step an
example names (SendInvoice, Ship, ...) is a step that just goes on."""

from datetime import datetime, timedelta, timezone

from liteflow.core import *


class Hello(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        print("Hello world")


class Goodbye(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        print("Goodbye")
        return ExecutionResult.next()


class AddNumbers(StepBody):
    def __init__(self) -> None:
        self.input1 = 0
        self.input2 = 0
        self.output = 0

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        self.output = self.input1 + self.input2
        return ExecutionResult.next()


class MyData:
    def __init__(self, value1: int = 0, value2: int = 0) -> None:
        self.value1 = value1
        self.value2 = value2
        self.value3 = 0


class DoStuff(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        print(f"doing stuff...{context.execution_pointer.context_item}")
        return ExecutionResult.next()


class Increment(StepBody):
    def __init__(self) -> None:
        self.my_value = 0
        self.your_value = 0

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        self.your_value = self.my_value + 1
        return ExecutionResult.next()


def _go_on(self: StepBody, context: StepExecutionContext) -> None:
    return None


for _name in (
    "Accept Apologise BookFlight BookHotel CallApi CallPaymentApi CancelFlight CancelHotel Charge ChargeCard CheckJob "
    "Close Escalate Fatal HoldForReview Notify NotifyCancelled PlaceOrder PollJob PrintItem Refund RequestApproval "
    "RequestRefund ReserveStock Retrying Risky SendInvoice SendReceipt SendReminder SendSurvey Ship ShipByCourier "
    "ShipByPost SubmitJob TakeOrder TakePayment Upload"
).split():
    globals()[_name] = type(_name, (StepBody,), {"run": _go_on})
