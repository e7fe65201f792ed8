"""How ``liteflow worker MODULE[:ATTR]`` (and ``--app``) finds the workflows, in-process."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

import click
import pytest

from liteflow.cli._loader import load_target, register_all
from liteflow.core import WorkflowHost, configure_workflow_host

MODULE = """
from liteflow.core import Workflow, configure_workflow_host

# As if imported from another module: not one of this module's own workflows.
Imported = type("Imported", (Workflow,), {"__module__": "elsewhere"})


class First(Workflow):
    def build(self, builder):
        builder.start_with(lambda context: None)


class Second(First):
    def version(self):
        return 2


host = configure_workflow_host()
host.register_workflow(First())
pair = [First, Second()]
one = First()
number = 7


def make():
    return [Second()]
"""


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The name of a fresh module holding MODULE, importable from the current directory."""
    name = f"app_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.chdir(tmp_path)
    return name


def labels(target: object) -> list[str]:
    return register_all(configure_workflow_host(), target)  # type: ignore[arg-type]


def test_a_module_alone_gives_the_workflow_classes_it_defines(module: str) -> None:
    assert labels(load_target(module)) == ["First v1", "Second v2"]


def test_a_path_to_a_file_works_like_a_module_name(module: str, tmp_path: Path) -> None:
    assert labels(load_target(f"{tmp_path / module}.py:one")) == ["First v1"]


@pytest.mark.parametrize(
    ("attr", "expected"),
    [("pair", ["First v1", "Second v2"]), ("one", ["First v1"]), ("First", ["First v1"]), ("make", ["Second v2"])],
)
def test_an_attribute_names_workflows_a_list_or_a_factory(module: str, attr: str, expected: list[str]) -> None:
    assert labels(load_target(f"{module}:{attr}")) == expected


def test_an_attribute_may_be_a_configured_host(module: str) -> None:
    target = load_target(f"{module}:host")
    assert isinstance(target, WorkflowHost)
    assert labels(target) == ["First v1"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{m}:number", "is int, not a WorkflowHost, a Workflow, a list of them or a function"),
        ("{m}:missing", "has no attribute 'missing'"),
        ("no_such_module_{m}", "no module named"),
        (":x", "names no module"),
        ("nofile_{m}.py", "no file"),
    ],
)
def test_what_cannot_be_loaded_is_bad_usage(module: str, spec: str, message: str) -> None:
    with pytest.raises(click.BadParameter, match=message):
        load_target(spec.format(m=module))
