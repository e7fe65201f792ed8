"""The payload limit: data is measured as the JSON the stores write, before anything is saved.

Checked for workflow data (``start_workflow`` and the save after every pass), the persistence data
of open steps (the save after every pass) and event data (``publish_event``). A value is measured
on its own, not the whole record, so the limit reads as "no single piece of data over N bytes".
Measuring serializes the value once more than saving does; ``max_payload_bytes=None`` skips it.
"""

from __future__ import annotations

import json
from typing import Any

from ._errors import PayloadTooLargeError, SerializationError
from ._models import WorkflowInstance
from ._serialization import to_jsonable

# ASCII-escaped and compact, as the SQL and MongoDB providers store it: len() is the size in bytes.
_encode = json.JSONEncoder(separators=(",", ":")).encode


def payload_size(value: Any, what: str) -> int:
    """Bytes ``value`` takes as stored JSON. Raises SerializationError if it cannot be stored."""
    if value is None:
        return 4
    try:
        return len(_encode(to_jsonable(value, what)))
    except ValueError as error:  # e.g. an int too long to write as text
        raise SerializationError(f"cannot serialize {what}: {error}") from error


def check_payload(value: Any, limit: int | None, what: str) -> None:
    """Raise :class:`PayloadTooLargeError` if ``value`` is over ``limit`` bytes (None: no limit)."""
    if limit is not None and value is not None:
        size = payload_size(value, what)
        if size > limit:
            raise PayloadTooLargeError(what, size, limit)


def check_instance_payload(instance: WorkflowInstance, limit: int | None) -> None:
    """Check an instance about to be saved after a pass: its data and the persistence data of its
    open steps (those of ended steps were checked while they were open)."""
    if limit is None:
        return
    check_payload(instance.data, limit, "workflow data")
    for pointer in instance.execution_pointers:
        if pointer.end_time is None and pointer.persistence_data is not None:
            check_payload(pointer.persistence_data, limit, f"persistence data of step {pointer.step_id}")
