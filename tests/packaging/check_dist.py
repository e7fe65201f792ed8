"""Checks what `make dist` built: the wheel ships every file of the package, the sdist the whole source.

Usage: ``python tests/packaging/check_dist.py [DIST_DIR]`` from the repository root (DIST_DIR defaults
to ``dist``). Prints each problem and exits 1 if there is any. The files expected are those git
tracks (or, outside a git checkout, those on disk), so new package data such as the dashboard's
templates or a JSON schema is checked as soon as it is added, without editing this script.
"""

from __future__ import annotations

import email.message
import email.parser
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "liteflow"
SDIST_TREES = ("liteflow", "tests", "samples", "bench", "docs")  # every tracked file under these
SDIST_FILES = ("README.md", "LICENSE", "pyproject.toml", "MANIFEST.in", "Makefile")
JUNK = ("__pycache__", ".pyc", ".db", ".db-wal", ".db-shm")


def source_files(root: Path = ROOT) -> list[str]:
    """The repository's files, as POSIX paths relative to ``root``."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True, text=True)
        return [name for name in listed.stdout.split("\0") if name and (root / name).is_file()]
    except (OSError, subprocess.CalledProcessError):  # an unpacked sdist: no git
        skip = {"__pycache__", ".git", ".venv", "dist", "build", ".cache"}
        return sorted(
            p.relative_to(root).as_posix()
            for p in root.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(root).parts) and not p.name.endswith(JUNK)
        )


def project(root: Path = ROOT) -> dict[str, object]:
    """The ``[project]`` table of pyproject.toml."""
    with open(root / "pyproject.toml", "rb") as f:
        table: dict[str, object] = tomllib.load(f)["project"]
    return table


def wheel_problems(wheel: Path, sources: list[str], meta: dict[str, object]) -> list[str]:
    """What is wrong with ``wheel``, given the repository's files and its ``[project]`` table."""
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        dist_info = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
        if len(dist_info) != 1:
            return [f"{wheel.name}: expected one .dist-info folder, found {sorted(dist_info)}"]
        info = dist_info.pop()
        metadata = email.parser.Parser().parsestr(zf.read(f"{info}/METADATA").decode("utf-8"))
    problems = [f"{wheel.name} lacks {name}" for name in _expected(sources, (PACKAGE,)) if name not in names]
    if f"{PACKAGE}/py.typed" not in names:
        problems.append(f"{wheel.name} lacks {PACKAGE}/py.typed")
    outside = [n for n in sorted(names) if _top(n) not in (PACKAGE, info)]
    problems += [f"{wheel.name} holds {n} (outside the package)" for n in outside]
    problems += [f"{wheel.name} holds {n}" for n in sorted(names) if _is_junk(n)]
    problems += _metadata_problems(wheel.name, metadata, meta)
    licenses = [f"{info}/licenses/{name}" for name in _as_list(meta.get("license-files"))]
    problems += [f"{wheel.name} lacks {name}" for name in licenses if name not in names]
    return problems


def sdist_problems(sdist: Path, sources: list[str]) -> list[str]:
    """What is wrong with ``sdist``: it must hold the package, tests, samples, bench and docs."""
    with tarfile.open(sdist) as tf:
        members = [m.name for m in tf.getmembers() if m.isfile()]
    prefix = {_top(m) for m in members}
    if len(prefix) != 1:
        return [f"{sdist.name}: expected one top folder, found {sorted(prefix)}"]
    top = prefix.pop()
    names = {m.removeprefix(top + "/") for m in members}
    expected = _expected(sources, SDIST_TREES) + [f for f in SDIST_FILES if f in sources]
    problems = [f"{sdist.name} lacks {name}" for name in expected if name not in names]
    problems += [f"{sdist.name} lacks {name}" for name in ("PKG-INFO", "pyproject.toml") if name not in names]
    problems += [f"{sdist.name} holds {n}" for n in sorted(names) if _is_junk(n)]
    return problems


def _metadata_problems(wheel: str, metadata: email.message.Message, meta: dict[str, object]) -> list[str]:
    wanted = {
        "Name": str(meta["name"]),
        "Version": str(meta["version"]),
        "License-Expression": str(meta["license"]),
        "Requires-Python": str(meta["requires-python"]),
    }
    problems = [f"{wheel}: {k} is {metadata.get(k)!r}, not {v!r}" for k, v in wanted.items() if metadata.get(k) != v]
    optional = meta.get("optional-dependencies")
    declared = set(optional) if isinstance(optional, dict) else set()
    provided = set(metadata.get_all("Provides-Extra", []))
    problems += [f"{wheel}: extra {e!r} missing" for e in sorted(declared - provided)]
    if not metadata.get_all("Classifier"):
        problems.append(f"{wheel}: no classifiers")
    if "# LiteFlow" not in str(metadata.get_payload()):
        problems.append(f"{wheel}: the long description is not the README")
    return problems


def _expected(sources: list[str], trees: tuple[str, ...]) -> list[str]:
    return [name for name in sources if _top(name) in trees and not _is_junk(name)]


def _top(name: str) -> str:
    return PurePosixPath(name).parts[0]


def _is_junk(name: str) -> bool:
    return "__pycache__" in PurePosixPath(name).parts or name.endswith(JUNK[1:])


def _as_list(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def main(dist: Path) -> int:
    """Check the one wheel and the one sdist in ``dist``; print the problems; 0 if there are none."""
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        print(f"expected one wheel and one sdist in {dist}, found {[p.name for p in [*wheels, *sdists]]}")
        return 1
    sources = source_files()
    problems = wheel_problems(wheels[0], sources, project()) + sdist_problems(sdists[0], sources)
    for problem in problems:
        print(problem)
    if not problems:
        print(f"{wheels[0].name} and {sdists[0].name}: complete")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist"))
