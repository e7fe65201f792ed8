"""``python -m liteflow``: the same as the ``liteflow`` console script."""

from liteflow.cli import main

if __name__ == "__main__":
    main()
