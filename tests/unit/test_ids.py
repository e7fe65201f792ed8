"""Ids of instances, pointers, events and errors (``_models.new_id``)."""

from __future__ import annotations

import re
import threading

from liteflow.core import ExecutionPointer
from liteflow.core._models import new_id


def test_ids_are_32_hex_digits_distinct_across_threads() -> None:
    made: list[list[str]] = [[] for _ in range(4)]

    def make(into: list[str]) -> None:
        into.extend(new_id() for _ in range(20_000))

    threads = [threading.Thread(target=make, args=(into,)) for into in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [one for into in made for one in into]
    assert len(set(ids)) == len(ids) == 80_000
    assert all(re.fullmatch("[0-9a-f]{32}", one) for one in ids)
    assert ExecutionPointer(step_id=0).id != ExecutionPointer(step_id=0).id
