"""LiteFlow: durable workflows for Python. The public API lives in :mod:`liteflow.core`."""

import logging as _logging
from importlib import metadata as _metadata

_DISTRIBUTION = "liteflow-engine"
"""The name LiteFlow is installed under (``pip install liteflow-engine``)."""

try:
    __version__: str = _metadata.version(_DISTRIBUTION)
    """The installed version, read from the package metadata: ``pyproject.toml`` is its one source."""
except _metadata.PackageNotFoundError:  # imported from a source folder that was never installed
    __version__ = "0+unknown"

# A library stays quiet until the application configures logging.
_logging.getLogger("liteflow").addHandler(_logging.NullHandler())
