"""LiteFlow: durable workflows for Python. The public API lives in :mod:`liteflow.core`."""

import logging as _logging

# A library stays quiet until the application configures logging.
_logging.getLogger("liteflow").addHandler(_logging.NullHandler())
