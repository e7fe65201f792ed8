"""The ``liteflow`` command line, tested through its console script."""
