"""What the Azure queue and lock providers share: name checks."""

from __future__ import annotations

import re

from liteflow.core._errors import InvalidArgumentError

# Queue and container names: 3-63 characters, lowercase letters, digits and single hyphens, starting
# and ending with a letter or digit.
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")


def check_name(name: str, what: str) -> str:
    if not _NAME.match(name):
        raise InvalidArgumentError(
            f"{what} {name!r} is not a valid Azure Storage name: 3-63 lowercase letters, digits and single "
            "hyphens, starting and ending with a letter or digit"
        )
    return name
