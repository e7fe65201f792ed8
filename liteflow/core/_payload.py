"""The payload limit: data is measured as the JSON the stores write, before anything is saved.

Checked for workflow data (``start_workflow`` and the save after every pass), the persistence data
of open steps (the save after every pass) and event data (``publish_event``). A value is measured
on its own, not the whole record, so the limit reads as "no single piece of data over N bytes".

Measuring runs on every save, so it takes the fast way: the standard library's C JSON encoder, with
LiteFlow's encoding called only for what plain JSON cannot hold (objects, sets, datetimes, ...).
That count leaves out the few bytes of the tags that mark tuples, ``"$t"`` keys and non-str keys in
stored JSON, so it can only be low, by about 20 bytes per such container; the size reported in a
:class:`PayloadTooLargeError` is exact. ``max_payload_bytes=None`` skips the measuring.

The data of an instance saved after a pass is measured exactly instead: the save has to turn it into
JSON types anyway, so :func:`lend_checked` does that once, measures the result with the C encoder,
and lends it to the save (one encode of the data per save, not two).
"""

from __future__ import annotations

import json
from typing import Any

from ._errors import PayloadTooLargeError, SerializationError
from ._models import WorkflowInstance
from ._records import _NOTHING, _chunks, _lent, forget_lent_data, json_text, lend_jsonable_data
from ._serialization import to_jsonable

# ASCII-escaped and compact, as the SQL and MongoDB providers store it: len() is the size in bytes.
_encode = json_text
_estimate = json.JSONEncoder(separators=(",", ":"), default=to_jsonable).encode


def payload_size(value: Any, what: str) -> int:
    """Bytes ``value`` takes as stored JSON, exactly. Raises SerializationError if it cannot be stored."""
    try:
        return len(_encode(to_jsonable(value, what)))
    except ValueError as error:  # e.g. an int too long to write as text
        raise SerializationError(f"cannot serialize {what}: {error}") from error


def check_payload(value: Any, limit: int | None, what: str) -> None:
    """Raise :class:`PayloadTooLargeError` if ``value`` is over ``limit`` bytes (None: no limit)."""
    if limit is None or value is None:
        return
    try:
        if len(_estimate(value)) <= limit:
            return
    except Exception:  # a cycle, a key plain JSON refuses, ...: measured exactly below
        pass
    size = payload_size(value, what)  # also raises the SerializationError naming the bad field
    if size > limit:
        raise PayloadTooLargeError(what, size, limit)


def check_data_payload(data: Any, limit: int, what: str = "workflow data") -> tuple[Any, str]:
    """Raise :class:`PayloadTooLargeError` if ``data`` is over ``limit`` bytes as stored, measured
    exactly; return it as JSON types and as the JSON text measured (what the save stores), for
    :class:`lent_data`."""
    jsonable = to_jsonable(data, what)
    try:
        text = _encode(jsonable)
    except ValueError as error:  # e.g. an int too long to write as text
        raise SerializationError(f"cannot serialize {what}: {error}") from error
    if len(text) > limit:
        raise PayloadTooLargeError(what, len(text), limit)
    return jsonable, text


def lend_checked(instance: WorkflowInstance, limit: int | None) -> None:
    """Check an instance about to be saved after a pass, raising before anything is saved: its data
    and the persistence data of its open steps (those of ended steps were checked while they were
    open). Then lend the save the data as JSON types and text, as :func:`check_data_payload` makes
    them (see :func:`lend_jsonable_data`); the caller forgets what the save did not use
    (``forget_lent_data``). No limit: no check, nothing lent. One call where a context manager
    takes three: it runs for every save."""
    if limit is None:
        return
    data = instance.data
    jsonable = to_jsonable(data, "workflow data")
    try:
        text = _encode(jsonable) if _chunks is None else "".join(_chunks(jsonable, 0))  # json_text written out
    except ValueError as error:  # e.g. an int too long to write as text
        raise SerializationError(f"cannot serialize workflow data: {error}") from error
    if len(text) > limit:
        raise PayloadTooLargeError("workflow data", len(text), limit)
    for pointer in instance.execution_pointers:
        if pointer.end_time is None and pointer.persistence_data is not None:
            check_payload(pointer.persistence_data, limit, f"persistence data of step {pointer.step_id}")
    lent = _lent
    lent.data, lent.jsonable, lent.text = data, jsonable, text


class lent_data:
    """``with lent_data(data, checked): save`` lends ``checked`` (``data`` as JSON types and text,
    made by a check above) to the save inside the block: the data is encoded once, not twice (see
    :func:`lend_jsonable_data`). What the save does not use is forgotten on leaving."""

    __slots__ = ("_checked", "_data")

    def __init__(self, data: Any, checked: tuple[Any, str] | None) -> None:
        self._data, self._checked = data, checked

    def __enter__(self) -> None:
        if self._checked is not None:
            lend_jsonable_data(self._data, *self._checked)

    def __exit__(self, *exc_info: object) -> None:
        if _lent.data is not _NOTHING:  # the save usually took it (and so forgot it) already
            forget_lent_data()
