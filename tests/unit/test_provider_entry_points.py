"""URL schemes come from the `liteflow.providers` entry points: a package adds one by being installed."""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from liteflow.core import ConfigurationError, configure_workflow_host
from liteflow.core._config import _LOCK_URLS, _PERSISTENCE_URLS, _QUEUE_URLS, _registered

ROOT = Path(__file__).resolve().parents[2]
FAKE_MODULE = """
from liteflow.core._memory import SingleNodeQueueProvider


class FakeQueue(SingleNodeQueueProvider):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
"""


@pytest.fixture
def fresh_registry() -> Iterator[None]:
    _registered.cache_clear()
    yield
    _registered.cache_clear()


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_registry: None) -> None:
    """An installed distribution `fakepkg` registering `queue.fake`, as pip would leave it on sys.path."""
    (tmp_path / "fakepkg.py").write_text(FAKE_MODULE, encoding="utf-8")
    info = tmp_path / "fakepkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakepkg\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[liteflow.providers]\nqueue.fake = fakepkg:FakeQueue\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fakepkg", raising=False)


def test_an_installed_package_adds_a_scheme(fake_package: None) -> None:
    host = configure_workflow_host(queue_service="fake://x")
    try:
        assert type(host.queue).__name__ == "FakeQueue"
        assert type(host.queue).__module__ == "fakepkg"
        assert host.queue.url == "fake://x"  # type: ignore[attr-defined]
    finally:
        host.stop()


def test_a_registered_scheme_is_only_for_its_kind(fake_package: None) -> None:
    with pytest.raises(ConfigurationError, match=r"no lock provider for URL 'fake://x'"):
        configure_workflow_host(lock_service="fake://x")


def test_an_unknown_scheme_names_the_supported_ones(fresh_registry: None) -> None:
    message = (
        "no queue provider for URL 'nope://x'; supported: memory://, redis://, amqp://, postgresql://, postgres://"
    )
    with pytest.raises(ConfigurationError) as caught:
        configure_workflow_host(queue_service="nope://x")
    assert str(caught.value) == message


def test_the_built_in_schemes_are_declared_as_entry_points() -> None:
    with open(ROOT / "pyproject.toml", "rb") as f:
        declared = tomllib.load(f)["project"]["entry-points"]["liteflow.providers"]
    tables = {"persistence": _PERSISTENCE_URLS, "queue": _QUEUE_URLS, "lock": _LOCK_URLS}
    built_in = {}
    for kind, table in tables.items():
        for scheme, (module, attribute, extra) in table.items():
            built_in[f"{kind}.{scheme}"] = f"{module}:{attribute}" + (f" [{extra}]" if extra else "")
    assert declared == built_in
