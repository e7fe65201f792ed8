"""How LiteFlow stores Python values: as JSON, never pickle.

Workflow data, step persistence data, event data and ``for_each`` items go
through :func:`to_jsonable` / :func:`from_jsonable` (:func:`dumps` /
:func:`loads` for JSON text).

Format
------
Plain JSON values are stored unchanged: ``None``, ``bool``, ``int``, ``float``
(``inf`` and ``nan`` too, written as Python's :mod:`json` writes them), ``str``,
``list``, and ``dict`` with ``str`` keys. Anything else is a tagged object::

    tuple, set, frozenset    {"$t": "tuple" | "set" | "frozenset", "v": [...]}
    dict with a non-str key  {"$t": "dict", "v": [[key, value], ...]}
      or with a "$t" key
    datetime, date, time     {"$t": "datetime" | "date" | "time", "v": isoformat}
    timedelta                {"$t": "timedelta", "v": [days, seconds, microseconds]}
    UUID, Decimal            {"$t": "uuid" | "decimal", "v": str(value)}
    bytes, bytearray         {"$t": "bytes" | "bytearray", "v": base64}
    types.SimpleNamespace    {"$t": "namespace", "v": {attr: value}}
    Enum member              {"$t": "enum", "c": CLASS, "v": member value}
    dataclass instance       {"$t": "dataclass", "c": CLASS, "v": {field: value}}
    pydantic v2 model        {"$t": "pydantic", "c": CLASS, "v": model_dump(mode="json")}
    other object             {"$t": "object", "c": CLASS, "v": {attr: value}}
      (__dict__ and/or __slots__)

``CLASS`` is the name given to :func:`register_type`, else ``"module:QualName"``.
Nested values are encoded the same way. A time zone is kept as its UTC offset,
not its name; a value referenced twice is stored (and read back) as two copies.
Functions, modules, generators, files, sockets, locks, exceptions, subclasses of
built-in types (enums aside) and reference cycles are refused, and so is a value
nested more than :data:`MAX_DEPTH` containers deep: reading it back would exhaust
Python's recursion limit, so it is refused when saved rather than found unreadable.

Reading back
------------
Dataclasses and plain objects are rebuilt with ``cls.__new__(cls)`` and their
attributes set directly: ``__init__`` and ``__post_init__`` are not called. A
dataclass field missing from stored data gets its default, and stored fields the
class no longer has are dropped, so dataclasses can evolve between deploys.
Enums are rebuilt with ``cls(value)``, pydantic models with ``cls.model_validate``.

Safety
------
Loading never imports a module and never runs code named by the data, other than
those constructors. A class named in stored data is used only if

* it was registered with :func:`register_type`, or
* its module is already imported, the class is found in it by plain lookup, and
  it is safe by default: an Enum, a pydantic model, a dataclass, or a plain class
  from your own code (not the standard library or an installed package, unless
  that package was trusted with :func:`register_module`).
  Dataclasses and plain classes must not define ``__del__``; plain classes must
  not define ``__reduce__``, ``__reduce_ex__`` or ``__setstate__`` either, as
  those mark state that copying attributes cannot rebuild.

The same rule applies when saving, so a value that could not be read back is
refused at save time by a :class:`SerializationError` naming the path to it,
for example ``data.items[2].conn``. The classes allowed, and the decisions cached per class, are
kept in :mod:`._class_registry`.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import json
import reprlib
import types
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from ._class_registry import (
    _CLASS_KINDS,
    _HINT,
    _class_info,
    _class_infos,
    _classes_by_name,
    _ClassInfo,
    _find_imported,
    _qualified,
    register_module,
    register_type,
)
from ._errors import SerializationError

__all__ = ["MAX_DEPTH", "dumps", "from_jsonable", "loads", "register_module", "register_type", "to_jsonable"]

MAX_DEPTH = 100
"""Most containers (lists, dicts, tuples, objects, ...) one value may nest, one inside the other.
Decoding costs about two stack frames per level of tagged containers, so this leaves ample room
under Python's default recursion limit of 1000 wherever the store is read from."""

_TAG = "$t"
_SCALARS = frozenset({str, int, float, bool, type(None)})
_STR = frozenset({str})
_CONTAINERS: dict[type, str] = {tuple: "tuple", set: "set", frozenset: "frozenset"}
_VALUES: dict[type, tuple[str, Callable[[Any], Any]]] = {
    dt.datetime: ("datetime", dt.datetime.isoformat),
    dt.date: ("date", dt.date.isoformat),
    dt.time: ("time", dt.time.isoformat),
    dt.timedelta: ("timedelta", lambda v: [v.days, v.seconds, v.microseconds]),
    uuid.UUID: ("uuid", str),
    decimal.Decimal: ("decimal", str),
    bytes: ("bytes", lambda v: base64.b64encode(v).decode("ascii")),
    bytearray: ("bytearray", lambda v: base64.b64encode(v).decode("ascii")),
}
_CONTAINER_DECODERS: dict[str, Callable[[list[Any]], Any]] = {
    "tuple": tuple,
    "set": set,
    "frozenset": frozenset,
    "dict": dict,
}
_VALUE_DECODERS: dict[str, Callable[[Any], Any]] = {
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "timedelta": lambda v: dt.timedelta(*v),  # positional order: days, seconds, microseconds
    "uuid": uuid.UUID,
    "decimal": decimal.Decimal,
    "bytes": lambda v: base64.b64decode(v, validate=True),
    "bytearray": lambda v: bytearray(base64.b64decode(v, validate=True)),
}


# -------------------------------------------------------------------- encoding


_TOO_DEEP = f"it is nested too deeply: more than {MAX_DEPTH} containers, the limit"


class _Fail(Exception):
    """An encoding failure; each container it passes adds its path segment, and itself."""

    def __init__(self, message: str, entering: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.segments: list[str] = []
        self.containers: list[object] = [] if entering is None else [entering]


def to_jsonable(value: Any, path: str = "data") -> Any:
    """Turn ``value`` into dicts (str keys), lists, str, int, float, bool and None."""
    try:
        return _encode(value, 0)
    except _Fail as e:
        message, segments = e.message, e.segments[::-1]
        if message is _TOO_DEEP:
            message, segments = _cycle_or_depth(e.containers[::-1], segments)
        if len(segments) > 12:  # a path through 100 levels says nothing more than its ends do
            segments[6:-6] = ["..."]
        where = path + "".join(segments)
        raise SerializationError(f"cannot serialize {where}: {message}") from e.__cause__
    except RecursionError:
        raise SerializationError(f"cannot serialize {path}: it is nested too deeply") from None


def _cycle_or_depth(containers: list[object], segments: list[str]) -> tuple[str, list[str]]:
    """Why the path ``containers`` (root first) went deeper than MAX_DEPTH: a reference cycle if it
    comes back to a container it passed (then named up to there), else data nested too deeply.
    The encoder counts the containers on its path rather than remembering them (it runs for every
    save), so a cycle only shows as a path that does not end; this tells the two apart afterwards."""
    passed: set[int] = set()
    for index, container in enumerate(containers):
        if id(container) in passed:
            return "it contains itself (a reference cycle)", segments[:index]
        passed.add(id(container))
    return _TOO_DEEP, segments


def dumps(value: Any, path: str = "data") -> str:
    """Encode ``value`` as compact JSON text."""
    data = to_jsonable(value, path)
    try:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    except ValueError as e:  # e.g. an int too long to convert to text
        raise SerializationError(f"cannot serialize {path}: {e}") from e


# ``depth`` is the number of containers on the path from the root to ``value``: a container entered
# at MAX_DEPTH fails (see _cycle_or_depth). A value shared by two fields is simply encoded twice.


def _encode(value: Any, depth: int) -> Any:
    t = type(value)
    if t in _SCALARS:
        return value
    if t is list:
        return _encode_items(value, depth)
    if t is dict:
        if _TAG in value or not _STR.issuperset(map(type, value)):  # some key is not a str
            return {_TAG: "dict", "v": _encode_pairs(value, depth)}
        return _encode_attrs(value, value, depth)
    info = _class_infos.get(t)  # a class met before: straight there, the most common case left
    if (
        type(info) is _ClassInfo  # (not a str saying why the class is refused)
        and t not in _CONTAINERS  # (a decoded record may have named one: they keep their own tags)
        and t not in _VALUES
        and t is not types.SimpleNamespace
    ):
        return _encode_instance(value, t, depth, info)
    tag = _CONTAINERS.get(t)
    if tag is not None:
        items = _encode_items(value, depth)
        if t is not tuple:  # a set has no order of its own: sort, so equal sets store alike
            items.sort(key=lambda item: json.dumps(item, sort_keys=True))
        return {_TAG: tag, "v": items}
    simple = _VALUES.get(t)
    if simple is not None:
        return {_TAG: simple[0], "v": simple[1](value)}
    if t is types.SimpleNamespace:
        return {_TAG: "namespace", "v": _encode_attrs(value, vars(value), depth)}
    return _encode_instance(value, t, depth, _allowed(t))


def _allowed(cls: type) -> _ClassInfo:
    info = _class_info(cls)
    if isinstance(info, str):
        raise _Fail(f"type {_qualified(cls)} is not supported; {_HINT} or use plain data{info}")
    return info


def _encode_items(items: Iterable[Any], depth: int) -> list[Any]:
    if depth >= MAX_DEPTH:
        raise _Fail(_TOO_DEEP, items)
    for item in items:
        if type(item) not in _SCALARS:
            break
    else:  # only scalars, as most lists in data: a copy is all
        return list(items)
    depth += 1
    out: list[Any] = []
    try:
        for item in items:
            out.append(item if type(item) in _SCALARS else _encode(item, depth))
    except _Fail as e:
        e.segments.append(f"[{len(out)}]")  # the item that failed is the one after those encoded
        e.containers.append(items)
        raise
    return out


def _encode_attrs(owner: object, attrs: dict[str, Any], depth: int) -> dict[str, Any]:
    if depth >= MAX_DEPTH:
        raise _Fail(_TOO_DEEP, owner)
    depth += 1
    out: dict[str, Any] = {}
    k = ""
    try:
        for k, v in attrs.items():
            t = type(v)
            if t in _SCALARS:
                out[k] = v
            elif t is list:  # _encode written out for the two containers data holds most
                out[k] = _encode_items(v, depth)
            elif t is dict and _TAG not in v and _STR.issuperset(map(type, v)):
                out[k] = _encode_attrs(v, v, depth)
            else:
                out[k] = _encode(v, depth)
    except _Fail as e:
        e.segments.append(f".{k}")
        e.containers.append(owner)
        raise
    return out


def _encode_pairs(d: dict[Any, Any], depth: int) -> list[Any]:
    if depth >= MAX_DEPTH:
        raise _Fail(_TOO_DEEP, d)
    depth += 1
    pairs: list[Any] = []
    k: Any = None
    try:
        for k, v in d.items():
            pairs.append([_encode(k, depth), _encode(v, depth)])
    except _Fail as e:
        e.segments.append(f".{k}" if type(k) is str else f"[{reprlib.repr(k)}]")
        e.containers.append(d)
        raise
    return pairs


def _encode_instance(value: Any, cls: type, depth: int, info: _ClassInfo) -> Any:
    if info.kind == "enum":
        encoded: Any = _encode(value.value, depth)
    elif info.kind == "pydantic":
        try:
            encoded = value.model_dump(mode="json")
        except Exception as e:
            raise _Fail(f"{_qualified(cls)}.model_dump failed: {e}") from e
    else:
        if info.kind == "dataclass":
            attrs = {f.name: getattr(value, f.name) for f in info.fields if hasattr(value, f.name)}
        else:
            if not info.slots:  # read, not changed: no copy needed
                attrs = vars(value) if info.has_dict else {}
            else:
                attrs = dict(vars(value)) if info.has_dict else {}
                attrs.update((s, getattr(value, s)) for s in info.slots if hasattr(value, s))
        encoded = _encode_attrs(value, attrs, depth)
    return {_TAG: info.kind, "c": info.name, "v": encoded}


# -------------------------------------------------------------------- decoding


def from_jsonable(obj: Any) -> Any:
    """Rebuild the value that :func:`to_jsonable` turned into ``obj``."""
    try:
        return _decode(obj)
    except SerializationError:
        raise
    except Exception as e:  # malformed data, too deep nesting, or a constructor rejecting it
        raise SerializationError(f"cannot deserialize data: {type(e).__name__}: {e}") from e


def loads(text: str) -> Any:
    """Parse JSON text written by :func:`dumps` and rebuild the value."""
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as e:  # RecursionError: absurdly deep nesting
        raise SerializationError(f"cannot deserialize data: invalid JSON: {e}") from e
    return from_jsonable(obj)


def _decode(obj: Any) -> Any:
    # Scalars copied without a call, and loops rather than comprehensions where no call is needed
    # per item: this runs for every load of every instance's data (and in Python 3.11 a
    # comprehension is a call of its own).
    t = type(obj)
    if t is list:
        for v in obj:
            if type(v) not in _SCALARS:
                return [v if type(v) in _SCALARS else _decode(v) for v in obj]
        return obj[:]
    if t is not dict:
        if t in _SCALARS:
            return obj
        raise SerializationError(f"cannot deserialize data: {_qualified(t)} is not JSON data")
    if _TAG not in obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out[k] = v if type(v) in _SCALARS else _decode(v)
        return out
    tag = obj[_TAG]
    if tag in _CLASS_KINDS:
        return _decode_instance(obj, tag)
    if tag in _VALUE_DECODERS:
        return _VALUE_DECODERS[tag](obj["v"])
    if tag in _CONTAINER_DECODERS:
        return _CONTAINER_DECODERS[tag](_items(obj))
    if tag == "namespace":
        return types.SimpleNamespace(**_attrs(obj))
    raise SerializationError(f"cannot deserialize data: unknown tag {tag!r}")


def _items(obj: dict[str, Any]) -> list[Any]:
    if type(obj["v"]) is not list:
        raise SerializationError(f"cannot deserialize data: {obj[_TAG]!r} needs a list")
    return [_decode(v) for v in obj["v"]]


def _attrs(obj: dict[str, Any]) -> dict[str, Any]:
    # Decoded key by key: an attribute named "$t" is not a tag here.
    if type(obj["v"]) is not dict:
        raise SerializationError(f"cannot deserialize data: {obj[_TAG]!r} needs an object")
    attrs: dict[str, Any] = {}
    for k, v in obj["v"].items():
        attrs[k] = v if type(v) in _SCALARS else _decode(v)
    return attrs


def _decode_instance(obj: dict[str, Any], tag: str) -> Any:
    cls, info = _allowed_class(obj.get("c"), tag)
    if tag == "enum":
        return cls(_decode(obj["v"]))
    if tag == "pydantic":
        return cls.model_validate(obj["v"])  # type: ignore[attr-defined]
    attrs = _attrs(obj)
    instance = cls.__new__(cls)  # type: ignore[call-overload]
    if tag == "dataclass":
        for f in info.fields:
            if f.name in attrs:
                value = attrs[f.name]
            elif f.default is not dataclasses.MISSING:
                value = f.default
            elif f.default_factory is not dataclasses.MISSING:
                value = f.default_factory()
            else:
                continue
            object.__setattr__(instance, f.name, value)  # also fine on frozen dataclasses
        return instance
    for k, value in attrs.items():
        if k in info.slots:
            object.__setattr__(instance, k, value)
        elif info.has_dict:
            # The inverse of vars(): no property or __setattr__ runs, and a
            # stored "__class__" lands in the dict instead of swapping the class.
            instance.__dict__[k] = value
        else:
            raise SerializationError(f"cannot deserialize data: {info.name} has no attribute {k!r}")
    return instance


def _allowed_class(name: Any, tag: str) -> tuple[type, _ClassInfo]:
    if type(name) is not str:
        raise SerializationError(f"cannot deserialize data: {tag!r} needs a class name")
    cls = _classes_by_name.get(name)
    if cls is None:  # not `or`: a class's truth value may run its metaclass's __len__
        cls = _find_imported(name)
    if cls is None:
        raise SerializationError(
            f"cannot deserialize class {name!r}: it is not registered and not found in an "
            f"imported module (LiteFlow never imports while loading); {_HINT}"
        )
    info = _class_infos.get(cls)  # _class_info written out: every load
    if info is None:
        info = _class_info(cls)
    if type(info) is not _ClassInfo:
        raise SerializationError(
            f"cannot deserialize class {name!r}: type {_qualified(cls)} is not allowed{info}; {_HINT}"
        )
    if info.kind != tag:
        raise SerializationError(f"cannot deserialize class {name!r}: stored as {tag!r}, but it is {info.kind!r}")
    return cls, info
