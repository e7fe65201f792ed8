"""One version, written in pyproject.toml and read back from the installed package's metadata."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import liteflow
import liteflow.core

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_version_is_the_one_in_pyproject() -> None:
    with open(PYPROJECT, "rb") as f:
        project = tomllib.load(f)["project"]
    assert liteflow.__version__ == project["version"] == metadata.version(project["name"])
    assert liteflow.core.__version__ == liteflow.__version__


def test_the_version_sorts_above_the_2018_liteflow_core_line() -> None:
    major = int(liteflow.__version__.split(".")[0])
    assert major >= 1  # liteflow.core on the package index ends at 0.3.1
    assert "__version__" not in liteflow.core.__all__  # `from liteflow.core import *` stays as it was
