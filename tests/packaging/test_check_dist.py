"""The distribution check that `make dist` runs finds what a broken build would get wrong."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import check_dist
import pytest

META: dict[str, object] = {
    "name": "liteflow-engine",
    "version": "1.2.3",
    "license": "MIT",
    "license-files": ["LICENSE"],
    "requires-python": ">=3.11",
    "optional-dependencies": {"redis": ["redis>=5"], "all": ["liteflow-engine[redis]"]},
}
SOURCES = [
    "LICENSE",
    "Makefile",
    "MANIFEST.in",
    "README.md",
    "pyproject.toml",
    ".ci/run",
    "liteflow/__init__.py",
    "liteflow/py.typed",
    "liteflow/dashboard/templates/index.html",
    "liteflow/definitions/schema.json",
    "tests/unit/test_x.py",
    "samples/01-hello-world.py",
    "bench/README.md",
    "docs/index.md",
]
INFO = "liteflow_engine-1.2.3.dist-info"
METADATA = """Metadata-Version: 2.4
Name: liteflow-engine
Version: 1.2.3
Classifier: Typing :: Typed
Requires-Python: >=3.11
License-Expression: MIT
License-File: LICENSE
Provides-Extra: redis
Provides-Extra: all

# LiteFlow

The README.
"""
GOOD_WHEEL = [n for n in SOURCES if n.startswith("liteflow/")] + [
    f"{INFO}/METADATA",
    f"{INFO}/licenses/LICENSE",
    f"{INFO}/RECORD",
]
GOOD_SDIST = [n for n in SOURCES if n != ".ci/run"] + ["PKG-INFO"]


def wheel(tmp_path: Path, names: list[str], metadata: str = METADATA) -> Path:
    path = tmp_path / "liteflow_engine-1.2.3-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name in names:
            zf.writestr(name, metadata if name.endswith("/METADATA") else "x")
    return path


def sdist(tmp_path: Path, names: list[str], top: str = "liteflow_engine-1.2.3") -> Path:
    path = tmp_path / "liteflow_engine-1.2.3.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for name in names:
            member = tarfile.TarInfo(f"{top}/{name}")
            member.size = 1
            tf.addfile(member, io.BytesIO(b"x"))
    return path


def test_a_complete_wheel_and_sdist_have_no_problems(tmp_path: Path) -> None:
    assert check_dist.wheel_problems(wheel(tmp_path, GOOD_WHEEL), SOURCES, META) == []
    assert check_dist.sdist_problems(sdist(tmp_path, GOOD_SDIST), SOURCES) == []


@pytest.mark.parametrize(
    "missing", ["liteflow/py.typed", "liteflow/dashboard/templates/index.html", "liteflow/definitions/schema.json"]
)
def test_a_wheel_without_a_package_file_is_reported(tmp_path: Path, missing: str) -> None:
    names = [n for n in GOOD_WHEEL if n != missing]
    assert f"liteflow_engine-1.2.3-py3-none-any.whl lacks {missing}" in check_dist.wheel_problems(
        wheel(tmp_path, names), SOURCES, META
    )


def test_py_typed_is_required_even_if_git_does_not_list_it(tmp_path: Path) -> None:
    names = [n for n in GOOD_WHEEL if n != "liteflow/py.typed"]
    sources = [n for n in SOURCES if n != "liteflow/py.typed"]
    assert check_dist.wheel_problems(wheel(tmp_path, names), sources, META) == [
        "liteflow_engine-1.2.3-py3-none-any.whl lacks liteflow/py.typed"
    ]


def test_a_wheel_with_files_outside_the_package_or_bytecode_is_reported(tmp_path: Path) -> None:
    names = [*GOOD_WHEEL, "tests/unit/test_x.py", "liteflow/__pycache__/__init__.cpython-311.pyc"]
    problems = check_dist.wheel_problems(wheel(tmp_path, names), SOURCES, META)
    assert any("tests/unit/test_x.py (outside the package)" in p for p in problems)
    assert any("__init__.cpython-311.pyc" in p for p in problems)


def test_a_wheel_without_the_license_file_is_reported(tmp_path: Path) -> None:
    names = [n for n in GOOD_WHEEL if "licenses" not in n]
    assert check_dist.wheel_problems(wheel(tmp_path, names), SOURCES, META) == [
        f"liteflow_engine-1.2.3-py3-none-any.whl lacks {INFO}/licenses/LICENSE"
    ]


@pytest.mark.parametrize(
    ("line", "replacement", "expected"),
    [
        ("Name: liteflow-engine", "Name: liteflow.core", "Name is 'liteflow.core', not 'liteflow-engine'"),
        ("Version: 1.2.3", "Version: 0.1.0", "Version is '0.1.0', not '1.2.3'"),
        ("License-Expression: MIT", "License: MIT", "License-Expression is None, not 'MIT'"),
        ("Provides-Extra: all\n", "", "extra 'all' missing"),
        ("Classifier: Typing :: Typed\n", "", "no classifiers"),
        ("# LiteFlow", "An empty description", "the long description is not the README"),
    ],
)
def test_wrong_metadata_is_reported(tmp_path: Path, line: str, replacement: str, expected: str) -> None:
    assert line in METADATA
    path = wheel(tmp_path, GOOD_WHEEL, METADATA.replace(line, replacement))
    assert check_dist.wheel_problems(path, SOURCES, META) == [f"liteflow_engine-1.2.3-py3-none-any.whl: {expected}"]


@pytest.mark.parametrize("missing", ["tests/unit/test_x.py", "samples/01-hello-world.py", "docs/index.md", "LICENSE"])
def test_an_sdist_without_tests_samples_docs_or_license_is_reported(tmp_path: Path, missing: str) -> None:
    names = [n for n in GOOD_SDIST if n != missing]
    assert check_dist.sdist_problems(sdist(tmp_path, names), SOURCES) == [
        f"liteflow_engine-1.2.3.tar.gz lacks {missing}"
    ]


def test_an_sdist_with_a_database_file_is_reported(tmp_path: Path) -> None:
    problems = check_dist.sdist_problems(sdist(tmp_path, [*GOOD_SDIST, "tests/liteflow-demo.db"]), SOURCES)
    assert problems == ["liteflow_engine-1.2.3.tar.gz holds tests/liteflow-demo.db"]


def test_the_real_project_table_declares_the_extras_the_readme_promises() -> None:
    extras = check_dist.project()["optional-dependencies"]
    assert isinstance(extras, dict)
    assert {"sqlite", "redis", "rabbitmq", "postgres", "mongo", "azure", "yaml", "all"} <= set(extras)
    assert extras["sqlite"] == []
    # [all] pulls in every extra a user may want (not test, docs or dev) by naming the distribution itself.
    named = extras["all"][0].split("[", 1)[1].rstrip("]").split(",")
    assert set(named) == set(extras) - {"all", "test", "docs", "dev"}


def test_the_sources_are_the_files_git_tracks() -> None:
    sources = check_dist.source_files()
    assert "liteflow/py.typed" in sources
    assert "pyproject.toml" in sources
    assert not [s for s in sources if "__pycache__" in s or s.startswith(".venv/")]
