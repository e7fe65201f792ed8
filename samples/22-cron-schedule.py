"""A cron schedule: a nightly report at 02:30 in Berlin, over the week clocks go forward.

On a real host the schedule runs on the wall clock; here ``WorkflowTestHost`` moves a manual clock
a quarter of an hour at a time, so the week takes milliseconds. Each night starts exactly one
instance, with the id ``nightly-report@<tick in UTC>``; on the night of the change, 02:30 does not
exist in Berlin, so the report runs at the change, 03:00 summer time."""

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from liteflow.core import *
from liteflow.testing import WorkflowTestHost

BERLIN = ZoneInfo("Europe/Berlin")


class Report(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        tick = context.workflow.create_time.astimezone(BERLIN)
        print(f"report {context.workflow.id} ran at {tick:%a %H:%M %Z} (data {context.workflow.data})")


class NightlyReport(Workflow):
    def build(self, builder: WorkflowBuilder):
        builder.start_with(Report)


test = WorkflowTestHost(NightlyReport(), start=datetime(2030, 3, 28, 12, tzinfo=timezone.utc))
test.host.schedule_workflow(
    "nightly-report", "NightlyReport", cron="30 2 * * *", timezone="Europe/Berlin", data={"kind": "sales"}
)
for _ in range(5 * 24 * 4):  # five days, a quarter of an hour at a time
    test.advance(timedelta(minutes=15))

test.host.pause_schedule("nightly-report")
print("paused:", [(s.schedule_id, s.paused) for s in test.host.list_schedules()])
test.host.delete_schedule("nightly-report")
print("schedules left:", test.host.list_schedules())
