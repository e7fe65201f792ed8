"""register_module: an application installed into site-packages can trust its own plain classes."""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from liteflow.core import (
    ExecutionResult,
    InvalidArgumentError,
    SerializationError,
    StepBody,
    StepExecutionContext,
    Workflow,
    WorkflowBuilder,
    WorkflowStatus,
    register_module,
)
from liteflow.core import _class_registry as reg
from liteflow.core import _serialization as ser
from liteflow.core._serialization import dumps, loads, to_jsonable
from liteflow.testing import WorkflowTestHost

APP = """
class Invoice:
    def __init__(self, number, total):
        self.number = number
        self.total = total
"""
MODELS = """
class Line:
    def __init__(self, sku):
        self.sku = sku


class Haunted:
    def __del__(self):
        pass
"""

Installer = Callable[[], ModuleType]


@pytest.fixture(autouse=True)
def fresh_trust(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with nothing trusted and no cached decisions. The decisions are emptied in
    place, not replaced: _serialization holds the same dict by name, and a new dict bound in one
    module only would leave the encoder reading the old decisions."""
    monkeypatch.setattr(reg, "_trusted_modules", frozenset())
    monkeypatch.setattr(reg, "_user_modules", {})
    infos = dict(reg._class_infos)
    reg._class_infos.clear()
    yield
    reg._class_infos.clear()
    reg._class_infos.update(infos)


@pytest.fixture
def installed(tmp_path: Path) -> Iterator[Installer]:
    """Writes a package into a folder named site-packages (as pip would) and imports it from there."""
    name = f"lf_app_{uuid.uuid4().hex[:8]}"
    site = tmp_path / "lib" / "site-packages"
    (site / name).mkdir(parents=True)
    (site / name / "__init__.py").write_text(textwrap.dedent(APP))
    (site / name / "models.py").write_text(textwrap.dedent(MODELS))
    sys.path.insert(0, str(site))

    def install() -> ModuleType:
        module = importlib.import_module(name)
        importlib.import_module(f"{name}.models")
        return module

    yield install
    sys.path.remove(str(site))
    for module_name in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module_name]


def test_a_plain_class_of_an_installed_package_is_refused_with_a_hint(installed: Installer) -> None:
    app = installed()
    with pytest.raises(SerializationError, match=r"installed package.*register_module\('lf_app_") as info:
        to_jsonable({"invoice": app.Invoice(7, 12.5)})
    assert "data.invoice" in str(info.value)
    assert f"register_module({app.__name__!r})" in str(info.value)


def test_reading_a_class_of_an_installed_package_is_refused_with_the_same_hint(installed: Installer) -> None:
    app = installed()
    stored = {"$t": "object", "c": f"{app.__name__}:Invoice", "v": {"number": 1, "total": 2}}
    with pytest.raises(SerializationError, match="register_module"):
        ser.from_jsonable(stored)


def test_registering_the_package_by_name_accepts_its_classes_both_ways(installed: Installer) -> None:
    app = installed()
    with pytest.raises(SerializationError):
        dumps(app.Invoice(7, 12.5))  # refused first: the cached decision must not stick

    register_module(app.__name__)
    back = loads(dumps(app.Invoice(7, 12.5)))

    assert type(back) is app.Invoice
    assert (back.number, back.total) == (7, 12.5)


def test_a_package_covers_its_submodules(installed: Installer) -> None:
    app = installed()
    register_module(app)  # the module object works as well as its name

    line = loads(dumps([sys.modules[f"{app.__name__}.models"].Line("tea")]))[0]

    assert line.sku == "tea"


def test_a_submodule_does_not_cover_its_parent_or_a_sibling_with_a_longer_name(installed: Installer) -> None:
    app = installed()
    register_module(f"{app.__name__}.models")
    assert loads(dumps(sys.modules[f"{app.__name__}.models"].Line("x"))).sku == "x"

    with pytest.raises(SerializationError, match="installed package"):
        dumps(app.Invoice(1, 1))
    register_module(app.__name__[:-1])  # "lf_app_1234567" is a prefix of the name, not a parent package
    with pytest.raises(SerializationError, match="installed package"):
        dumps(app.Invoice(1, 1))


def test_trusted_classes_that_define_del_are_still_refused(installed: Installer) -> None:
    app = installed()
    register_module(app.__name__)

    with pytest.raises(SerializationError, match="__del__"):
        dumps(sys.modules[f"{app.__name__}.models"].Haunted())


def test_registering_imports_nothing() -> None:
    name = f"lf_not_imported_{uuid.uuid4().hex[:8]}"
    register_module(name)
    assert name not in sys.modules


def test_a_standard_library_class_gets_no_register_module_hint() -> None:
    with pytest.raises(SerializationError, match="standard library") as info:
        ser.from_jsonable({"$t": "object", "c": "subprocess:Popen", "v": {}})
    assert "register_module" not in str(info.value)


@pytest.mark.parametrize("bad", ["", "my-app", "app..models", " app", "1app"])
def test_a_name_that_is_not_a_module_name_is_refused(bad: str) -> None:
    with pytest.raises(InvalidArgumentError, match="dotted module name"):
        register_module(bad)


@pytest.mark.parametrize("bad", [42, None, str, b"myapp"])
def test_something_that_is_not_a_module_is_refused(bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match="module or a module name"):
        register_module(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["os", "subprocess", "json.decoder", "builtins", "__main__"])
def test_the_standard_library_cannot_be_trusted(name: str) -> None:
    with pytest.raises(InvalidArgumentError, match="not an application package"):
        register_module(name)
    assert not reg._trusted_modules


class Bill(StepBody):
    def run(self, context: StepExecutionContext) -> ExecutionResult:
        context.workflow.data.total += 1
        return ExecutionResult.next()


class BillWorkflow(Workflow):
    def build(self, builder: WorkflowBuilder) -> None:
        builder.start_with(Bill)


def test_a_workflow_with_installed_data_fails_at_start_until_trusted_then_runs_on_sqlite(
    installed: Installer, tmp_path: Path
) -> None:
    app = installed()
    test = WorkflowTestHost(BillWorkflow(), persistence=f"sqlite:///{tmp_path / 'app.db'}")
    with pytest.raises(SerializationError, match="register_module"):
        test.start_workflow("BillWorkflow", data=app.Invoice(1, 10))

    register_module(app.__name__)
    wid = test.start_workflow("BillWorkflow", data=app.Invoice(1, 10))
    instance = test.run_to_completion(wid)

    assert instance.status is WorkflowStatus.COMPLETE
    assert type(instance.data) is app.Invoice
    assert instance.data.total == 11
