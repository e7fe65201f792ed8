"""Every builder verb in every position, and every setting on every kind of step.

Positions: first in a workflow, first in each kind of block, and right after each kind of
container. Settings: each is either honoured (the test sees its effect) or rejected with a
BuilderError naming the step and the setting when the workflow is registered; none is accepted
and ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from liteflow.core import (
    BuilderError,
    ExecutionResult,
    StepBody,
    StepBuilder,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowInstance,
    WorkflowStatus,
    WorkflowStep,
    WorkflowTimeoutError,
)
from liteflow.testing import WorkflowTestHost

Chain = Any  # a WorkflowBuilder (the verb comes first) or a StepBuilder (it follows a step)
MINUTE, DAY = timedelta(minutes=1), timedelta(days=1)


def log(name: str) -> Any:
    def step(context: StepExecutionContext) -> None:
        context.workflow.data["log"].append(name)

    step.__qualname__ = name
    return step


def fail(context: StepExecutionContext) -> None:
    raise RuntimeError("step failed")


def set_flag(flag: str) -> Any:
    def step(context: StepExecutionContext) -> None:
        context.workflow.data[flag] = True

    return step


class Greet(StepBody):
    def __init__(self) -> None:
        self.who = "nobody"

    def run(self, context: StepExecutionContext) -> None:
        context.workflow.data["log"].append(f"hello {self.who}")


class Poll(StepBody):
    """Never done: checks again every minute."""

    def run(self, context: StepExecutionContext) -> ExecutionResult:
        return ExecutionResult.sleep(MINUTE, "polling")


def step(chain: Chain, body: Any) -> StepBuilder:
    result: StepBuilder = chain.start_with(body) if isinstance(chain, WorkflowBuilder) else chain.then(body)
    return result


def block(build: Callable[[Chain], Any]) -> Callable[[WorkflowBuilder], Any]:
    return build


@dataclass
class Verb:
    apply: Callable[[Chain], StepBuilder]
    """The verb doing its normal work; ``marker`` shows up in the log when it did."""
    marker: str | None
    failing: Callable[[Chain], StepBuilder] | None = None
    """The same kind of step failing (or a step inside it failing); None: on_error is rejected."""
    long: Callable[[Chain], StepBuilder] | None = None
    """The same kind of step staying open for a day; None: timeout and cancel_condition rejected."""
    event: bool = False
    rejects: set[str] = field(default_factory=set)
    ends_workflow: bool = False
    detached: bool = False
    """schedule and recur: the steps after them go on at once, while the block runs later."""


VERBS: dict[str, Verb] = {
    "step": Verb(
        apply=lambda c: step(c, Greet),
        marker="hello nobody",
        failing=lambda c: step(c, fail),
        long=lambda c: step(c, Poll),
    ),
    "inline step": Verb(
        apply=lambda c: step(c, log("inline")),
        marker="inline",
        failing=lambda c: step(c, fail),
        long=lambda c: step(c, Poll),
        rejects={"input"},
    ),
    "wait_for": Verb(
        apply=lambda c: c.wait_for("go", lambda d, x: "k"),
        marker=None,
        failing=lambda c: c.wait_for("never", lambda d, x: "k", timeout=timedelta(hours=1)),
        long=lambda c: c.wait_for("never", lambda d, x: "k"),
        event=True,
    ),
    "delay": Verb(
        apply=lambda c: c.delay(lambda d, x: MINUTE),
        marker=None,
        failing=lambda c: c.delay(lambda d, x: 1 / 0),
        long=lambda c: c.delay(lambda d, x: DAY),
    ),
    "decide": Verb(
        apply=lambda c: c.decide(lambda d, x: "a").branch("a", block(lambda b: b.start_with(log("decided")))),
        marker="decided",
        failing=lambda c: c.decide(lambda d, x: "a").branch("a", block(lambda b: b.start_with(fail))),
        long=lambda c: c.decide(lambda d, x: "a").branch("a", block(lambda b: b.delay(lambda d, x: DAY))),
    ),
    "if_": Verb(
        apply=lambda c: c.if_(lambda d, x: True).do(lambda b: b.start_with(log("if"))),
        marker="if",
        failing=lambda c: c.if_(lambda d, x: True).do(lambda b: b.start_with(fail)),
        long=lambda c: c.if_(lambda d, x: True).do(lambda b: b.delay(lambda d, x: DAY)),
    ),
    "while_": Verb(
        apply=lambda c: c.while_(lambda d, x: not d.get("looped")).do(
            lambda b: b.start_with(log("while")).then(set_flag("looped"))
        ),
        marker="while",
        failing=lambda c: c.while_(lambda d, x: True).do(lambda b: b.start_with(fail)),
        long=lambda c: c.while_(lambda d, x: True).do(lambda b: b.delay(lambda d, x: DAY)),
    ),
    "for_each": Verb(
        apply=lambda c: c.for_each(lambda d, x: ["one"]).do(lambda b: b.start_with(log("each"))),
        marker="each",
        failing=lambda c: c.for_each(lambda d, x: ["one"]).do(lambda b: b.start_with(fail)),
        long=lambda c: c.for_each(lambda d, x: ["one"]).do(lambda b: b.delay(lambda d, x: DAY)),
    ),
    "saga": Verb(
        apply=lambda c: c.saga(lambda b: b.start_with(log("saga"))),
        marker="saga",
        failing=lambda c: c.saga(lambda b: b.start_with(fail)),
        long=lambda c: c.saga(lambda b: b.delay(lambda d, x: DAY)),
    ),
    "parallel": Verb(
        apply=lambda c: c.parallel().do(lambda b: b.start_with(log("p1"))).do(lambda b: b.start_with(log("p2"))).join(),
        marker="p2",
        failing=lambda c: c.parallel().do(lambda b: b.start_with(fail)).join(),
        long=lambda c: c.parallel().do(lambda b: b.delay(lambda d, x: DAY)).join(),
    ),
    "schedule": Verb(
        apply=lambda c: c.schedule(lambda d, x: MINUTE).do(lambda b: b.start_with(log("scheduled"))),
        marker="scheduled",
        failing=lambda c: c.schedule(lambda d, x: MINUTE).do(lambda b: b.start_with(fail)),
        rejects={"input", "timeout", "cancel_condition"},
        detached=True,
    ),
    "recur": Verb(
        apply=lambda c: c.recur(lambda d, x: MINUTE, lambda d, x: d.get("recurred")).do(
            lambda b: b.start_with(log("recur")).then(set_flag("recurred"))
        ),
        marker="recur",
        failing=lambda c: c.recur(lambda d, x: MINUTE, lambda d, x: False).do(lambda b: b.start_with(fail)),
        rejects={"input", "timeout", "cancel_condition"},
        detached=True,
    ),
    "sub_workflow": Verb(
        apply=lambda c: c.sub_workflow("Child", lambda d, x: {"log": []}),
        marker=None,
        failing=lambda c: c.sub_workflow("FailingChild", lambda d, x: {"log": []}),
        long=lambda c: c.sub_workflow("SlowChild", lambda d, x: {"log": []}),
    ),
    "activity": Verb(
        apply=lambda c: c.activity("sweep"),
        marker=None,
        failing=lambda c: c.activity("sweep-fail"),
        long=lambda c: c.activity("nobody-works-on-this"),
    ),
    "user_task": Verb(
        apply=lambda c: c.user_task("Go on?").with_option("ok", "OK"),
        marker=None,
        failing=lambda c: c.user_task("Go on?", assigned_to="nobody").with_option("ok", "OK").timeout(MINUTE),
        long=lambda c: c.user_task("Go on?", assigned_to="nobody").with_option("ok", "OK"),
    ),
    "end_workflow": Verb(
        apply=lambda c: c.end_workflow(),
        marker=None,
        long=lambda c: c.end_workflow(),
        rejects={"input", "on_error", "compensate_with", "timeout"},
        ends_workflow=True,
    ),
}
for name, verb in VERBS.items():
    if name not in ("step", "inline step"):
        verb.rejects.add("input")  # built-in steps take their settings from the verb's arguments


def child(name: str, build: Callable[[WorkflowBuilder], Any]) -> Workflow:
    class Child(Workflow):
        def id(self) -> str:
            return name

        def build(self, builder: WorkflowBuilder) -> None:
            build(builder)

    return Child()


def host_for(build: Callable[[WorkflowBuilder], Any]) -> WorkflowTestHost:
    return WorkflowTestHost(
        child("Flow", build),
        child("Child", lambda b: b.start_with(log("child"))),
        child("FailingChild", lambda b: b.start_with(fail).on_error(WorkflowStep.TERMINATE)),
        child("SlowChild", lambda b: b.delay(lambda d, x: DAY)),
    )


def serve(test: WorkflowTestHost) -> bool:
    """Play the external workers and people: complete activities, answer unassigned user tasks."""
    served = False
    while (claim := test.host.get_pending_activity("sweep", "worker")) is not None:
        served = test.host.submit_activity_success(claim.token, "done")
    while (claim := test.host.get_pending_activity("sweep-fail", "worker")) is not None:
        served = test.host.submit_activity_failure(claim.token, "no luck")
    for action in test.host.get_open_user_actions(assigned_to=None):
        if action.assigned_to is None:
            served = test.publish_user_action(action.key, "someone", "ok")
    test.run_until_idle()
    return served


def finish(test: WorkflowTestHost, workflow_id: str) -> WorkflowInstance:
    """Run to completion, serving activities and user tasks whenever the workflow waits for them."""
    while True:
        serve(test)
        try:
            return test.run_to_completion(workflow_id)
        except WorkflowTimeoutError:
            if not serve(test):
                raise


def run(build: Callable[[WorkflowBuilder], Any], *, event: bool = False) -> WorkflowInstance:
    test = host_for(build)
    workflow_id = test.start_workflow("Flow", data={"log": []})
    if event:
        test.publish_event("go", "k")
    return finish(test, workflow_id)


# -- every verb in every position ------------------------------------------------------------

Position = Callable[[Callable[[Chain], StepBuilder]], Callable[[WorkflowBuilder], Any]]


def after(container: Callable[[Chain], StepBuilder]) -> Position:
    return lambda verb: lambda b: verb(container(b.start_with(log("start")))).then(log("after"))


def first_in(container: Callable[[Chain, Callable[[WorkflowBuilder], Any]], StepBuilder]) -> Position:
    return lambda verb: lambda b: container(b.start_with(log("start")), lambda inner: verb(inner)).then(log("after"))


POSITIONS: dict[str, Position] = {
    "first in the workflow": lambda verb: lambda b: verb(b).then(log("after")),
    "first in if_": first_in(lambda c, blk: c.if_(lambda d, x: True).do(blk)),
    "first in while_": first_in(
        lambda c, blk: c.while_(lambda d, x: not d.get("outer")).do(lambda b: blk(b).then(set_flag("outer")))
    ),
    "first in for_each": first_in(lambda c, blk: c.for_each(lambda d, x: ["only"]).do(blk)),
    "first in when": first_in(lambda c, blk: step(c, lambda x: ExecutionResult.outcome(1)).when(1).do(blk)),
    "first in saga": first_in(lambda c, blk: c.saga(blk)),
    "first in parallel": first_in(lambda c, blk: c.parallel().do(blk).do(lambda b: b.start_with(log("other"))).join()),
    "first in a decide branch": first_in(lambda c, blk: c.decide(lambda d, x: 1).branch(1, blk)),
    "first in schedule": first_in(lambda c, blk: c.schedule(lambda d, x: MINUTE).do(blk)),
    "first in recur": first_in(
        lambda c, blk: c.recur(lambda d, x: MINUTE, lambda d, x: d.get("outer")).do(
            lambda b: blk(b).then(set_flag("outer"))
        )
    ),
    "after if_": after(lambda c: c.if_(lambda d, x: True).do(lambda b: b.start_with(log("x")))),
    "after while_": after(
        lambda c: c.while_(lambda d, x: not d.get("outer")).do(lambda b: b.start_with(set_flag("outer")))
    ),
    "after for_each": after(lambda c: c.for_each(lambda d, x: [1, 2]).do(lambda b: b.start_with(log("x")))),
    "after when": after(
        lambda c: step(c, lambda x: ExecutionResult.outcome(1)).when(1).do(lambda b: b.start_with(log("x")))
    ),
    "after saga": after(lambda c: c.saga(lambda b: b.start_with(log("x")))),
    "after parallel": after(lambda c: c.parallel().do(lambda b: b.start_with(log("x"))).join()),
    "after decide": after(lambda c: c.decide(lambda d, x: 1).branch(1, lambda b: b.start_with(log("x")))),
    "after schedule": after(lambda c: c.schedule(lambda d, x: MINUTE).do(lambda b: b.start_with(log("x")))),
    "after recur": after(
        lambda c: c.recur(lambda d, x: MINUTE, lambda d, x: d.get("outer")).do(
            lambda b: b.start_with(set_flag("outer"))
        )
    ),
}


@pytest.mark.parametrize("position", list(POSITIONS))
@pytest.mark.parametrize("verb_name", list(VERBS))
def test_every_verb_in_every_position(verb_name: str, position: str) -> None:
    verb = VERBS[verb_name]
    marked = lambda c: verb.apply(c).output("ran", lambda s: True)  # noqa: E731 - a one-line adapter
    instance = run(POSITIONS[position](marked), event=verb.event)
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data.get("ran") is True, "the verb's step did not complete"
    if verb.marker is not None:
        assert verb.marker in instance.data["log"]
    if not verb.ends_workflow:
        assert instance.data["log"].count("after") == 1
    elif position.startswith("first in") and position not in ("first in schedule", "first in recur"):
        assert "after" not in instance.data["log"], "end_workflow let the workflow go on"


# -- every setting on every kind of step -----------------------------------------------------

SETTINGS = ["on_error", "compensate_with", "timeout", "cancel_condition", "name", "input", "output"]


def registering(build: Callable[[WorkflowBuilder], Any]) -> None:
    host_for(build)


def check_on_error(verb: Verb) -> None:
    assert verb.failing is not None
    failing = verb.failing
    instance = run(lambda b: failing(b.start_with(log("start"))).on_error(WorkflowStep.TERMINATE).then(log("after")))
    assert instance.status is WorkflowStatus.TERMINATED
    assert ("after" in instance.data["log"]) is verb.detached


def check_compensate_with(verb: Verb) -> None:
    apply = verb.apply
    instance = run(
        lambda b: (
            apply(b.start_with(log("start")))
            .compensate_with(log("undone"))
            .then(fail)
            .on_error(WorkflowStep.COMPENSATE)
        ),
        event=verb.event,
    )
    assert instance.status is WorkflowStatus.TERMINATED
    assert instance.data["log"][-1] == "undone"


def check_timeout(verb: Verb) -> None:
    assert verb.long is not None
    long = verb.long
    instance = run(
        lambda b: long(b.start_with(log("start"))).timeout(timedelta(minutes=10), outcome="late").then(log("after"))
    )
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data["log"][-1] == "after"
    assert instance.complete_time is not None
    assert instance.complete_time - instance.create_time == timedelta(minutes=10)


def check_cancel_condition(verb: Verb) -> None:
    assert verb.long is not None
    long = verb.long
    instance = run(
        lambda b: (
            long(b.start_with(log("start")))
            .cancel_condition(lambda d, x: True, proceed_after_cancel=True)
            .output("ran", lambda s: True)
            .then(log("after"))
        )
    )
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data["log"] == ["start", "after"]
    assert "ran" not in instance.data
    assert instance.complete_time == instance.create_time


def check_name(verb: Verb) -> None:
    apply = verb.apply
    test = host_for(lambda b: apply(b.start_with(log("start"))).name("the-step").then(log("after")))
    definition = test.host.registry.get("Flow")
    assert [s.name for s in definition.steps].count("the-step") == 1
    # attach resolves names: jumping to the named step again is honoured too.
    loops = host_for(
        lambda b: (
            apply(b.start_with(log("start")))
            .name("the-step")
            .if_(lambda d, x: not d.get("again"))
            .do(lambda i: i.start_with(set_flag("again")).attach("the-step"))
        )
    )
    workflow_id = loops.start_workflow("Flow", data={"log": []})
    if verb.event:
        loops.publish_event("go", "k")
        loops.publish_event("go", "k")
    assert finish(loops, workflow_id).status is WorkflowStatus.COMPLETE


def check_input(verb: Verb) -> None:
    apply = verb.apply
    instance = run(lambda b: apply(b).input("who", lambda d, x: "world").then(log("after")))
    assert "hello world" in instance.data["log"]


def check_output(verb: Verb) -> None:
    apply = verb.apply
    instance = run(lambda b: apply(b).output("out", lambda s: "written").then(log("after")), event=verb.event)
    assert instance.data["out"] == "written"


CHECKS = {
    "on_error": check_on_error,
    "compensate_with": check_compensate_with,
    "timeout": check_timeout,
    "cancel_condition": check_cancel_condition,
    "name": check_name,
    "input": check_input,
    "output": check_output,
}

APPLY_SETTING: dict[str, Callable[[StepBuilder], Any]] = {
    "on_error": lambda s: s.on_error(WorkflowStep.TERMINATE),
    "compensate_with": lambda s: s.compensate_with(log("undo")),
    "timeout": lambda s: s.timeout(timedelta(minutes=10)),
    "cancel_condition": lambda s: s.cancel_condition(lambda d, x: False),
    "name": lambda s: s.name("n"),
    "input": lambda s: s.input("who", lambda d, x: "world"),
    "output": lambda s: s.output("out", lambda s: 1),
}


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("verb_name", list(VERBS))
def test_every_setting_is_honoured_or_rejected_at_registration(verb_name: str, setting: str) -> None:
    verb = VERBS[verb_name]
    if setting in verb.rejects:
        apply, configure = verb.apply, APPLY_SETTING[setting]
        with pytest.raises(BuilderError, match=rf"step \d+ \(.*\): {setting} is not supported"):
            registering(lambda b: configure(apply(b.start_with(log("start")))))
        return
    CHECKS[setting](verb)


@pytest.mark.parametrize("setting", ["id", "name", "on_error", "compensate_with", "timeout", "cancel_condition"])
def test_a_setting_given_twice_is_rejected_not_silently_replaced(setting: str) -> None:
    configure: Callable[[StepBuilder], Any] = {
        "id": lambda s: s.id("x"),
        **APPLY_SETTING,
    }[setting]
    with pytest.raises(BuilderError, match=rf"step 0 \((Greet|n)\): {setting} is already set"):
        registering(lambda b: configure(configure(b.start_with(Greet))))


def test_settings_that_would_be_ignored_are_rejected() -> None:
    with pytest.raises(BuilderError, match="timeout_outcome needs a timeout"):
        registering(lambda b: b.wait_for("e", lambda d, x: "k", timeout_outcome="late"))
    with pytest.raises(BuilderError, match="retry_interval applies to WorkflowStep.RETRY only"):
        registering(lambda b: b.start_with(Greet).on_error(WorkflowStep.TERMINATE, timedelta(seconds=5)))
    with pytest.raises(BuilderError, match="retry_interval applies to WorkflowStep.RETRY only"):
        registering(lambda b: b.use_default_error_behavior(WorkflowStep.SUSPEND, timedelta(seconds=5)))
    for container, message in [
        (lambda c: c.if_(lambda d, x: True), r"step 1 \(if_\): if_ needs a do\(\) block"),
        (lambda c: c.for_each(lambda d, x: []), r"for_each needs a do\(\) block"),
        (lambda c: c.parallel().join(), r"parallel needs a do\(\) block"),
        (lambda c: c.decide(lambda d, x: 1), r"decide needs a branch\(\)"),
        (lambda c: c.schedule(lambda d, x: MINUTE), r"schedule needs a do\(\) block"),
        (lambda c: c.recur(lambda d, x: MINUTE, lambda d, x: True), r"recur needs a do\(\) block"),
        (lambda c: step(c, lambda x: None).when(1), r"when needs a do\(\) block"),
    ]:
        with pytest.raises(BuilderError, match=message):
            registering(lambda b, container=container: container(b.start_with(Greet)))
