"""load_workflow's checks: every bad definition fails at load with a DefinitionError naming the step
and the problem; reading sources; register_step."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from liteflow.core import (
    DefinitionError,
    DuplicateWorkflowError,
    ExecutionResult,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowStatus,
    export_workflow,
    load_workflow,
    register_step,
)
from liteflow.testing import WorkflowTestHost


class Noop(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        return ExecutionResult.next()


STEPS: dict[str, Any] = {"Noop": Noop}


def definition(*steps: dict[str, Any], **workflow: Any) -> dict[str, Any]:
    return {"id": "Bad", "steps": list(steps), **workflow}


def noop(step_id: str, **keys: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "Noop", **keys}


def fails(document: Any, *fragments: str) -> None:
    with pytest.raises(DefinitionError) as raised:
        load_workflow(document, steps=STEPS)
    for fragment in fragments:
        assert fragment in str(raised.value), str(raised.value)


def test_an_unknown_step_type_is_named_with_a_suggestion() -> None:
    fails(
        definition(noop("a", next="b"), {"id": "b", "type": "Noopp"}), "step 'b'", "unknown step type 'Noopp'", "'Noop'"
    )


def test_a_next_pointing_nowhere() -> None:
    fails(definition(noop("a", next="nowhere")), "step 'a' (Noop)", "next 'nowhere' is not the id of any step")


def test_a_cycle_without_a_loop_construct() -> None:
    fails(definition(noop("a", next="b"), noop("b", next="a")), "a -> b -> a", "cycle that never ends", "while")


def test_a_cycle_through_a_container_that_always_runs_its_block() -> None:
    saga = {"id": "s", "type": "saga", "do": [[noop("inner", next="s")]]}
    fails(definition(saga), "s -> inner -> s", "cycle")


def test_a_cycle_through_a_when_outcome_is_a_loop_and_loads() -> None:
    back = {"outcome": "again", "do": [[noop("retry", next="a")]]}
    load_workflow(definition(noop("a", when=[back])), steps=STEPS)


@pytest.mark.parametrize(
    ("step", "fragments"),
    [
        (noop("a", ouputs={"x": "step.y"}), ("step 'a' (Noop)", "unknown key 'ouputs'", "did you mean 'outputs'")),
        ({"id": "a", "type": "while", "do": [[noop("b")]]}, ("step 'a' (while)", "missing required key 'condition'")),
        ({"type": "Noop"}, ("step None (Noop)", "missing required key 'id'")),
        (
            {"id": "a", "type": "wait_for", "event_name": "e"},
            ("step 'a' (wait_for)", "missing required key 'event_key'"),
        ),
        (noop("a", inputs=["x"]), ("step 'a' (Noop), inputs", "needs a mapping")),
        (noop("a", error_behavior="explode"), ("step 'a' (Noop)", "unknown error behavior 'explode'")),
        (noop("a", error_behavior={"max_attempts": 0}), ("step 'a' (Noop)", "invalid retry policy")),
        (noop("a", error_behavior={"max_attempts": 2, "then": "retry"}), ("'then' must be",)),
        (noop("a", retry_interval="5s"), ("step 'a' (Noop)", "retry_interval needs error_behavior: retry")),
        (noop("a", timeout="soon"), ("step 'a' (Noop), timeout", "is not a duration")),
        (noop("a", timeout=0), ("step 'a' (Noop)", "timeout must be longer than 0")),
        (noop("a", timeout_outcome="late"), ("step 'a' (Noop)", "timeout_outcome needs a timeout")),
        ({"id": "a", "type": "if", "condition": "True", "do": [noop("b")]}, ("step 'a' (if), do", "list of branches")),
        (
            {"id": "a", "type": "if", "condition": "True", "do": [[noop("b")], [noop("c")]]},
            ("step 'a' (if), do", "exactly one block"),
        ),
        (
            {"id": "a", "type": "if", "condition": "True", "do": [[]]},
            ("step 'a' (if), do[0]", "non-empty list of steps"),
        ),
        (noop("a", compensate_with="Nothing"), ("step 'a' (Noop), compensate_with", "unknown step type 'Nothing'")),
        ({"id": "a", "type": "sub_workflow", "workflow_id": "X", "version": "1"}, ("version", "needs an integer")),
        ("not a step", ("steps[0]", "a step must be a mapping")),
    ],
)
def test_bad_keys_and_values_name_the_step(step: Any, fragments: tuple[str, ...]) -> None:
    fails(definition(step), *fragments)


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("__import__('os').system('x')", "call of"),
        ("().__class__.__bases__", "'__bases__' is not allowed"),
        ("data.__dict__", "'__dict__' is not allowed"),
        ("getattr(data, '__class__')", "call of 'getattr'"),
        ("(lambda: 1)()", "call of"),
        ("lambda: 1", "a lambda"),
        ("[x for x in data.items]", "a comprehension"),
        ("9**9**9", "a power larger than"),
        ("'a'*10**9", "repeating a sequence"),
        ("step.output", "unknown name 'step'"),
    ],
)
def test_sandbox_escapes_and_bad_expressions_fail_at_load_naming_the_step(expression: str, problem: str) -> None:
    fails(definition(noop("a", inputs={"x": expression})), "step 'a' (Noop), input 'x'", problem)
    guarded = {"id": "g", "type": "if", "condition": expression, "do": [[noop("b")]]}
    fails(definition(guarded), "step 'g' (if), condition", problem)


def test_an_output_sees_the_step_not_the_data() -> None:
    fails(definition(noop("a", outputs={"x": "data.y"})), "step 'a' (Noop), output 'x'", "unknown name 'data'")


def test_duplicate_ids_across_blocks() -> None:
    loop = {"id": "loop", "type": "for_each", "items": "data.items", "do": [[noop("a")]]}
    fails(definition(noop("a", next="loop"), loop), "two steps have the id 'a'")


def test_a_step_nobody_reaches() -> None:
    fails(definition(noop("a"), noop("orphan")), "step 'orphan' (Noop)", "never reached")


def test_a_next_into_another_containers_block() -> None:
    loop = {
        "id": "loop",
        "type": "for_each",
        "items": "data.items",
        "do": [[noop("first", next="second"), noop("second")]],
    }
    fails(definition(noop("a", next="second"), loop), "step 'a' (Noop)", "inside another container's block")


def test_unknown_and_missing_workflow_keys() -> None:
    fails({"id": "W", "step": []}, "workflow 'W'", "unknown key 'step'", "did you mean 'steps'")
    fails({"id": "W"}, "workflow 'W'", "missing required key 'steps'")
    fails({"steps": [noop("a")]}, "missing required key 'id'")
    fails({"id": "W", "steps": []}, "workflow 'W', steps", "non-empty list")
    fails('["not", "a", "mapping"]', "needs a mapping")


def test_an_exported_python_callable_is_refused_with_an_explanation() -> None:
    class Fluent(Workflow):
        def build(self, builder: WorkflowBuilder) -> None:
            builder.start_with(Noop).if_(lambda data, context: data["go"]).do(lambda then: then.start_with(Noop))

    exported = export_workflow(Fluent())
    condition = exported["steps"][1]["condition"]
    assert condition["loadable"] is False
    assert condition["python"].endswith("Fluent.build.<locals>.<lambda>")
    path, line = condition["at"].rsplit(":", 1)
    assert Path(path) == Path(__file__).resolve()
    assert 'lambda data, context: data["go"]' in Path(path).read_text().splitlines()[int(line) - 1]
    fails(exported, "condition", "Python callable", "cannot be loaded")


def test_a_fluent_export_has_the_values_the_builder_set_as_constants() -> None:
    class Fluent(Workflow):
        def build(self, builder: WorkflowBuilder) -> None:
            (
                builder.wait_for("approved", lambda data, context: "k")
                .sub_workflow("Child", version=3)
                .sub_workflow("Latest")
                .for_each(lambda data, context: [1], run_parallel=False)
                .do(lambda each: each.start_with(Noop))
                .decide(lambda data, context: "a")
                .branch("a", lambda branch: branch.start_with(Noop))
                .then(Noop)
                .input("limit", lambda data, context: 5)  # a user's function, not a constant
            )

    steps = export_workflow(Fluent())["steps"]
    assert steps[0]["event_name"] == "approved"
    assert (steps[1]["workflow_id"], steps[1]["version"]) == ("Child", 3)
    assert steps[2]["workflow_id"] == "Latest" and "version" not in steps[2]
    assert steps[3]["run_parallel"] is False
    assert [branch["value"] for branch in steps[4]["branches"]] == ["a"]
    assert steps[5]["inputs"]["limit"]["python"].endswith("Fluent.build.<locals>.<lambda>")


def test_invalid_json_and_yaml_text() -> None:
    fails('{"id": "W", "steps": [}', "not valid JSON")
    fails("id: W\nsteps: [\n", "not valid YAML")


def test_yaml_tags_never_build_objects() -> None:
    fails("id: W\nsteps: !!python/object/apply:os.system ['true']\n", "not valid YAML")


def test_sources_dict_json_yaml_and_paths_load_the_same(tmp_path: Path) -> None:
    document = definition(noop("a", next="b"), noop("b"))
    as_json = json.dumps(document)
    (tmp_path / "w.json").write_text(as_json)
    (tmp_path / "w.yaml").write_text(export_workflow(load_workflow(document, steps=STEPS), format="yaml"))
    (tmp_path / "w.txt").write_text(as_json)
    sources: list[Any] = [document, as_json, tmp_path / "w.json", tmp_path / "w.yaml", tmp_path / "w.txt"]
    exports = [export_workflow(load_workflow(source, steps=STEPS)) for source in sources]
    assert all(exported == exports[0] for exported in exports)
    assert exports[0]["version"] == 1
    fails(tmp_path / "missing.yaml", "cannot read the definition")
    with pytest.raises(DefinitionError, match="a dict, JSON or YAML text"):
        load_workflow(42)  # type: ignore[arg-type]


def test_load_does_not_change_the_callers_document() -> None:
    document = definition(noop("a", inputs={"x": True}))
    before = copy.deepcopy(document)
    load_workflow(document, steps=STEPS)
    assert document == before


def test_registered_steps_are_found_by_class_or_given_name() -> None:
    @register_step
    class RegisteredByClassName(StepBody):
        def run(self, context: StepExecutionContext) -> ExecutionResult:
            context.workflow.data["by_class"] = True
            return ExecutionResult.next()

    @register_step("registered-function")
    def by_name(context: StepExecutionContext) -> None:
        context.workflow.data["by_name"] = True

    workflow = load_workflow(
        definition(
            {"id": "a", "type": "RegisteredByClassName", "next": "b"},
            {"id": "b", "type": "registered-function"},
        )
    )
    test = WorkflowTestHost(workflow)
    instance = test.run_to_completion(test.start_workflow("Bad", data={}))
    assert instance.status is WorkflowStatus.COMPLETE
    assert instance.data == {"by_class": True, "by_name": True}


def test_register_step_refuses_built_in_names_non_steps_and_taken_names() -> None:
    with pytest.raises(DefinitionError, match="'while' is a built-in step type"):
        register_step(Noop, name="while")
    with pytest.raises(DefinitionError, match="not a StepBody subclass"):
        register_step(int)
    register_step(Noop, name="taken-name")
    register_step(Noop, name="taken-name")  # the same step again is fine

    class Other(StepBody):
        pass

    with pytest.raises(DefinitionError, match="'taken-name' already names"):
        register_step(Other, name="taken-name")


def test_the_same_definition_registers_once_and_a_changed_one_under_the_same_version_is_refused() -> None:
    test = WorkflowTestHost(load_workflow(definition(noop("a")), steps=STEPS))
    test.host.register_workflow(load_workflow(definition(noop("a")), steps=STEPS))  # same: no error
    with pytest.raises(DuplicateWorkflowError):
        test.host.register_workflow(load_workflow(definition(noop("a", name="changed")), steps=STEPS))
    test.host.register_workflow(load_workflow(definition(noop("a", name="changed"), version=2), steps=STEPS))


def test_names_from_the_fluent_api_point_to_their_key() -> None:
    fails(definition(noop("a", retry_policy={"max_attempts": 2})), "unknown key 'retry_policy'", "error_behavior: {")
    fails(definition(noop("a", then="b"), noop("b")), "unknown key 'then' (write next)")


def test_yaml_flow_style_starting_with_a_brace_loads() -> None:
    workflow = load_workflow("{id: Flow, steps: [{id: a, type: Noop}]}", steps=STEPS)
    assert export_workflow(workflow) == {"id": "Flow", "version": 1, "steps": [{"id": "a", "type": "Noop"}]}


def test_a_definition_nested_too_deeply() -> None:
    step: dict[str, Any] = noop("leaf")
    for depth in range(400):
        step = {"id": f"s{depth}", "type": "saga", "do": [[step]]}
    fails(definition(step), "nested too deeply")


def test_json_needs_no_extra_and_yaml_without_pyyaml_names_the_install_command() -> None:
    script = """
import sys
sys.modules["yaml"] = None  # as if PyYAML were not installed
from liteflow.core import *
print(export_workflow(load_workflow('{"id": "W", "steps": [{"id": "a", "type": "end_workflow"}]}'), "json"))
try:
    load_workflow("id: W")
except ImportError as error:
    print(error)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert '"type": "end_workflow"' in result.stdout
    assert 'YAML definitions need PyYAML: pip install "liteflow-engine[yaml]"' in result.stdout
