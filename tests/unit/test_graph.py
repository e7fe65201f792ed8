"""workflow_graph: the seed README's examples as Mermaid text, Graphviz and JSON, loaded definitions
drawn like their fluent twins, and an instance's current steps highlighted."""

from __future__ import annotations

import json
from typing import Any

import pytest

from liteflow.core import (
    ExecutionResult,
    InvalidArgumentError,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    load_workflow,
    workflow_graph,
)
from liteflow.testing import WorkflowTestHost


class Hello(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        return ExecutionResult.next()


class Goodbye(Hello):
    pass


class DoStuff(Hello):
    pass


class AddNumbers(Hello):
    pass


def readme(build: Any) -> Workflow:
    class MyWorkflow(Workflow):
        def build(self, builder: WorkflowBuilder) -> None:
            build(builder)

    return MyWorkflow()


HELLO_WORLD = readme(lambda b: b.start_with(Hello).then(Goodbye))
PASSING_DATA = readme(
    lambda b: (
        b.start_with(Hello)
        .then(AddNumbers)
        .input("input1", lambda data, context: data.value1)
        .input("input2", lambda data, context: data.value2)
        .output("value3", lambda step: step.output)
        .then(Goodbye)
    )
)
EVENTS = readme(
    lambda b: (
        b.start_with(Hello)
        .wait_for("event1", lambda data, context: "key1")
        .output("captured_value", lambda step: step.event_data)
        .then(Goodbye)
    )
)
FOREACH = readme(
    lambda b: (
        b.start_with(Hello)
        .for_each(lambda data, context: ["abc", "def", "xyz"])
        .do(lambda x: x.start_with(DoStuff))
        .then(Goodbye)
    )
)
WHILE = readme(
    lambda b: (
        b.start_with(Hello)
        .while_(lambda data, context: data.value1 < 3)
        .do(
            lambda do: (
                do.start_with(DoStuff)
                .input("my_value", lambda data, context: data.value1)
                .output("value1", lambda step: step.your_value)
            )
        )
        .then(Goodbye)
    )
)
IF = readme(
    lambda b: (
        b.start_with(Hello).if_(lambda data, context: data.value1 > 3).do(lambda x: x.start_with(DoStuff)).then(Goodbye)
    )
)

EXPECTED = {
    "hello-world": (
        HELLO_WORLD,
        """flowchart TD
    s0["Hello"]
    s1["Goodbye"]
    s0 --> s1
""",
    ),
    "passing-data": (
        PASSING_DATA,
        """flowchart TD
    s0["Hello"]
    s1["AddNumbers"]
    s2["Goodbye"]
    s0 --> s1
    s1 --> s2
""",
    ),
    "events": (
        EVENTS,
        """flowchart TD
    s0["Hello"]
    s1(["wait_for event1"])
    s2["Goodbye"]
    s0 --> s1
    s1 --> s2
""",
    ),
    "foreach": (
        FOREACH,
        """flowchart TD
    s0["Hello"]
    s1{{"for_each"}}
    subgraph s1_block ["for_each"]
        s2["DoStuff"]
    end
    s3["Goodbye"]
    s0 --> s1
    s1 --> s3
    s1 -.-> s2
""",
    ),
    "while": (
        WHILE,
        """flowchart TD
    s0["Hello"]
    s1{{"while"}}
    subgraph s1_block ["while"]
        s2["DoStuff"]
    end
    s3["Goodbye"]
    s0 --> s1
    s1 --> s3
    s1 -.-> s2
    s2 -.->|"repeat"| s1
""",
    ),
    "if": (
        IF,
        """flowchart TD
    s0["Hello"]
    s1{{"if"}}
    subgraph s1_block ["if"]
        s2["DoStuff"]
    end
    s3["Goodbye"]
    s0 --> s1
    s1 --> s3
    s1 -.-> s2
""",
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_readme_examples_as_mermaid(name: str) -> None:
    workflow, expected = EXPECTED[name]
    assert workflow_graph(workflow) == expected


WHILE_YAML = """
id: MyWorkflow
steps:
  - {id: hello, type: Hello, next: loop}
  - id: loop
    type: while
    condition: data.value1 < 3
    do:
      - - id: stuff
          type: DoStuff
          inputs: {my_value: data.value1}
          outputs: {value1: step.your_value}
    next: bye
  - {id: bye, type: Goodbye}
"""
STEPS: dict[str, Any] = {"Hello": Hello, "Goodbye": Goodbye, "DoStuff": DoStuff}


def test_a_loaded_definition_shows_its_ids_and_expressions() -> None:
    assert workflow_graph(load_workflow(WHILE_YAML, steps=STEPS)) == (
        """flowchart TD
    s0["hello: Hello"]
    s1{{"loop: while data.value1 < 3"}}
    subgraph s1_block ["loop: while data.value1 < 3"]
        s2["stuff: DoStuff"]
    end
    s3["bye: Goodbye"]
    s0 --> s1
    s1 --> s3
    s1 -.-> s2
    s2 -.->|"repeat"| s1
"""
    )


def test_a_loaded_definition_has_the_same_shape_as_its_fluent_twin() -> None:
    def shape(workflow: Workflow) -> Any:
        document = json.loads(workflow_graph(workflow, format="json"))
        nodes = [(n["id"], n["type"], n["shape"], n["subgraph"]) for n in document["nodes"]]
        edges = [(e["source"], e["target"], e["kind"]) for e in document["edges"]]
        return nodes, edges, [(g["id"], g["container"], g["parent"]) for g in document["subgraphs"]]

    assert shape(load_workflow(WHILE_YAML, steps=STEPS)) == shape(WHILE)


OUTCOMES = readme(
    lambda b: (
        b.start_with(Hello)
        .when("low")
        .do(lambda then: then.start_with(DoStuff))
        .when("high")
        .do(lambda then: then.start_with(AddNumbers))
        .then(Goodbye)
    )
)
OUTCOMES_YAML = """
id: MyWorkflow
steps:
  - id: hello
    type: Hello
    when:
      - {outcome: low, do: [[{id: stuff, type: DoStuff}]]}
      - {outcome: high, do: [[{id: add, type: AddNumbers}]]}
    next: bye
  - {id: bye, type: Goodbye}
"""


def test_when_blocks_are_outcome_edges_from_the_deciding_step_not_a_hidden_node() -> None:
    # s1 is the step that runs the matching blocks: not drawn; its blocks and its next hang off s0.
    assert workflow_graph(OUTCOMES) == (
        """flowchart TD
    s0["Hello"]
    s2{{"when"}}
    subgraph s2_block ["when"]
        s3["DoStuff"]
    end
    s4{{"when"}}
    subgraph s4_block ["when"]
        s5["AddNumbers"]
    end
    s6["Goodbye"]
    s0 -->|"'low'"| s2
    s0 -->|"'high'"| s4
    s0 --> s6
    s2 -.-> s3
    s4 -.-> s5
"""
    )
    document = json.loads(workflow_graph(OUTCOMES, format="json"))
    assert [n["type"] for n in document["nodes"]] == ["Hello", "when", "DoStuff", "when", "AddNumbers", "Goodbye"]


def test_a_loaded_when_is_drawn_as_its_fluent_twin() -> None:
    assert workflow_graph(load_workflow(OUTCOMES_YAML, steps={**STEPS, "AddNumbers": AddNumbers})) == (
        workflow_graph(OUTCOMES)
        .replace('"Hello"', '"hello: Hello"')
        .replace('"DoStuff"', '"stuff: DoStuff"')
        .replace('"AddNumbers"', '"add: AddNumbers"')
        .replace('"Goodbye"', '"bye: Goodbye"')
    )


def test_a_loop_block_ending_with_when_blocks_repeats_from_the_deciding_step() -> None:
    workflow = readme(
        lambda b: (
            b.start_with(Hello)
            .while_(lambda data, context: data.value1 < 3)
            .do(lambda do: do.start_with(DoStuff).when(1).do(lambda then: then.start_with(AddNumbers)))
            .then(Goodbye)
        )
    )
    mermaid = workflow_graph(workflow)
    assert '    s2 -.->|"repeat"| s1\n' in mermaid
    assert "s3" not in mermaid  # the hidden step
    assert '    s2 -->|"1"| s4\n' in mermaid


def test_graphviz_output_has_clusters_for_blocks_and_escapes_labels() -> None:
    dot = workflow_graph(load_workflow(WHILE_YAML.replace("data.value1 < 3", 'data.name != "x"'), steps=STEPS), "dot")
    assert dot.startswith('digraph "MyWorkflow v1" {\n')
    assert "    subgraph cluster_s1_block {\n" in dot
    assert '    s1 [label="loop: while data.name != \\"x\\"", shape=hexagon];\n' in dot
    assert "    s1 -> s2 [style=dashed];\n" in dot
    assert '    s2 -> s1 [style=dotted, label="repeat"];\n' in dot
    assert dot.endswith("}\n")


def test_the_steps_an_instance_is_on_are_highlighted() -> None:
    workflow = readme(
        lambda b: (
            b.start_with(Hello)
            .parallel()
            .do(lambda branch: branch.start_with(DoStuff).wait_for("go", lambda data, context: "1"))
            .do(lambda branch: branch.start_with(AddNumbers))
            .join()
            .then(Goodbye)
        )
    )
    test = WorkflowTestHost(workflow)
    instance = test.instance(test.start_workflow("MyWorkflow"))
    mermaid = workflow_graph(workflow, instance=instance)
    # Waiting for the event: the wait_for step and the parallel container around it are active.
    assert mermaid.endswith(
        "    classDef active fill:#fde68a,stroke:#b45309,stroke-width:2px\n    class s1,s3 active\n"
    )
    assert '    s3(["wait_for go"])\n' in mermaid
    nodes = json.loads(workflow_graph(workflow, "json", instance=instance))["nodes"]
    assert [n["id"] for n in nodes if n["active"]] == ["s1", "s3"]
    assert 'fillcolor="#fde68a"' in workflow_graph(workflow, "dot", instance=instance)
    finished = test.publish_event("go", "1") and test.instance(instance.id)
    assert "class s1" not in workflow_graph(workflow, instance=finished)


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="'mermaid', 'dot' or 'json'"):
        workflow_graph(HELLO_WORLD, format="png")


def test_a_workflow_class_or_a_built_definition_draws_as_its_instance() -> None:
    class Greeting(Workflow):
        def build(self, builder: WorkflowBuilder) -> None:
            builder.start_with(Hello).then(Goodbye)

    builder = WorkflowBuilder()
    Greeting().build(builder)
    expected = EXPECTED["hello-world"][1]
    assert workflow_graph(Greeting) == workflow_graph(builder.build("Greeting", 1)) == expected
