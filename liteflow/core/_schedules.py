"""Cron schedules: start a workflow at every tick of a cron expression, once per tick in a cluster.

A schedule is itself a small workflow instance of the reserved definition ``liteflow.schedule``,
with the instance id ``liteflow.schedule:<schedule id>`` and the schedule in its data. Its one step
starts the ticks that are due and sleeps until the next one. So a schedule needs nothing from a
provider beyond the persistence contract, is stored wherever the workflows are, is run by whichever
host takes it (locks and revision-checked saves as for any workflow), and works with
``WorkflowTestHost`` and its manual clock.

Exactly once per tick: the instance a tick starts has the id ``<schedule id>@<tick, UTC>``, and a
store refuses a second instance with an existing id (``ConcurrencyError``), which counts as
"already started". A host that dies between starting a tick and saving the schedule, or two hosts
running the same schedule after a lapsed lock, start nothing twice.

Ticks are computed by ``cronsim`` on times in the schedule's zone, with cron's own rules for
daylight saving changes: a fixed time skipped by the spring change runs at the change (02:30 runs
at 03:00 the new time), a fixed time that happens twice in autumn runs once (the first time), and
a wildcard hour (``*/15 * * * *``) runs in both occurrences of the repeated hour.

Pausing, resuming and deleting are the suspend, resume and terminate controls of the schedule's
instance, so they are recorded durably and applied even while the schedule's step runs.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from ._builder import Workflow, WorkflowBuilder
from ._errors import ConcurrencyError, InvalidArgumentError, InvalidOperationError, WorkflowNotFoundError
from ._lifecycle import LifecycleEventType
from ._models import ExecutionPointer, WorkflowInstance, WorkflowStatus
from ._payload import check_payload
from ._providers import InstanceQuery, QueueType
from ._steps import ExecutionResult, StepBody, StepExecutionContext

if TYPE_CHECKING:
    from ._host import WorkflowHost

SCHEDULE_WORKFLOW = "liteflow.schedule"
INSTANCE_PREFIX = SCHEDULE_WORKFLOW + ":"
CatchUp = Literal["none", "one", "all"]
_CATCH_UP = ("none", "one", "all")
ON_TIME = timedelta(minutes=1)
"""A tick started at most this late counts as on time: ``catch_up="none"`` still starts it."""
MAX_TICKS_PER_PASS = 100
"""``catch_up="all"`` starts at most this many missed ticks per pass, then goes on in the next."""
_STATE = ("after", "next")  # the schedule's progress, kept in its data beside its spec
_SCHEDULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")

running_host: ContextVar[WorkflowHost | None] = ContextVar("liteflow_running_host", default=None)
"""The host running the current pass (set by the host): the schedule step starts ticks through it,
whichever registry it was found in."""


@dataclass(frozen=True)
class Schedule:
    """A cron schedule as :meth:`WorkflowHost.list_schedules` reports it."""

    schedule_id: str
    workflow_id: str
    cron: str
    timezone: str
    version: int | None
    data: Any
    catch_up: str
    paused: bool
    next_run: datetime | None
    """When the schedule's next tick is due (UTC); None while paused, or before a host has run the
    schedule for the first time."""


def tick_instance_id(schedule_id: str, tick: datetime) -> str:
    """The id of the instance a tick starts: the same on every host, so it starts once."""
    return f"{schedule_id}@{tick.astimezone(timezone.utc):%Y-%m-%dT%H:%M:%SZ}"


# -- ticks --------------------------------------------------------------------------------------


def next_tick(cron: str, zone: str, after: datetime) -> datetime:
    """The first tick strictly after ``after``, in UTC."""
    tick: datetime = next(CronSim(cron, after.astimezone(ZoneInfo(zone))))
    return tick.astimezone(timezone.utc)


def latest_tick(cron: str, zone: str, now: datetime) -> datetime:
    """The last tick at or before ``now``, in UTC (ticks fall on whole minutes)."""
    start = now.replace(microsecond=0) + timedelta(seconds=1)
    tick: datetime = next(CronSim(cron, start.astimezone(ZoneInfo(zone)), reverse=True))
    return tick.astimezone(timezone.utc)


def ticks_between(cron: str, zone: str, after: datetime, until: datetime) -> Iterator[datetime]:
    """Ticks in ``(after, until]``, oldest first, in UTC."""
    for tick in CronSim(cron, after.astimezone(ZoneInfo(zone))):
        if tick > until:
            return
        yield tick.astimezone(timezone.utc)


def due_ticks(spec: dict[str, Any], after: datetime, now: datetime) -> tuple[list[datetime], datetime, bool]:
    """Which ticks in ``(after, now]`` to start under the schedule's catch-up mode.

    Returns the ticks, the new ``after`` (every tick up to it is dealt with) and whether more
    missed ticks remain for the next pass (``catch_up="all"`` beyond :data:`MAX_TICKS_PER_PASS`).
    """
    cron, zone = spec["cron"], spec["timezone"]
    latest = latest_tick(cron, zone, now)
    if latest <= after:
        return [], after, False
    if spec["catch_up"] == "all":
        ticks = []
        for tick in ticks_between(cron, zone, after, now):
            ticks.append(tick)
            if len(ticks) == MAX_TICKS_PER_PASS:
                return ticks, tick, tick < latest
        return ticks, latest, False
    if spec["catch_up"] == "one" or now - latest <= ON_TIME:
        return [latest], latest, False
    return [], latest, False  # "none": the latest tick was missed, not just late


# -- the schedule's workflow --------------------------------------------------------------------


class _ScheduleStep(StepBody):
    """Starts the due ticks of the schedule in the instance's data, then sleeps until the next."""

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        host = running_host.get()
        if host is None:
            raise InvalidOperationError("a schedule runs only inside a workflow host's pass")
        spec: dict[str, Any] = context.workflow.data
        now = host.options.clock()
        after = datetime.fromisoformat(spec["after"])
        ticks, after, more = due_ticks(spec, after, now)
        for tick in ticks:
            _start_tick(host, spec, tick, now)
        spec["after"] = after.isoformat()
        if more:
            return ExecutionResult.persist(None)  # the next pass goes on with the missed ticks
        upcoming = next_tick(spec["cron"], spec["timezone"], after)
        spec["next"] = upcoming.isoformat()
        # Measured from the pass's start, a hair before ``now``: a wake-up a hair early finds no
        # tick due and sleeps the rest of the way.
        return ExecutionResult.sleep(upcoming - now)


class ScheduleWorkflow(Workflow):
    """The reserved definition every host registers to run schedules."""

    def id(self) -> str:
        return SCHEDULE_WORKFLOW

    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(_ScheduleStep)


def _start_tick(host: WorkflowHost, spec: dict[str, Any], tick: datetime, now: datetime) -> None:
    definition = host.registry.get(spec["workflow_id"], spec["version"])
    instance = WorkflowInstance(
        id=tick_instance_id(spec["schedule_id"], tick),
        workflow_definition_id=definition.id,
        version=definition.version,
        data=copy.deepcopy(spec["data"]),
        create_time=now,
        next_execution=now,
        execution_pointers=[ExecutionPointer(step_id=definition.start_step)],
    )
    for middleware in host._lifecycle.middleware:
        middleware.before_start(instance)
    try:
        host.persistence.create_workflow(instance)
    except ConcurrencyError:
        return  # started already, by an earlier run of this pass or another host
    host._lifecycle.publish(instance, LifecycleEventType.WORKFLOW_STARTED, now)
    host._announce(QueueType.WORKFLOW, instance.id)


# -- the host's schedule API --------------------------------------------------------------------


def _check_spec(
    host: WorkflowHost,
    schedule_id: Any,
    workflow_id: Any,
    cron: Any,
    data: Any,
    zone: Any,
    version: Any,
    catch_up: Any,
    check_registered: bool,
) -> dict[str, Any]:
    call = "schedule_workflow"
    check_schedule_id(call, schedule_id)
    if not isinstance(workflow_id, str) or not workflow_id:
        raise InvalidArgumentError(f"{call} needs a workflow id, got {workflow_id!r}")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise InvalidArgumentError(f"{call}: version must be an int or None, got {version!r}")
    if check_registered:
        host.registry.get(workflow_id, version)  # WorkflowNotRegisteredError names the typo now
    if not isinstance(zone, str) or not zone:
        raise InvalidArgumentError(f"{call}: timezone must be an IANA zone name such as 'Europe/Berlin', got {zone!r}")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise InvalidArgumentError(f"{call}: unknown timezone {zone!r}") from error
    if not isinstance(cron, str):
        raise InvalidArgumentError(f"{call}: cron must be a string such as '0 3 * * *', got {cron!r}")
    try:
        next_tick(cron, zone, host.options.clock())
    except (CronSimError, StopIteration) as error:
        raise InvalidArgumentError(f"{call}: invalid cron expression {cron!r}: {error or 'it never fires'}") from error
    if catch_up not in _CATCH_UP:
        raise InvalidArgumentError(f"{call}: catch_up must be one of {', '.join(_CATCH_UP)}, got {catch_up!r}")
    check_payload(data, host.options.max_payload_bytes, "schedule data")
    spec = {"schedule_id": schedule_id, "workflow_id": workflow_id, "version": version, "cron": cron}
    return {**spec, "timezone": zone, "catch_up": catch_up, "data": data}


def check_schedule_id(call: str, schedule_id: Any) -> str:
    if not isinstance(schedule_id, str) or not _SCHEDULE_ID.fullmatch(schedule_id):
        raise InvalidArgumentError(
            f"{call}: a schedule id is 1 to 100 letters, digits, '.', '_', ':' or '-' (starting with a "
            f"letter or digit), got {schedule_id!r}"
        )
    return schedule_id


def schedule_workflow(
    host: WorkflowHost,
    schedule_id: str,
    workflow_id: str,
    *,
    cron: str,
    data: Any,
    zone: str,
    version: int | None,
    catch_up: str,
    check_registered: bool = True,
) -> None:
    """Create the schedule, or update it if it exists (see :meth:`WorkflowHost.schedule_workflow`).
    ``check_registered=False`` is for the command line, which may not know the definitions."""
    spec = _check_spec(host, schedule_id, workflow_id, cron, data, zone, version, catch_up, check_registered)
    now = host.options.clock()
    instance = WorkflowInstance(
        id=INSTANCE_PREFIX + schedule_id,
        workflow_definition_id=SCHEDULE_WORKFLOW,
        version=1,
        data={**spec, "after": now.isoformat()},
        create_time=now,
        next_execution=now,
        execution_pointers=[ExecutionPointer(step_id=0)],
    )
    try:
        host.persistence.create_workflow(instance)
    except ConcurrencyError:
        _update(host, instance, spec)
        return
    host._announce(QueueType.WORKFLOW, instance.id)


def _update(host: WorkflowHost, fresh: WorkflowInstance, spec: dict[str, Any]) -> None:
    """An existing schedule: unchanged (every host calls this at start-up) it is left alone;
    changed, it takes the new spec and keeps its place in time; deleted, it starts afresh."""
    stored = host.persistence.get_workflow_instance(fresh.id)
    old = {k: v for k, v in stored.data.items() if k not in _STATE} if isinstance(stored.data, dict) else None
    if old == spec and not stored.is_finished:
        return
    if not host.lock.acquire(fresh.id):
        raise InvalidOperationError(f"schedule {spec['schedule_id']!r} is being run by a host: try again")
    try:
        stored = host.persistence.get_workflow_instance(fresh.id)
        if stored.is_finished or not isinstance(stored.data, dict):
            stored.data, stored.status = fresh.data, WorkflowStatus.RUNNABLE
            stored.execution_pointers, stored.complete_time = fresh.execution_pointers, None
            stored.compacted = None  # the rounds of the run that ended go with its pointers
        else:
            stored.data = {**spec, "after": stored.data["after"]}  # "next" is planned afresh
        if stored.status is WorkflowStatus.RUNNABLE:
            stored.next_execution = host.options.clock()  # the next tick of the new cron
        host.persistence.persist_workflow(stored)
    finally:
        host._waiting.release(fresh.id)
    host._announce(QueueType.WORKFLOW, fresh.id)


def schedule_instance(host: WorkflowHost, call: str, schedule_id: str) -> WorkflowInstance:
    """The live instance of a schedule, or WorkflowNotFoundError naming the schedule."""
    check_schedule_id(call, schedule_id)
    try:
        instance = host.persistence.get_workflow_instance(INSTANCE_PREFIX + schedule_id)
    except WorkflowNotFoundError:
        instance = None
    if instance is None or instance.is_finished:
        raise WorkflowNotFoundError(f"no schedule {schedule_id!r}")
    return instance


def list_schedules(host: WorkflowHost) -> list[Schedule]:
    """Every schedule not deleted, by id."""
    found: list[Schedule] = []
    for status in (WorkflowStatus.RUNNABLE, WorkflowStatus.SUSPENDED):
        offset = 0
        while True:
            query = InstanceQuery(status=status, workflow_definition_id=SCHEDULE_WORKFLOW, limit=500, offset=offset)
            page = host.persistence.query_instances(query)
            found += [_describe(i) for i in page if isinstance(i.data, dict)]
            if len(page) < query.limit:
                break
            offset += query.limit
    return sorted(found, key=lambda s: s.schedule_id)


def _describe(instance: WorkflowInstance) -> Schedule:
    spec = instance.data
    paused = instance.status is WorkflowStatus.SUSPENDED
    return Schedule(
        schedule_id=spec["schedule_id"],
        workflow_id=spec["workflow_id"],
        cron=spec["cron"],
        timezone=spec["timezone"],
        version=spec["version"],
        data=spec["data"],
        catch_up=spec["catch_up"],
        paused=paused,
        next_run=None if paused or "next" not in spec else datetime.fromisoformat(spec["next"]),
    )


class ScheduleMethods:
    """The schedule methods of :class:`WorkflowHost` (mixed in; each delegates to a function above)."""

    def schedule_workflow(
        self,
        schedule_id: str,
        workflow_id: str,
        cron: str,
        data: Any = None,
        timezone: str = "UTC",
        version: int | None = None,
        catch_up: CatchUp = "one",
    ) -> None:
        """Start ``workflow_id`` at every tick of ``cron``, once per tick across a cluster.

        Calling it again with the same ``schedule_id`` updates the schedule (a call with the same
        arguments, as every host makes at start-up, changes nothing); after
        :meth:`delete_schedule` it creates the schedule afresh.

        Args:
            schedule_id: Names the schedule; the instance of each tick has the id
                ``<schedule_id>@<tick in UTC, e.g. 2030-01-01T03:00:00Z>``.
            workflow_id: The registered workflow to start.
            cron: A five-field cron expression (``"0 3 * * *"``: 03:00 every day), read in
                ``timezone``.
            data: The data each started instance gets (a copy of it).
            timezone: An IANA zone name; daylight saving changes follow cron's rules (see the
                README).
            version: The version to start; None starts the latest registered one.
            catch_up: Ticks missed while no host ran the schedule (or while it was paused):
                ``"none"`` skips them (a tick late by at most a minute still runs), ``"one"``
                runs the latest of them once, ``"all"`` runs every one of them.

        Raises:
            InvalidArgumentError: An invalid id, cron expression, zone or catch-up mode.
            WorkflowNotRegisteredError: ``workflow_id`` (at ``version``) is not registered here.
        """
        schedule_workflow(
            _host(self),
            schedule_id,
            workflow_id,
            cron=cron,
            data=data,
            zone=timezone,
            version=version,
            catch_up=catch_up,
        )

    def pause_schedule(self, schedule_id: str) -> None:
        """Stop starting the schedule's ticks until :meth:`resume_schedule` (pausing twice is a
        no-op). Raises WorkflowNotFoundError for an unknown schedule."""
        host = _host(self)
        if schedule_instance(host, "pause_schedule", schedule_id).status is WorkflowStatus.RUNNABLE:
            host.suspend_workflow(INSTANCE_PREFIX + schedule_id)

    def resume_schedule(self, schedule_id: str) -> None:
        """Start the schedule's ticks again; the ticks missed while it was paused are dealt with
        as after downtime, by its ``catch_up``. Resuming a running schedule is a no-op."""
        host = _host(self)
        if schedule_instance(host, "resume_schedule", schedule_id).status is WorkflowStatus.SUSPENDED:
            host.resume_workflow(INSTANCE_PREFIX + schedule_id)

    def delete_schedule(self, schedule_id: str) -> None:
        """Remove the schedule: no further tick starts (while the schedule's step is running on a
        host, from the end of that pass). Instances started by earlier ticks go on. Raises
        WorkflowNotFoundError for an unknown schedule."""
        host = _host(self)
        schedule_instance(host, "delete_schedule", schedule_id)
        host.terminate_workflow(INSTANCE_PREFIX + schedule_id)

    def list_schedules(self) -> list[Schedule]:
        """Every schedule (paused ones too), ordered by id."""
        return list_schedules(_host(self))


def _host(methods: ScheduleMethods) -> WorkflowHost:
    return cast("WorkflowHost", methods)
