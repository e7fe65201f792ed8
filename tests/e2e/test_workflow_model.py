"""The full workflow model, end to end on the in-process test host (a manual clock)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from liteflow.core import (
    ExecutionResult,
    LifecycleEvent,
    LifecycleEventType,
    PointerStatus,
    RetryPolicy,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowMiddleware,
    WorkflowStatus,
    WorkflowStep,
    WorkflowTimeoutError,
)
from liteflow.testing import WorkflowTestHost


def log(name: str) -> Any:
    """An inline step appending ``name`` (and the branch item, if any) to data["log"]."""

    def step(context: StepExecutionContext) -> None:
        item = context.execution_pointer.context_item
        context.workflow.data["log"].append(name if item is None else f"{name}:{item}")

    step.__qualname__ = name
    return step


def workflow(build: Any, name: str = "Flow", version: int = 1) -> Workflow:
    class Built(Workflow):
        def id(self) -> str:
            return name

        def version(self) -> int:
            return version

        def build(self, builder: WorkflowBuilder) -> None:
            build(builder)

    return Built()


def run(build: Any, data: dict[str, Any] | None = None, **options: Any) -> tuple[WorkflowTestHost, str]:
    test = WorkflowTestHost(workflow(build), **options)
    workflow_id = test.start_workflow("Flow", data={"log": [], **(data or {})})
    return test, workflow_id


def finished(build: Any, data: dict[str, Any] | None = None) -> Any:
    test, workflow_id = run(build, data)
    return test.run_to_completion(workflow_id)


# -- delays, schedules, recurrence ----------------------------------------------------------


def test_a_three_day_delay_finishes_in_test_time_and_takes_three_days_of_clock() -> None:
    test, workflow_id = run(lambda b: b.start_with(log("a")).delay(lambda d, c: timedelta(days=3)).then(log("b")))
    started = test.clock.now
    assert test.instance(workflow_id).data["log"] == ["a"]
    test.advance(timedelta(days=2, hours=23))
    assert test.instance(workflow_id).data["log"] == ["a"]
    instance = test.run_to_completion(workflow_id)
    assert instance.data["log"] == ["a", "b"]
    assert instance.complete_time == started + timedelta(days=3)


def test_schedule_runs_its_block_later_while_the_main_path_goes_on() -> None:
    test, workflow_id = run(
        lambda b: (
            b.start_with(log("start"))
            .schedule(lambda d, c: timedelta(hours=1))
            .do(lambda s: s.start_with(log("scheduled")))
            .then(log("main"))
        )
    )
    assert test.instance(workflow_id).data["log"] == ["start", "main"]
    assert test.instance(workflow_id).status is WorkflowStatus.RUNNABLE
    instance = test.run_to_completion(workflow_id)
    assert instance.data["log"] == ["start", "main", "scheduled"]


def test_recur_repeats_at_the_interval_until_the_condition_holds() -> None:
    def tick(context: StepExecutionContext) -> None:
        context.workflow.data["ticks"] += 1

    instance = finished(
        lambda b: (
            b.start_with(log("start"))
            .recur(lambda d, c: timedelta(minutes=10), lambda d, c: d["ticks"] >= 3)
            .do(lambda r: r.start_with(tick))
            .then(log("main"))
        ),
        {"ticks": 0},
    )
    assert instance.data["ticks"] == 3
    assert instance.data["log"] == ["start", "main"]
    assert instance.complete_time - instance.create_time == timedelta(minutes=30)


# -- parallel, outcomes, decisions, sequential foreach ---------------------------------------


def test_parallel_branches_all_run_and_join_before_going_on() -> None:
    instance = finished(
        lambda b: (
            b.start_with(log("start"))
            .parallel()
            .do(lambda p: p.start_with(log("a1")).delay(lambda d, c: timedelta(minutes=5)).then(log("a2")))
            .do(lambda p: p.start_with(log("b1")))
            .join()
            .then(log("end"))
        )
    )
    assert instance.data["log"][0] == "start" and instance.data["log"][-1] == "end"
    assert sorted(instance.data["log"][1:-1]) == ["a1", "a2", "b1"]
    assert instance.data["log"].index("a2") == 3


class Choose(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        return ExecutionResult.outcome(context.workflow.data["choice"])


# An outcome no block matches goes on after the blocks, as in Workflow Core.
@pytest.mark.parametrize(("choice", "expected"), [(1, ["one", "after"]), (2, ["two", "after"]), (3, ["after"])])
def test_when_runs_the_block_of_the_outcome_then_goes_on(choice: int, expected: list[str]) -> None:
    instance = finished(
        lambda b: (
            b.start_with(Choose)
            .when(1)
            .do(lambda w: w.start_with(log("one")))
            .when(2)
            .do(lambda w: w.start_with(log("two")))
            .then(log("after"))
        ),
        {"choice": choice},
    )
    assert instance.data["log"] == expected
    assert instance.execution_pointers[0].outcome == choice


def test_decide_runs_the_matching_branch_then_goes_on() -> None:
    def build(b: WorkflowBuilder) -> None:
        low = b.create_branch().start_with(log("low")).then(log("low2"))
        b.start_with(log("start")).decide(lambda d, c: "low" if d["n"] < 5 else "high").branch("low", low).branch(
            "high", lambda h: h.start_with(log("high"))
        ).then(log("end"))

    assert finished(build, {"n": 1}).data["log"] == ["start", "low", "low2", "end"]
    assert finished(build, {"n": 9}).data["log"] == ["start", "high", "end"]


def test_sequential_foreach_runs_items_in_order_one_at_a_time() -> None:
    instance = finished(
        lambda b: (
            b.start_with(log("start"))
            .for_each(lambda d, c: [3, 1, 2], run_parallel=False)
            .do(lambda x: x.start_with(log("in")).delay(lambda d, c: timedelta(seconds=c.item)).then(log("out")))
            .then(log("end"))
        )
    )
    assert instance.data["log"] == ["start", "in:3", "out:3", "in:1", "out:1", "in:2", "out:2", "end"]


# -- sagas and compensation -----------------------------------------------------------------


def fail(context: StepExecutionContext) -> None:
    context.workflow.data["log"].append("fail")
    raise RuntimeError("card declined")


def test_saga_compensates_completed_steps_in_reverse_order_then_goes_on() -> None:
    instance = finished(
        lambda b: (
            b.start_with(log("start"))
            .saga(
                lambda s: (
                    s.start_with(log("book-hotel"))
                    .compensate_with(log("cancel-hotel"))
                    .then(log("book-flight"))
                    .compensate_with(log("cancel-flight"))
                    .then(fail)
                    .compensate_with(log("never"))
                    .then(log("unreached"))
                )
            )
            .then(log("after"))
        )
    )
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data["log"] == [
        "start",
        "book-hotel",
        "book-flight",
        "fail",
        "cancel-flight",
        "cancel-hotel",
        "after",
    ]


def test_saga_compensation_covers_nested_containers_latest_first() -> None:
    instance = finished(
        lambda b: (
            b.start_with(log("start"))
            .saga(
                lambda s: (
                    s.start_with(log("reserve"))
                    .compensate_with(log("release"))
                    .for_each(lambda d, c: ["x", "y"], run_parallel=False)
                    .do(lambda x: x.start_with(log("charge")).compensate_with(log("refund")))
                    .then(fail)
                )
            )
            .compensate_with(log("saga-undone"))
        )
    )
    assert instance.data["log"] == [
        "start",
        "reserve",
        "charge:x",
        "charge:y",
        "fail",
        "refund:y",
        "refund:x",
        "release",
        "saga-undone",
    ]


def test_compensate_outside_a_saga_undoes_the_workflow_and_terminates_it() -> None:
    test, workflow_id = run(
        lambda b: b.start_with(log("a")).compensate_with(log("undo-a")).then(fail).on_error(WorkflowStep.COMPENSATE)
    )
    instance = test.run_to_completion(workflow_id)
    assert instance.status is WorkflowStatus.TERMINATED
    assert instance.data["log"] == ["a", "fail", "undo-a"]
    assert [e.message for e in test.errors(workflow_id)] == ["card declined"]


# -- retries ---------------------------------------------------------------------------------


class Flaky(StepBody):
    def run(self, context: StepExecutionContext) -> None:
        context.workflow.data["attempts"] += 1
        if context.workflow.data["attempts"] < context.workflow.data["succeed_on"]:
            raise ConnectionError(f"attempt {context.workflow.data['attempts']}")


POLICY = RetryPolicy(max_attempts=3, initial_interval=timedelta(seconds=10), backoff=2.0, then=WorkflowStep.TERMINATE)


def test_retry_policy_succeeds_on_the_third_attempt_with_exponential_backoff() -> None:
    test, workflow_id = run(
        lambda b: b.start_with(Flaky).on_error(POLICY).then(log("done")), {"attempts": 0, "succeed_on": 3}
    )
    started = test.clock.now
    instance = test.run_to_completion(workflow_id)
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data["log"] == ["done"]
    errors = test.errors(workflow_id)
    assert [e.attempt for e in errors] == [1, 2]
    assert [e.error_time - started for e in errors] == [timedelta(0), timedelta(seconds=10)]
    assert instance.complete_time - started == timedelta(seconds=30)


def test_exhausted_retries_apply_the_final_behaviour() -> None:
    test, workflow_id = run(
        lambda b: b.start_with(Flaky).on_error(POLICY).then(log("done")), {"attempts": 0, "succeed_on": 99}
    )
    instance = test.run_to_completion(workflow_id)
    assert instance.status is WorkflowStatus.TERMINATED
    assert instance.data["attempts"] == 3
    assert [e.attempt for e in test.errors(workflow_id)] == [1, 2, 3]
    assert all(e.error_type == "builtins.ConnectionError" and e.traceback for e in test.errors(workflow_id))


def test_by_default_a_failing_step_is_retried_a_bounded_number_of_times_then_suspended() -> None:
    test, workflow_id = run(lambda b: b.start_with(Flaky), {"attempts": 0, "succeed_on": 99})
    with pytest.raises(WorkflowTimeoutError, match="suspended"):
        test.run_to_completion(workflow_id)
    assert test.instance(workflow_id).status is WorkflowStatus.SUSPENDED
    assert len(test.errors(workflow_id)) == 10


def test_workflow_wide_default_error_behaviour() -> None:
    test, workflow_id = run(
        lambda b: b.use_default_error_behavior(WorkflowStep.TERMINATE).start_with(Flaky),
        {"attempts": 0, "succeed_on": 2},
    )
    assert test.instance(workflow_id).status is WorkflowStatus.TERMINATED


# -- cancellation, end, attach, timeouts -----------------------------------------------------


def set_flag(context: StepExecutionContext) -> None:
    context.workflow.data["stop"] = True


def test_cancel_condition_ends_a_wait_and_can_proceed() -> None:
    test, workflow_id = run(
        lambda b: (
            b.start_with(log("start"))
            .parallel()
            .do(
                lambda p: (
                    p.start_with(log("waiting"))
                    .wait_for("never", lambda d, c: "k")
                    .cancel_condition(lambda d, c: d.get("stop", False), proceed_after_cancel=True)
                    .then(log("after-cancel"))
                )
            )
            .do(lambda p: p.start_with(log("other")).delay(lambda d, c: timedelta(minutes=1)).then(set_flag))
            .join()
            .then(log("end"))
        )
    )
    instance = test.run_to_completion(workflow_id)
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data["log"][-2:] == ["after-cancel", "end"]
    waiting = [p for p in instance.execution_pointers if p.event_name == "never"]
    assert waiting[0].status is PointerStatus.CANCELLED


def test_end_workflow_completes_at_once_and_raises_completed_lifecycle_event() -> None:
    test = WorkflowTestHost(workflow(lambda b: b.start_with(log("a")).end_workflow().then(log("unreached"))))
    events: list[LifecycleEvent] = []
    test.host.on_lifecycle_event(events.append)
    workflow_id = test.start_workflow("Flow", data={"log": []})
    instance = test.instance(workflow_id)
    assert instance.status is WorkflowStatus.COMPLETE and instance.data["log"] == ["a"]
    assert LifecycleEventType.WORKFLOW_COMPLETED in [e.type for e in events]


def test_attach_jumps_back_to_a_named_step() -> None:
    def count(context: StepExecutionContext) -> ExecutionResult:
        context.workflow.data["n"] += 1
        return ExecutionResult.outcome("again" if context.workflow.data["n"] < 3 else "done")

    instance = finished(
        lambda b: (
            b.start_with(log("start"))
            .then(count)
            .id("counter")
            .when("again")
            .do(lambda w: w.start_with(log("loop")).attach("counter"))
            .when("done")
            .do(lambda w: w.start_with(log("finished")))
        ),
        {"n": 0},
    )
    assert instance.data["n"] == 3
    assert instance.data["log"] == ["start", "loop", "loop", "finished"]


def test_wait_for_timeout_with_an_outcome_branches_on_expiry() -> None:
    test, workflow_id = run(
        lambda b: (
            b.start_with(log("start"))
            .wait_for("approval", lambda d, c: "k", timeout=timedelta(hours=2), timeout_outcome="expired")
            .when("expired")
            .do(lambda w: w.start_with(log("escalate")))
        )
    )
    instance = test.run_to_completion(workflow_id)
    assert instance.data["log"] == ["start", "escalate"]
    assert instance.complete_time - instance.create_time == timedelta(hours=2)


def test_wait_for_timeout_without_outcome_is_an_error_for_the_error_behaviour() -> None:
    test, workflow_id = run(
        lambda b: (
            b.start_with(log("start"))
            .wait_for("approval", lambda d, c: "k", timeout=timedelta(minutes=5))
            .on_error(WorkflowStep.TERMINATE)
        )
    )
    instance = test.run_to_completion(workflow_id)
    assert instance.status is WorkflowStatus.TERMINATED
    [error] = test.errors(workflow_id)
    assert error.error_type == "liteflow.core.StepTimeoutError"


def test_an_event_before_the_timeout_wins() -> None:
    test, workflow_id = run(
        lambda b: (
            b.start_with(log("start"))
            .wait_for("approval", lambda d, c: "k", timeout=timedelta(hours=2), timeout_outcome="expired")
            .output("answer", lambda s: s.event_data)
            .when("expired")
            .do(lambda w: w.start_with(log("escalate")))
        )
    )
    test.advance(timedelta(hours=1))
    test.publish_event("approval", "k", "yes")
    instance = test.run_to_completion(workflow_id)
    assert instance.data["answer"] == "yes" and "escalate" not in instance.data["log"]


def test_step_timeout_on_a_sleeping_step() -> None:
    class Poll(StepBody):
        def run(self, context: StepExecutionContext) -> ExecutionResult:
            return ExecutionResult.sleep(timedelta(minutes=1), "polling")

    instance = finished(
        lambda b: b.start_with(Poll).timeout(timedelta(minutes=10), outcome="gave-up").then(log("next"))
    )
    assert instance.data["log"] == ["next"]
    assert instance.execution_pointers[0].outcome == "gave-up"


# -- sub-workflows ---------------------------------------------------------------------------


class Child(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(lambda c: c.workflow.data.update(total=c.workflow.data["a"] + c.workflow.data["b"])).delay(
            lambda d, c: timedelta(hours=1)
        )


def test_sub_workflow_result_is_mapped_back_into_the_parent() -> None:
    parent = workflow(
        lambda b: (
            b.start_with(log("start"))
            .sub_workflow("Child", lambda d, c: {"a": d["x"], "b": 2})
            .output("child_total", lambda step: step.result["total"])
            .then(log("end"))
        ),
        name="Parent",
    )
    test = WorkflowTestHost(parent, Child())
    parent_id = test.start_workflow("Parent", data={"log": [], "x": 40})
    instance = test.run_to_completion(parent_id)
    assert instance.data["child_total"] == 42
    assert instance.data["log"] == ["start", "end"]
    [child] = test.host.query_workflows(workflow_id="Child")
    assert child.parent_workflow_id == parent_id and child.status is WorkflowStatus.COMPLETE


def test_a_terminated_sub_workflow_fails_the_parent_step() -> None:
    failing_child = workflow(lambda b: b.start_with(fail).on_error(WorkflowStep.TERMINATE), name="Failing")
    parent = workflow(
        lambda b: (
            b.start_with(log("start"))
            .sub_workflow("Failing", lambda d, c: {"log": []})
            .on_error(WorkflowStep.TERMINATE)
        ),
        name="Parent",
    )
    test = WorkflowTestHost(parent, failing_child)
    parent_id = test.start_workflow("Parent", data={"log": []})
    instance = test.run_to_completion(parent_id)
    assert instance.status is WorkflowStatus.TERMINATED
    assert "was terminated" in test.errors(parent_id)[0].message


# -- controls, versions, queries, lifecycle, middleware ---------------------------------------


def test_suspend_resume_terminate_and_their_errors() -> None:
    from liteflow.core import InvalidOperationError, WorkflowNotFoundError

    test, workflow_id = run(lambda b: b.start_with(log("a")).delay(lambda d, c: timedelta(hours=1)).then(log("b")))
    host = test.host
    host.suspend_workflow(workflow_id)
    assert test.instance(workflow_id).status is WorkflowStatus.SUSPENDED
    with pytest.raises(InvalidOperationError, match="cannot suspend .* suspended"):
        host.suspend_workflow(workflow_id)
    test.advance(timedelta(hours=2))
    assert test.instance(workflow_id).data["log"] == ["a"]
    host.resume_workflow(workflow_id)
    instance = test.run_to_completion(workflow_id)
    assert instance.data["log"] == ["a", "b"]
    with pytest.raises(InvalidOperationError, match="cannot terminate .* complete"):
        host.terminate_workflow(workflow_id)
    with pytest.raises(WorkflowNotFoundError):
        host.resume_workflow("nope")


def test_versions_side_by_side_and_the_latest_by_default() -> None:
    from liteflow.core import WorkflowNotRegisteredError

    test = WorkflowTestHost(
        workflow(lambda b: b.start_with(log("v1")), version=1), workflow(lambda b: b.start_with(log("v2")), version=2)
    )
    latest = test.start_workflow("Flow", data={"log": []})
    first = test.start_workflow("Flow", 1, {"log": []})
    assert test.instance(latest).version == 2 and test.instance(latest).data["log"] == ["v2"]
    assert test.instance(first).data["log"] == ["v1"]
    with pytest.raises(WorkflowNotRegisteredError, match=r"version 3 .*\[1, 2\]"):
        test.start_workflow("Flow", 3, {"log": []})


def test_an_instance_whose_definition_is_gone_is_suspended_with_a_clear_error_not_retried() -> None:
    from liteflow.core import WorkflowNotRegisteredError, configure_workflow_host

    first = WorkflowTestHost(
        workflow(lambda b: b.start_with(log("a")).delay(lambda d, c: timedelta(minutes=1)).then(log("b")))
    )
    workflow_id = first.start_workflow("Flow", data={"log": []})
    later = WorkflowTestHost(persistence=first.host.persistence, start=first.clock.now + timedelta(minutes=2))
    later.run_until_idle()
    instance = later.instance(workflow_id)
    assert instance.status is WorkflowStatus.SUSPENDED
    assert "not registered" in later.errors(workflow_id)[-1].message
    with pytest.raises(WorkflowNotRegisteredError):
        later.host.resume_workflow(workflow_id)
    assert isinstance(configure_workflow_host(), object)


def test_query_by_status_definition_reference_and_pages() -> None:
    test = WorkflowTestHost(
        workflow(lambda b: b.start_with(log("a"))),
        workflow(lambda b: b.start_with(log("w")).wait_for("e", lambda d, c: "k"), name="Waits"),
    )
    done = []
    for n in range(5):
        done.append(test.start_workflow("Flow", data={"log": []}, reference=f"order-{n}"))
        test.clock.advance(timedelta(seconds=1))
    waiting = test.start_workflow("Waits", data={"log": []}, reference="order-w")
    host = test.host
    assert [i.id for i in host.query_workflows(status=WorkflowStatus.RUNNABLE)] == [waiting]
    assert [i.id for i in host.query_workflows(reference="order-3")] == [done[3]]
    pages = [host.query_workflows(workflow_id="Flow", limit=2, offset=n) for n in (0, 2, 4)]
    assert [i.id for page in pages for i in page] == done


class Recorder(WorkflowMiddleware):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def before_start(self, instance: Any) -> None:
        instance.data["stamped"] = True

    def after_complete(self, instance: Any) -> None:
        self.seen.append(instance.status.value)


def test_lifecycle_events_and_middleware() -> None:
    test = WorkflowTestHost(workflow(lambda b: b.start_with(log("a")).then(fail).on_error(WorkflowStep.TERMINATE)))
    events: list[LifecycleEvent] = []
    timings: list[str] = []
    recorder = Recorder()
    test.host.on_lifecycle_event(events.append)
    test.host.use_workflow_middleware(recorder)

    def timing(context: StepExecutionContext, body: StepBody, next_: Any) -> ExecutionResult:
        timings.append(f"before {context.step.body_name}")
        result: ExecutionResult = next_()
        timings.append(f"after {context.step.body_name}")
        return result

    test.host.use_step_middleware(timing)
    workflow_id = test.start_workflow("Flow", data={"log": []})
    instance = test.instance(workflow_id)
    assert instance.data["stamped"] is True
    assert [e.type for e in events] == [
        LifecycleEventType.WORKFLOW_STARTED,
        LifecycleEventType.STEP_STARTED,
        LifecycleEventType.STEP_COMPLETED,
        LifecycleEventType.STEP_STARTED,
        LifecycleEventType.WORKFLOW_ERROR,
        LifecycleEventType.WORKFLOW_TERMINATED,
    ]
    assert events[-2].error is not None and events[-2].error.message == "card declined"
    assert recorder.seen == ["terminated"]
    assert timings == ["before a", "after a", "before fail"]


def test_a_resumed_workflow_gets_a_fresh_set_of_attempts() -> None:
    suspend_after_two = RetryPolicy(max_attempts=2, initial_interval=timedelta(seconds=1), then=WorkflowStep.SUSPEND)
    test, workflow_id = run(lambda b: b.start_with(Flaky).on_error(suspend_after_two), {"attempts": 0, "succeed_on": 4})
    with pytest.raises(WorkflowTimeoutError):
        test.run_to_completion(workflow_id)
    assert test.instance(workflow_id).status is WorkflowStatus.SUSPENDED
    test.host.resume_workflow(workflow_id)
    instance = test.run_to_completion(workflow_id)
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data["attempts"] == 4
    assert instance.execution_pointers[0].retry_count == 3


def test_each_attempt_of_a_step_is_a_step_started_event() -> None:
    test = WorkflowTestHost(workflow(lambda b: b.start_with(Flaky).on_error(POLICY)))
    events: list[LifecycleEvent] = []
    test.host.on_lifecycle_event(events.append)
    test.run_to_completion(test.start_workflow("Flow", data={"log": [], "attempts": 0, "succeed_on": 3}))
    kinds = [e.type for e in events if e.type is not LifecycleEventType.WORKFLOW_STARTED]
    assert kinds.count(LifecycleEventType.STEP_STARTED) == 3
    assert kinds.count(LifecycleEventType.WORKFLOW_ERROR) == 2
    assert kinds[-2:] == [LifecycleEventType.STEP_COMPLETED, LifecycleEventType.WORKFLOW_COMPLETED]
