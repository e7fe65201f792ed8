"""Every `pip install` the package and the docs tell users to run names our distribution and a real extra."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest

from liteflow.core import ProviderError, configure_workflow_host

ROOT = Path(__file__).resolve().parents[2]
with open(ROOT / "pyproject.toml", "rb") as _f:
    PROJECT = tomllib.load(_f)["project"]
TEXTS = sorted(
    [*ROOT.glob("liteflow/**/*.py"), *ROOT.glob("samples/*.py"), *ROOT.glob("*.md"), *ROOT.glob("docs/**/*.md")]
)
HINT = re.compile(r"pip install ['\"]?([A-Za-z0-9_.-]+)\[([a-z0-9_,-]+)\]")


def hints() -> list[tuple[str, str, str]]:
    found = []
    for path in TEXTS:
        for match in HINT.finditer(path.read_text(encoding="utf-8")):
            found.append((path.relative_to(ROOT).as_posix(), match[1], match[2]))
    return found


def test_install_hints_exist_to_be_checked() -> None:
    files = {path for path, _, _ in hints()}
    assert {"README.md", "liteflow/providers/redis/__init__.py", "samples/07-mongodb.py"} <= files


@pytest.mark.parametrize(("path", "distribution", "extras"), hints())
def test_an_install_hint_names_our_distribution_and_declared_extras(path: str, distribution: str, extras: str) -> None:
    assert distribution == PROJECT["name"], f"{path} tells users to install {distribution!r}"
    assert set(extras.split(",")) <= set(PROJECT["optional-dependencies"]), f"{path}: unknown extra in [{extras}]"


def test_a_url_whose_driver_is_missing_names_the_pip_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "liteflow.providers.redis", None)  # as if redis-py were not installed
    with pytest.raises(ProviderError, match=r'pip install "liteflow-engine\[redis\]"'):
        configure_workflow_host(queue_service="redis://127.0.0.1:6379/0")
