"""Which classes LiteFlow stores and rebuilds: the class registry behind :mod:`._serialization`.

:func:`register_type` names a class, :func:`register_module` trusts an installed package's plain
classes, and :func:`_class_info` decides (once per class, then cached) whether a class is allowed
and how it is encoded. The encoder and decoder in :mod:`._serialization` read these caches on every
save and load, holding ``_classes_by_name`` and ``_class_infos`` by name: so those dicts are changed
in place, never rebound (tests that isolate them clear and refill them). ``_trusted_modules`` and
``_user_modules`` are read only here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import os
import sys
import sysconfig
import types
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar, overload

from ._errors import InvalidArgumentError, InvalidArgumentTypeError, SerializationError

__all__ = ["register_module", "register_type"]

T = TypeVar("T")

_HINT = "register it with liteflow.core.register_type"
_CLASS_KINDS = frozenset({"enum", "pydantic", "dataclass", "object"})
# Copying attributes cannot rebuild these, and a subclass would silently lose
# its built-in part.
_BUILTIN_BASES = (
    int,
    float,
    complex,
    str,
    bytes,
    bytearray,
    tuple,
    list,
    dict,
    set,
    frozenset,
    dt.date,
    dt.time,
    dt.timedelta,
    decimal.Decimal,
    uuid.UUID,
    types.SimpleNamespace,
    BaseException,
)


class _ClassInfo(NamedTuple):
    kind: str  # one of _CLASS_KINDS, also the tag
    name: str  # the CLASS written to the data
    fields: tuple[dataclasses.Field[Any], ...]  # dataclasses only
    slots: frozenset[str]  # plain objects only
    has_dict: bool


_classes_by_name: dict[str, type] = {}
_names_by_class: dict[type, str] = {}
# A _ClassInfo when the class is allowed, else why not (appended to a message).
_class_infos: dict[type, _ClassInfo | str] = {}
_user_modules: dict[str, bool] = {}
# Names given to register_module: they and their submodules count as user code. Replaced, never
# changed in place, so a thread reading it while another registers sees the old or the new set.
_trusted_modules: frozenset[str] = frozenset()


@overload
def register_type(cls: type[T], *, name: str | None = None) -> type[T]: ...
@overload
def register_type(cls: None = None, *, name: str | None = None) -> Callable[[type[T]], type[T]]: ...
def register_type(cls: type[T] | None = None, *, name: str | None = None) -> type[T] | Callable[[type[T]], type[T]]:
    """Allow instances of ``cls`` to be stored and rebuilt, under ``name``.

    Use as ``register_type(Cls)``, ``@register_type`` or ``@register_type(name="x")``.
    A stable name keeps stored data readable after the class moves; registering a
    class again under a new name keeps data written under the old one readable.
    """

    def register(c: type[T]) -> type[T]:
        if not isinstance(c, type):
            raise InvalidArgumentTypeError(f"register_type expects a class, got {c!r}")
        if _kind_of(c) is None:
            raise SerializationError(f"cannot register {_qualified(c)}: its instances cannot be stored")
        key = name or f"{c.__module__}:{c.__qualname__}"
        existing = _classes_by_name.get(key)
        # The same module and qualname is a reloaded module, not a clash.
        if existing is not None and _qualified(existing) != _qualified(c):
            raise SerializationError(f"name {key!r} is already registered for {_qualified(existing)}")
        _classes_by_name[key] = c
        _names_by_class[c] = key
        _class_infos.pop(c, None)
        return c

    return register if cls is None else register(cls)


def register_module(module: str | types.ModuleType) -> None:
    """Trust the plain classes of ``module`` and its submodules as your own code, even once installed.

    A plain class (not a dataclass, enum or pydantic model) is stored without registering only if
    it comes from your own code, which LiteFlow recognises by its file: ``__main__`` or a module
    outside the standard library and site-packages. An application installed as a package (a
    wheel, ``pip install .``) lives in site-packages, so call ``register_module("myapp")`` once at
    start-up to accept its classes as it accepts them when run from a source folder. Nothing is
    imported: the classes are still looked up only in modules the application has imported.

    Args:
        module: The package or module, as an imported module object or its dotted name
            (``"myapp"`` also covers ``myapp.models``).

    Raises:
        InvalidArgumentError: ``module`` is not a module or a dotted module name, or it names a
            module of the standard library (register the classes you need with
            :func:`register_type` instead).
    """
    if isinstance(module, types.ModuleType):
        name = module.__name__
    elif isinstance(module, str):
        name = module
    else:
        raise InvalidArgumentError(f"register_module expects a module or a module name, got {module!r}")
    if not name or not all(part.isidentifier() for part in name.split(".")):
        raise InvalidArgumentError(f"register_module expects a dotted module name like 'myapp', got {name!r}")
    top = name.partition(".")[0]
    if top in sys.stdlib_module_names or top in ("__main__", "builtins"):
        raise InvalidArgumentError(
            f"register_module({name!r}): {top!r} is not an application package; {_HINT} for the classes you need"
        )
    global _trusted_modules
    _trusted_modules = _trusted_modules | {name}
    for cls in list(_class_infos):  # decisions taken before the module was trusted
        if _is_within(cls.__module__, name):
            _class_infos.pop(cls, None)


def _is_within(module_name: str, package: str) -> bool:
    return module_name == package or module_name.startswith(package + ".")


def _find_imported(name: str) -> type | None:
    """Resolve ``module:Qual.Name`` in an already imported module, running no code.

    Plain ``__dict__`` lookups, unlike getattr, cannot trigger a module
    ``__getattr__`` (which may import) or a descriptor.
    """
    module_name, _, qualname = name.partition(":")
    module = sys.modules.get(module_name)
    if module is None or not qualname:
        return None
    found: Any = module
    for part in qualname.split("."):
        found = vars(found).get(part)
        if not isinstance(found, type):
            return None
    return found  # type: ignore[no-any-return]


# ------------------------------------------------------------ class decisions


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _class_info(cls: type) -> _ClassInfo | str:
    info = _class_infos.get(cls)
    if info is None:
        info = _class_infos[cls] = _decide(cls)
    return info


def _kind_of(cls: type) -> str | None:
    if issubclass(cls, enum.Enum):  # before the built-in check: an IntEnum is an int
        return "enum"
    if all(hasattr(cls, a) for a in ("model_dump", "model_validate", "model_fields")):
        return "pydantic"
    if issubclass(cls, _BUILTIN_BASES):
        return None
    if dataclasses.is_dataclass(cls):
        return "dataclass"
    if cls.__dictoffset__ or _slot_names(cls):
        return "object"
    return None


def _decide(cls: type) -> _ClassInfo | str:
    kind = _kind_of(cls)
    if kind is None:
        return " (subclasses of built-in types lose data)" if issubclass(cls, _BUILTIN_BASES) else ""
    name = _names_by_class.get(cls)
    if name is None:  # not registered: must be safe by default
        name = f"{cls.__module__}:{cls.__qualname__}"
        module = sys.modules.get(cls.__module__)
        if module is None:
            return " (its module is not imported)"
        if kind == "object" and not _is_user_module(module):
            return _not_user_code(module.__name__)
        if kind in ("dataclass", "object"):
            banned = ["__del__"] if kind == "dataclass" else ["__del__", "__reduce__", "__reduce_ex__", "__setstate__"]
            for attr in banned:
                if any(attr in vars(base) for base in cls.__mro__[:-1]):  # all but object
                    return f" (it defines {attr})"
        if _find_imported(name) is not cls:
            return f" (it cannot be found by its name {name!r}, e.g. it is defined inside a function)"
    fields = dataclasses.fields(cls) if kind == "dataclass" else ()
    slots = frozenset(_slot_names(cls)) if kind == "object" else frozenset()
    return _ClassInfo(kind, name, fields, slots, bool(cls.__dictoffset__))


def _slot_names(cls: type) -> list[str]:
    names: list[str] = []
    for base in cls.__mro__:
        slots = vars(base).get("__slots__", ())
        for slot in [slots] if isinstance(slots, str) else slots:
            if slot.startswith("__") and not slot.endswith("__"):  # name-mangled
                slot = f"_{base.__name__.lstrip('_')}{slot}"
            if slot not in ("__dict__", "__weakref__") and slot not in names:
                names.append(slot)
    return names


def _not_user_code(module_name: str) -> str:
    top = module_name.partition(".")[0]
    if top in sys.stdlib_module_names or top == "builtins":
        return " (it is defined in the standard library)"
    return (
        f" (it is defined in an installed package; if {top!r} is your application, trust its classes "
        f"with liteflow.core.register_module({top!r}))"
    )


def _is_user_module(module: types.ModuleType) -> bool:
    """True for ``__main__``, trusted packages and modules outside the standard library and site-packages."""
    if any(_is_within(module.__name__, package) for package in _trusted_modules):
        return True
    known = _user_modules.get(module.__name__)
    if known is not None:
        return known
    file = getattr(module, "__file__", None)
    if module.__name__ == "__main__":
        known = True
    elif not file:  # builtins and other modules compiled into Python
        known = False
    else:
        path = os.path.realpath(file)
        paths = sysconfig.get_paths()
        library = [os.path.realpath(paths[k]) + os.sep for k in ("stdlib", "platstdlib", "purelib", "platlib")]
        known = not path.startswith(tuple(library)) and not {"site-packages", "dist-packages"} & set(path.split(os.sep))
    _user_modules[module.__name__] = known
    return known
