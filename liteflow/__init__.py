"""LiteFlow: durable workflows for Python. The public API lives in :mod:`liteflow.core`."""
