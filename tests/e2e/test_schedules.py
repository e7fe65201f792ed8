"""Cron schedules on the manual clock: ticks, daylight saving changes, catch-up, controls."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from liteflow.core import (
    InvalidArgumentError,
    Schedule,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowNotFoundError,
    WorkflowNotRegisteredError,
    WorkflowStatus,
)
from liteflow.testing import WorkflowTestHost

UTC = timezone.utc


class Nightly(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(lambda context: _record(context))


def _record(context: StepExecutionContext) -> None:
    context.workflow.data = {**(context.workflow.data or {}), "ran": True}


def runs(test: WorkflowTestHost, workflow_id: str = "Nightly") -> list[str]:
    """Ids of the instances the schedule started, in order."""
    found = test.host.query_workflows(workflow_id=workflow_id, limit=10_000)
    return sorted(i.id for i in found)


def run_times(test: WorkflowTestHost, schedule_id: str = "nightly") -> list[datetime]:
    return [datetime.fromisoformat(i.split("@")[1].replace("Z", "+00:00")) for i in runs(test)]


def make(start: datetime, **schedule: Any) -> WorkflowTestHost:
    test = WorkflowTestHost(Nightly(), start=start)
    options = {"cron": "0 3 * * *", "timezone": "UTC", **schedule}
    test.host.schedule_workflow("nightly", "Nightly", **options)
    test.run_until_idle()
    return test


def test_a_week_of_hourly_advances_starts_one_instance_per_night() -> None:
    test = make(datetime(2030, 1, 1, tzinfo=UTC), data={"n": 1})
    for _ in range(7 * 24):
        test.advance(timedelta(hours=1))
    assert run_times(test) == [datetime(2030, 1, d, 3, tzinfo=UTC) for d in range(1, 8)]
    assert runs(test)[0] == "nightly@2030-01-01T03:00:00Z"
    for instance in test.host.query_workflows(workflow_id="Nightly"):
        assert instance.status is WorkflowStatus.COMPLETE
        assert instance.data == {"n": 1, "ran": True}  # each got its own copy of the data
    [schedule] = test.host.list_schedules()
    assert schedule == Schedule(
        schedule_id="nightly",
        workflow_id="Nightly",
        cron="0 3 * * *",
        timezone="UTC",
        version=None,
        data={"n": 1},
        catch_up="one",
        paused=False,
        next_run=datetime(2030, 1, 8, 3, tzinfo=UTC),
    )


def test_nothing_starts_before_the_first_tick() -> None:
    test = make(datetime(2030, 1, 1, 3, 0, 1, tzinfo=UTC))
    test.advance(timedelta(hours=23, minutes=59))
    assert runs(test) == []
    test.advance(timedelta(minutes=1))
    assert run_times(test) == [datetime(2030, 1, 2, 3, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # Spring forward, 2030-03-31: 02:30 does not exist in Berlin, it runs at the change (03:00 CEST).
        (
            datetime(2030, 3, 29, 12, tzinfo=UTC),
            [
                datetime(2030, 3, 30, 1, 30, tzinfo=UTC),  # 02:30 CET
                datetime(2030, 3, 31, 1, 0, tzinfo=UTC),  # 03:00 CEST
                datetime(2030, 4, 1, 0, 30, tzinfo=UTC),  # 02:30 CEST
            ],
        ),
        # Fall back, 2030-10-27: 02:30 happens twice in Berlin, it runs once, the first time.
        (
            datetime(2030, 10, 25, 12, tzinfo=UTC),
            [
                datetime(2030, 10, 26, 0, 30, tzinfo=UTC),  # 02:30 CEST
                datetime(2030, 10, 27, 0, 30, tzinfo=UTC),  # the first 02:30 (CEST)
                datetime(2030, 10, 28, 1, 30, tzinfo=UTC),  # 02:30 CET
            ],
        ),
    ],
    ids=["spring-forward", "fall-back"],
)
def test_daylight_saving_changes_give_one_run_a_day(start: datetime, expected: list[datetime]) -> None:
    test = make(start, cron="30 2 * * *", timezone="Europe/Berlin", catch_up="none")
    for _ in range(3 * 24 * 4):  # three days, a quarter of an hour at a time
        test.advance(timedelta(minutes=15))
    assert run_times(test) == expected


@pytest.mark.parametrize(
    ("catch_up", "expected_days"),
    [("none", []), ("one", [5]), ("all", [2, 3, 4, 5])],
)
def test_catch_up_after_downtime(catch_up: str, expected_days: list[int]) -> None:
    test = make(datetime(2030, 1, 1, 12, tzinfo=UTC), catch_up=catch_up)
    test.advance(timedelta(days=4))  # no host ran from day 1 noon to day 5 noon: four ticks missed
    assert run_times(test) == [datetime(2030, 1, d, 3, tzinfo=UTC) for d in expected_days]
    test.advance(timedelta(hours=15))  # after catching up, the schedule is back on time
    assert run_times(test)[-1] == datetime(2030, 1, 6, 3, tzinfo=UTC)


def test_catch_up_none_still_runs_a_tick_that_is_only_a_little_late() -> None:
    test = make(datetime(2030, 1, 1, 2, 59, tzinfo=UTC), catch_up="none")
    test.advance(timedelta(seconds=90))
    assert run_times(test) == [datetime(2030, 1, 1, 3, tzinfo=UTC)]


def test_catch_up_all_starts_a_long_backlog_over_several_passes() -> None:
    test = make(datetime(2030, 1, 1, tzinfo=UTC), cron="*/5 * * * *", catch_up="all")
    test.advance(timedelta(hours=10))  # 120 ticks: more than one pass starts
    assert len(runs(test)) == 120
    assert run_times(test)[-1] == datetime(2030, 1, 1, 10, tzinfo=UTC)


def test_pause_resume_and_delete() -> None:
    test = make(datetime(2030, 1, 1, tzinfo=UTC), catch_up="none")
    test.host.pause_schedule("nightly")
    test.host.pause_schedule("nightly")  # twice is fine
    assert test.host.list_schedules()[0].paused
    assert test.host.list_schedules()[0].next_run is None
    test.advance(timedelta(days=2))
    assert runs(test) == []
    test.host.resume_schedule("nightly")
    test.run_until_idle()
    assert not test.host.list_schedules()[0].paused
    test.advance(timedelta(hours=3))
    assert run_times(test) == [datetime(2030, 1, 3, 3, tzinfo=UTC)]
    test.host.delete_schedule("nightly")
    test.advance(timedelta(days=3))
    assert len(runs(test)) == 1
    assert test.host.list_schedules() == []
    with pytest.raises(WorkflowNotFoundError, match="no schedule 'nightly'"):
        test.host.pause_schedule("nightly")
    # Created again after deletion: it starts afresh.
    test.host.schedule_workflow("nightly", "Nightly", cron="0 3 * * *", timezone="UTC")
    test.advance(timedelta(days=1))
    assert run_times(test)[-1] == datetime(2030, 1, 7, 3, tzinfo=UTC)


def test_scheduling_again_updates_without_starting_twice() -> None:
    test = make(datetime(2030, 1, 1, tzinfo=UTC))
    test.host.schedule_workflow("nightly", "Nightly", cron="0 3 * * *", timezone="UTC")  # a restarted host
    test.advance(timedelta(days=1))
    assert len(runs(test)) == 1
    test.host.schedule_workflow("nightly", "Nightly", cron="0 4 * * *", timezone="UTC", data={"v": 2})
    test.advance(timedelta(days=1))
    assert run_times(test) == [datetime(2030, 1, 1, 3, tzinfo=UTC), datetime(2030, 1, 2, 4, tzinfo=UTC)]
    assert test.host.list_schedules()[0].data == {"v": 2}


def test_a_tick_already_started_is_not_started_again() -> None:
    """What a second host running the same schedule (or a re-run pass) meets: the tick's id exists."""
    test = make(datetime(2030, 1, 1, tzinfo=UTC))
    test.advance(timedelta(days=1))
    schedule = test.host.get_workflow_instance("liteflow.schedule:nightly")
    schedule.data["after"] = datetime(2030, 1, 1, tzinfo=UTC).isoformat()  # as if the save was lost
    schedule.next_execution = test.clock.now
    test.host.persistence.persist_workflow(schedule)
    test.run_until_idle()
    assert runs(test) == ["nightly@2030-01-01T03:00:00Z"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cron": "61 * * * *"}, "invalid cron expression '61 \\* \\* \\* \\*'"),
        ({"cron": "0 0 30 2 *"}, "invalid cron expression"),
        ({"cron": 5}, "cron must be a string"),
        ({"timezone": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
        ({"catch_up": "some"}, "catch_up must be one of none, one, all, got 'some'"),
        ({"schedule_id": "bad id"}, "a schedule id is 1 to 100"),
        ({"schedule_id": "x@y"}, "a schedule id is 1 to 100"),
    ],
)
def test_bad_arguments_are_refused_with_a_clear_error(change: dict[str, Any], message: str) -> None:
    test = WorkflowTestHost(Nightly())
    arguments = {"schedule_id": "s", "workflow_id": "Nightly", "cron": "0 3 * * *", **change}
    with pytest.raises(InvalidArgumentError, match=message):
        test.host.schedule_workflow(**arguments)
    assert test.host.list_schedules() == []


def test_an_unregistered_workflow_is_refused() -> None:
    test = WorkflowTestHost(Nightly())
    with pytest.raises(WorkflowNotRegisteredError, match="Nighty"):
        test.host.schedule_workflow("s", "Nighty", cron="0 3 * * *")


def test_the_schedule_definition_is_not_listed_as_a_user_workflow() -> None:
    test = WorkflowTestHost(Nightly())
    assert [d.id for d in test.host.registry.definitions()] == ["Nightly"]
