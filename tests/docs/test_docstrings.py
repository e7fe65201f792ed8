"""Every public name of the documented modules has a docstring: the API reference pages
(docs/api/, rendered by mkdocstrings) show them, so a name without one would be a blank entry."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

griffe = pytest.importorskip("griffe")  # comes with the docs extra (mkdocstrings[python])

MODULES = ["liteflow.core", "liteflow.testing", "liteflow.metrics", "liteflow.tracing", "liteflow.providers.spi"]


@pytest.fixture(scope="module")
def loaded() -> Any:
    """The whole ``liteflow`` package as griffe reads it, aliases resolved: loaded once, since
    loading any of its modules parses all of it (about 1.5 s each time)."""
    loader = griffe.GriffeLoader()
    loader.load("liteflow")
    loader.resolve_aliases(external=False)
    return loader.modules_collection


@pytest.mark.parametrize("module_name", MODULES)
def test_every_public_name_has_a_docstring(module_name: str, loaded: Any) -> None:
    public = importlib.import_module(module_name).__all__
    package = loaded[module_name]
    missing = []
    for name in public:
        member = package[name]
        target = member.final_target if member.is_alias else member
        if not (target.docstring and target.docstring.value.strip()):
            missing.append(name)
    assert missing == [], f"{module_name}: no docstring on {missing}"


def test_the_api_pages_render_each_module() -> None:
    from pathlib import Path

    pages = Path(__file__).resolve().parents[2] / "docs" / "api"
    for module_name in MODULES:
        page = pages / f"{module_name.split('.')[-1]}.md"
        assert f"::: {module_name}" in page.read_text(encoding="utf-8"), page
