"""Every ```python block of README.md and docs/ runs here, as extracted from the Markdown.

How a page's blocks run (CONTRIBUTING.md says the same for authors):

- The blocks of one page run top to bottom in one namespace, like a session: a block may use what
  an earlier block of the page defined. Each page runs in a fresh temporary directory.
- ``<!-- prelude: NAME[, NAME...] -->`` before a block first runs ``tests/docs/preludes/NAME.py``
  in the page's namespace (once per page): the steps, data classes and hosts the examples take for
  granted (``Hello``, ``MyData``, ``host``, ``workflow_id``...). A prelude's ``# requires: A, B``
  line loads those preludes first. A prelude may append functions to ``teardown``; they run when
  the page is done.
- A block that uses ``builder`` without defining it is a fragment of a ``Workflow.build``: it runs
  inside the ``build`` of a workflow registered on a fresh host, so the chain must be valid.
- Every ``Workflow`` subclass a block defines is registered on a fresh host (its ``build`` runs
  and the definition is checked); every ``test_*`` function it defines is called.
- ``<!-- file: NAME -->`` before a block of any language writes the block to NAME in the page's
  directory (a YAML definition a later block loads).
- ``<!-- no-run: REASON -->`` before a block skips it. At most ``MAX_NOT_RUN`` blocks may be
  skipped in all; the test that counts them fails beyond that.

A failing block fails its page's test with the file and line of the block.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import sys
import traceback
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from liteflow.core import Workflow, WorkflowBuilder, configure_workflow_host

ROOT = Path(__file__).resolve().parents[2]
PRELUDES = Path(__file__).parent / "preludes"
MAX_NOT_RUN = 5
"""Blocks that need what a test cannot have: a named cluster's hosts, a fixed port, a system path."""

_DIRECTIVE = re.compile(r"<!--\s*(prelude|no-run|file):\s*(.*?)\s*-->")
_FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass
class Block:
    path: Path
    line: int  # of the opening fence
    language: str
    code: str
    preludes: list[str] = field(default_factory=list)
    no_run: str | None = None
    file: str | None = None

    @property
    def where(self) -> str:
        path = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{path}:{self.line}"


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks_of(path: Path) -> Iterator[Block]:
    """The fenced blocks of ``path``, each with the directives in the comments just before it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    pending: dict[str, str] = {}
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        directive = _DIRECTIVE.search(lines[index])
        if directive:
            pending[directive.group(1)] = directive.group(2)
        elif fence:
            end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
            preludes = [name.strip() for name in pending.get("prelude", "").split(",") if name.strip()]
            yield Block(
                path, index + 1, fence.group(1), "\n".join(lines[index + 1 : end]) + "\n",
                preludes, pending.get("no-run"), pending.get("file"),
            )  # fmt: skip
            pending, index = {}, end
        elif lines[index].strip():
            pending = {}  # a directive applies to the very next block only, blank lines aside
        index += 1


def uses_builder_unbound(tree: ast.Module) -> bool:
    """True when a top-level statement reads ``builder`` that the block never assigns."""
    assigned = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    top_level = [node for node in tree.body if not isinstance(node, ast.ClassDef | ast.FunctionDef)]
    reads = {node.id for stmt in top_level for node in ast.walk(stmt) if isinstance(node, ast.Name)}
    return "builder" in reads and "builder" not in assigned


class _Fragment(Workflow):
    """A workflow whose ``build`` is a documentation block that chains on ``builder``."""

    def __init__(self, code: Any, namespace: dict[str, Any], name: str) -> None:
        self._code, self._namespace, self._name = code, namespace, name

    def id(self) -> str:
        return self._name

    def build(self, builder: WorkflowBuilder) -> None:
        exec(self._code, {**self._namespace, "builder": builder})


def run_block(block: Block, namespace: dict[str, Any]) -> None:
    source = "\n" * block.line + block.code  # line numbers in tracebacks are the Markdown's
    tree = ast.parse(source, filename=str(block.path))
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    code = compile(source, str(block.path), "exec", flags=flags)
    if uses_builder_unbound(tree):
        configure_workflow_host().register_workflow(_Fragment(code, namespace, f"docs-{block.line}"))
        return
    before = {name: id(value) for name, value in namespace.items()}
    if code.co_flags & inspect.CO_COROUTINE:
        asyncio.run(eval(code, namespace))
    else:
        exec(code, namespace)
    new = {name: value for name, value in namespace.items() if before.get(name) != id(value)}
    for value in new.values():
        if isinstance(value, type) and issubclass(value, Workflow) and value.__module__ == namespace["__name__"]:
            configure_workflow_host().register_workflow(value())
    for name, value in new.items():
        if name.startswith("test_") and callable(value):
            value()


def load_prelude(name: str, namespace: dict[str, Any], loaded: set[str]) -> None:
    """Runs ``preludes/NAME.py`` in ``namespace`` unless it ran already, after the preludes its
    ``# requires: A, B`` line names."""
    if name in loaded:
        return
    loaded.add(name)
    path = PRELUDES / f"{name}.py"
    source = path.read_text(encoding="utf-8")
    for line in source.splitlines():
        if line.startswith("# requires:"):
            for required in line.removeprefix("# requires:").split(","):
                load_prelude(required.strip(), namespace, loaded)
    exec(compile(source, str(path), "exec"), namespace)


def run_page(path: Path, directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(directory)
    # A real module, as the page's code would be in an application: its classes can be stored.
    module = types.ModuleType("docs_" + re.sub(r"\W", "_", path.stem))
    module.__file__ = str(path)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace: dict[str, Any] = module.__dict__
    namespace["teardown"] = []
    loaded: set[str] = set()
    try:
        for block in blocks_of(path):
            if block.file:
                (directory / block.file).write_text(block.code, encoding="utf-8")
            if block.language != "python" or block.no_run is not None:
                continue
            try:
                for prelude in block.preludes:
                    load_prelude(prelude, namespace, loaded)
                run_block(block, namespace)
            except BaseException:
                pytest.fail(f"{block.where}: the block failed\n{traceback.format_exc()}", pytrace=False)
    finally:
        teardown: list[Callable[[], None]] = namespace["teardown"]
        for step in reversed(teardown):
            step()


@pytest.mark.parametrize("path", markdown_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_python_block_of_the_page_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_page(path, tmp_path, monkeypatch)


def test_few_blocks_are_marked_not_to_run_and_each_says_why() -> None:
    skipped = [block for path in markdown_files() for block in blocks_of(path) if block.no_run is not None]
    assert all(block.no_run for block in skipped), [block.where for block in skipped if not block.no_run]
    assert len(skipped) <= MAX_NOT_RUN, [f"{block.where}: {block.no_run}" for block in skipped]
    python = [block for path in markdown_files() for block in blocks_of(path) if block.language == "python"]
    assert len(python) >= 50  # the pages still hold their examples: extraction found them


def test_a_broken_block_fails_with_its_file_and_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n```python\nx = 1\n```\n\n<!-- prelude: steps -->\n```python\nbuilder.start_with(Hello).nope()\n```\n"
    )
    with pytest.raises(pytest.fail.Exception) as failed:
        run_page(page, tmp_path, monkeypatch)
    assert "page.md:8: the block failed" in str(failed.value)
    assert 'page.md", line 9' in str(failed.value)  # the traceback points into the Markdown


def test_directives_apply_to_the_next_block_only(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- no-run: needs a cloud -->\n```python\nx\n```\ntext\n```python\ny\n```\n")
    first, second = blocks_of(page)
    assert (first.no_run, first.line, first.code) == ("needs a cloud", 2, "x\n")
    assert (second.no_run, second.line) == (None, 6)
