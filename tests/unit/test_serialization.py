"""Behaviour of liteflow.core._serialization: the JSON format, round trips and the safety rules."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import fractions
import json
import math
import socket
import subprocess
import sys
import threading
import types
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from liteflow.core import _class_registry as reg
from liteflow.core._errors import SerializationError
from liteflow.core._serialization import dumps, from_jsonable, loads, register_type, to_jsonable

# ------------------------------------------------------------------ test types


class MyData:  # the seed's style of plain data class
    init_calls = 0

    def __init__(self) -> None:
        MyData.init_calls += 1
        self.value1 = 0
        self.value2 = "x"


class Slotted:
    __slots__ = ("__hidden", "a", "b")

    def __init__(self, a: Any, b: Any) -> None:
        self.a = a
        self.b = b
        self.__hidden = "mangled"

    def hidden(self) -> str:
        return self.__hidden


class SlottedChild(Slotted):  # slots from the whole MRO, plus a __dict__
    pass


class Color(enum.Enum):
    RED = "red"
    PAIR = (1, 2)


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Mode(enum.StrEnum):
    FAST = "fast"


class Perm(enum.Flag):
    R = 1
    W = 2


@dataclasses.dataclass
class Point:
    x: int
    y: int


@dataclasses.dataclass
class Shape:
    name: str
    points: list[Point]
    meta: dict[Any, Any] = dataclasses.field(default_factory=dict)
    area: float = dataclasses.field(init=False, default=0.0)
    post_init_calls: int = 0

    def __post_init__(self) -> None:
        self.post_init_calls += 1


@dataclasses.dataclass(frozen=True)
class Frozen:
    when: dt.datetime
    tags: frozenset[str]


@dataclasses.dataclass(frozen=True, slots=True)
class FrozenSlots:
    a: int
    b: tuple[int, ...]


class WithDel:
    def __del__(self) -> None:
        pass


class WithReduce:
    def __reduce__(self) -> Any:
        return (WithReduce, ())


class MyList(list[int]):
    pass


class Recorder:
    """Counts calls that loading must never make."""

    calls: ClassVar[list[str]] = []

    def __init__(self) -> None:
        Recorder.calls.append("__init__")

    def __setattr__(self, name: str, value: Any) -> None:
        Recorder.calls.append("__setattr__")
        object.__setattr__(self, name, value)


@pytest.fixture(autouse=True)
def clean_registry() -> Iterator[None]:
    """Keep registrations made by one test out of the others."""
    by_name, by_class, infos = dict(reg._classes_by_name), dict(reg._names_by_class), dict(reg._class_infos)
    yield
    reg._classes_by_name.clear()
    reg._classes_by_name.update(by_name)
    reg._names_by_class.clear()
    reg._names_by_class.update(by_class)
    reg._class_infos.clear()
    reg._class_infos.update(infos)


def roundtrip(value: Any) -> Any:
    encoded = to_jsonable(value)
    assert_plain_json(encoded)
    text = dumps(value)
    assert json.loads(text) == json.loads(json.dumps(encoded))
    assert to_jsonable(loads(text)) == encoded  # stable across a second pass
    return from_jsonable(encoded)


def assert_plain_json(obj: Any) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            assert type(k) is str
            assert_plain_json(v)
    elif isinstance(obj, list):
        for v in obj:
            assert_plain_json(v)
    else:
        assert obj is None or type(obj) in (str, int, float, bool)


# ------------------------------------------------------------------ plain JSON


def test_plain_json_is_stored_unchanged() -> None:
    value = {"a": 1, "b": [1.5, "x", None, True, False], "c": {"d": {}}, "e": [], "ü": "ünïcode"}
    assert to_jsonable(value) == value
    assert from_jsonable(value) == value


def test_dumps_is_compact_valid_json_and_keeps_unicode() -> None:
    text = dumps({"name": "héllo", "n": [1, 2]})
    assert text == '{"name":"héllo","n":[1,2]}'
    assert json.loads(text) == {"name": "héllo", "n": [1, 2]}


def test_non_finite_floats_pass_through() -> None:
    result = loads(dumps([math.inf, -math.inf, math.nan]))
    assert result[0] == math.inf and result[1] == -math.inf and math.isnan(result[2])


# ------------------------------------------------------------------ built-in value types


@pytest.mark.parametrize(
    "value",
    [
        (1, "a", None),
        (),
        {1, 2, 3},
        frozenset({"a", "b"}),
        {1: "one", 2: "two"},
        {(1, 2): "tuple key", None: 0, 1.5: "f"},
        {"$t": "not a tag", "other": 1},
        [(1, 2), (3, (4, 5))],
        dt.date(2024, 2, 29),
        dt.timedelta(days=-3, seconds=5, microseconds=7),
        dt.timedelta(microseconds=1),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        decimal.Decimal("0.1000"),
        decimal.Decimal("-1.23E+400"),
        b"\x00\xffbytes",
        b"",
        types.SimpleNamespace(a=1, b=[2, (3,)]),
    ],
    ids=repr,
)
def test_builtin_value_types_roundtrip(value: Any) -> None:
    result = roundtrip(value)
    assert result == value
    assert type(result) is type(value)


def test_decimal_is_exact() -> None:
    value = decimal.Decimal("3.14159265358979323846264338327950288419716939937510")
    assert str(roundtrip(value)) == str(value)
    assert str(roundtrip(decimal.Decimal("-0"))) == "-0"
    assert roundtrip(decimal.Decimal("NaN")).is_nan()


def test_bytearray_stays_bytearray() -> None:
    result = roundtrip(bytearray(b"abc"))
    assert result == bytearray(b"abc") and type(result) is bytearray


def test_datetimes_keep_tz_and_naive_stays_naive() -> None:
    naive = dt.datetime(2024, 1, 2, 3, 4, 5, 678901)
    utc = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    india = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30)))
    assert roundtrip(naive) == naive and roundtrip(naive).tzinfo is None
    for aware in (utc, india):
        result = roundtrip(aware)
        assert result == aware
        assert result.utcoffset() == aware.utcoffset()


def test_times_keep_tz_and_naive_stays_naive() -> None:
    naive = dt.time(23, 59, 59, 999999)
    aware = dt.time(8, 30, tzinfo=dt.timezone(dt.timedelta(hours=-7)))
    assert roundtrip(naive) == naive and roundtrip(naive).tzinfo is None
    result = roundtrip(aware)
    assert result == aware and result.utcoffset() == dt.timedelta(hours=-7)


def test_documented_tagged_format() -> None:
    assert to_jsonable((1, 2)) == {"$t": "tuple", "v": [1, 2]}
    assert to_jsonable({1: "a"}) == {"$t": "dict", "v": [[1, "a"]]}
    assert to_jsonable({"$t": 1}) == {"$t": "dict", "v": [["$t", 1]]}
    assert to_jsonable(dt.timedelta(days=1, seconds=2, microseconds=3)) == {"$t": "timedelta", "v": [1, 2, 3]}
    assert to_jsonable(b"hi") == {"$t": "bytes", "v": "aGk="}
    assert to_jsonable(Color.RED) == {"$t": "enum", "c": f"{__name__}:Color", "v": "red"}
    assert to_jsonable(Point(1, 2)) == {"$t": "dataclass", "c": f"{__name__}:Point", "v": {"x": 1, "y": 2}}


def test_nested_combination_roundtrips() -> None:
    value = {
        "shapes": [Shape("tri", [Point(0, 0), Point(1, 0)], meta={1: {Color.RED, Color.PAIR}})],
        "when": (dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc), dt.date(2024, 5, 1)),
        "ids": {uuid.UUID(int=1): [decimal.Decimal("1.5"), b"x"]},
        "ns": types.SimpleNamespace(level=Level.HIGH, modes={Mode.FAST: Perm.R | Perm.W}),
    }
    assert roundtrip(value) == value


def test_shared_reference_is_not_a_cycle() -> None:
    shared = [1, 2]
    assert roundtrip({"a": shared, "b": shared}) == {"a": [1, 2], "b": [1, 2]}


# ------------------------------------------------------------------ enums, dataclasses, objects


@pytest.mark.parametrize("member", [Color.RED, Color.PAIR, Level.LOW, Mode.FAST, Perm.R | Perm.W])
def test_enums_roundtrip_to_the_same_member(member: enum.Enum) -> None:
    assert roundtrip(member) is member


def test_enum_keys_keep_their_type() -> None:
    result = roundtrip({Mode.FAST: 1, Level.LOW: 2})
    assert result == {Mode.FAST: 1, Level.LOW: 2}
    assert {type(k) for k in result} == {Mode, Level}


def test_dataclass_roundtrip_includes_init_false_fields_and_skips_post_init() -> None:
    shape = Shape("sq", [Point(0, 0), Point(1, 1)], meta={"k": (1, 2)})
    shape.area = 4.0
    result = roundtrip(shape)
    assert result == shape
    assert result.area == 4.0
    assert result.post_init_calls == 1  # stored value, __post_init__ did not run again
    assert isinstance(result.points[0], Point)


def test_frozen_dataclasses_roundtrip() -> None:
    frozen = Frozen(dt.datetime(2020, 1, 1), frozenset({"a"}))
    assert roundtrip(frozen) == frozen
    assert roundtrip(FrozenSlots(1, (2, 3))) == FrozenSlots(1, (2, 3))


def test_dataclass_missing_field_gets_default_and_unknown_field_is_dropped() -> None:
    stored = {"$t": "dataclass", "c": f"{__name__}:Shape", "v": {"name": "old", "points": [], "gone": 1}}
    result = from_jsonable(stored)
    assert result.meta == {} and result.area == 0.0 and result.post_init_calls == 0
    assert not hasattr(result, "gone")


def test_plain_class_roundtrip_without_calling_init() -> None:
    data = MyData()
    data.value1 = 42
    data.extra = (1, 2)  # type: ignore[attr-defined]
    calls_before = MyData.init_calls
    result = roundtrip(data)
    assert type(result) is MyData
    assert vars(result) == {"value1": 42, "value2": "x", "extra": (1, 2)}
    assert MyData.init_calls == calls_before


def test_slots_class_roundtrip_including_mangled_and_unset_slots() -> None:
    obj = Slotted(1, [Point(1, 2)])
    result = roundtrip(obj)
    assert (result.a, result.b, result.hidden()) == (1, [Point(1, 2)], "mangled")
    del obj.b
    assert not hasattr(roundtrip(obj), "b")


def test_slots_with_dict_in_subclass() -> None:
    obj = SlottedChild(1, 2)
    obj.c = 3  # type: ignore[attr-defined]
    result = roundtrip(obj)
    assert (type(result), result.a, result.b, result.c, result.hidden()) == (SlottedChild, 1, 2, 3, "mangled")


def test_loading_an_object_runs_no_init_or_setattr() -> None:
    obj = Recorder()
    obj.x = 1
    encoded = to_jsonable(obj)
    Recorder.calls.clear()
    result = from_jsonable(encoded)
    assert result.x == 1 and Recorder.calls == []


def test_stored_dunder_attribute_cannot_swap_the_class() -> None:
    stored = {"$t": "object", "c": f"{__name__}:MyData", "v": {"__class__": "whatever", "value1": 1}}
    result = from_jsonable(stored)
    assert type(result) is MyData and result.value1 == 1


# ------------------------------------------------------------------ pydantic


def test_pydantic_model_roundtrip(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pydantic")
    # Defined in an imported module of their own, as user models would be.
    module = types.ModuleType("lf_test_models")
    exec(
        "import datetime, pydantic\n"
        "class Line(pydantic.BaseModel):\n"
        "    sku: str\n"
        "    qty: int = 1\n"
        "class Order(pydantic.BaseModel):\n"
        "    id: int\n"
        "    placed: datetime.datetime\n"
        "    lines: list[Line]\n",
        module.__dict__,
    )
    monkeypatch.setitem(sys.modules, "lf_test_models", module)
    order = module.Order(id=1, placed=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), lines=[module.Line(sku="a")])
    encoded = to_jsonable({"order": order})
    assert encoded["order"]["$t"] == "pydantic"
    assert encoded["order"]["c"] == "lf_test_models:Order"
    assert encoded["order"]["v"]["placed"] == "2024-01-01T00:00:00Z"
    result = from_jsonable(encoded)["order"]
    assert result == order and type(result.lines[0]) is module.Line


def test_pydantic_model_registered_under_a_name() -> None:
    pydantic = pytest.importorskip("pydantic")

    @register_type(name="tests.Money")
    class Money(pydantic.BaseModel):  # type: ignore[misc,name-defined]
        amount: decimal.Decimal
        currency: str

    money = Money(amount=decimal.Decimal("12.30"), currency="EUR")
    encoded = to_jsonable(money)
    assert encoded["c"] == "tests.Money"
    assert loads(dumps(money)) == money


def test_invalid_pydantic_data_raises_serialization_error(monkeypatch: pytest.MonkeyPatch) -> None:
    pydantic = pytest.importorskip("pydantic")

    class Strict(pydantic.BaseModel):  # type: ignore[misc,name-defined]
        n: int

    register_type(Strict, name="tests.Strict")
    with pytest.raises(SerializationError) as info:
        from_jsonable({"$t": "pydantic", "c": "tests.Strict", "v": {"n": "not a number"}})
    assert isinstance(info.value.__cause__, pydantic.ValidationError)


# ------------------------------------------------------------------ encoding errors


def test_lambda_error_names_path_and_type() -> None:
    with pytest.raises(SerializationError) as info:
        to_jsonable({"steps": [1, {"callback": lambda: 1}]})
    message = str(info.value)
    assert message.startswith("cannot serialize data.steps[1].callback: type builtins.function is not supported")
    assert "register_type" in message


def test_socket_in_dict_names_path() -> None:
    with socket.socket() as conn:
        with pytest.raises(SerializationError, match=r"^cannot serialize data\.conn: type socket\.socket "):
            to_jsonable({"conn": conn})


def test_lock_deep_inside_gives_full_path() -> None:
    holder = MyData()
    holder.conn = threading.Lock()  # type: ignore[attr-defined]
    value = {"items": [0, 1, holder]}
    with pytest.raises(SerializationError, match=r"cannot serialize data\.items\[2\]\.conn: type _thread\.lock "):
        to_jsonable(value)


def test_custom_root_path_and_non_str_keys_in_path() -> None:
    with pytest.raises(SerializationError, match=r"cannot serialize event\[3\]\.x: "):
        to_jsonable({3: {"x": threading.Lock()}}, path="event")
    with pytest.raises(SerializationError, match=r"cannot serialize step\.obj\.value1: "):
        bad = MyData()
        bad.value1 = threading.Lock()  # type: ignore[assignment]
        dumps({"obj": bad}, path="step")


@pytest.mark.parametrize(
    "value",
    [
        (x for x in [1]),
        sys,
        threading.Thread(target=print),
        MyData,
        print,
        open,
        subprocess.Popen,
        iter([1]),
        object(),
        1 + 2j,
    ],
    ids=lambda v: type(v).__name__,
)
def test_unsupported_values_fail_clearly(value: Any) -> None:
    with pytest.raises(SerializationError, match=r"^cannot serialize data: type \S+ is not supported"):
        to_jsonable(value)


def test_file_object_fails_clearly(tmp_path: Any) -> None:
    with open(tmp_path / "f.txt", "w") as f:
        with pytest.raises(SerializationError, match=r"cannot serialize data\.f: type _io\.TextIOWrapper "):
            to_jsonable({"f": f})


@pytest.mark.parametrize("cls", [WithDel, WithReduce])
def test_classes_with_del_or_reduce_are_refused_unless_registered(cls: type) -> None:
    with pytest.raises(SerializationError, match="it defines __"):
        to_jsonable(cls())
    register_type(cls)
    assert type(roundtrip(cls())) is cls


def test_builtin_subclass_is_refused() -> None:
    with pytest.raises(SerializationError, match="MyList is not supported"):
        to_jsonable(MyList([1]))
    with pytest.raises(SerializationError, match="cannot register"):
        register_type(MyList)


def test_cycles_fail_with_serialization_error() -> None:
    items: list[Any] = [1]
    items.append({"back": items})
    with pytest.raises(SerializationError, match=r"cannot serialize data\[1\]\.back: .*cycle"):
        to_jsonable(items)
    obj = MyData()
    obj.value2 = obj  # type: ignore[assignment]
    with pytest.raises(SerializationError, match=r"cannot serialize data\.value2: .*cycle"):
        to_jsonable(obj)


def test_too_deep_nesting_fails_with_serialization_error() -> None:
    value: list[Any] = []
    for _ in range(sys.getrecursionlimit() + 10):
        value = [value]
    with pytest.raises(SerializationError, match="nested too deeply"):
        to_jsonable(value)


def test_local_class_must_be_registered() -> None:
    class Local:
        def __init__(self) -> None:
            self.n = 1

    with pytest.raises(SerializationError, match="inside a function"):
        to_jsonable(Local())
    register_type(Local)
    assert roundtrip(Local()).n == 1


# ------------------------------------------------------------------ decoding safety


def test_unknown_module_is_never_imported() -> None:
    candidates = ["xml.dom.minidom", "mailbox", "wave", "imaplib", "ftplib", "nntplib"]
    module = next((m for m in candidates if m not in sys.modules), None)
    if module is None:
        pytest.skip("every candidate stdlib module is already imported")
    for name in (f"{module}:Document", "nonexistent_mod:X"):
        with pytest.raises(SerializationError, match="register") as info:
            from_jsonable({"$t": "object", "c": name, "v": {}})
        assert repr(name) in str(info.value)
    assert module not in sys.modules
    assert "nonexistent_mod" not in sys.modules


def test_stdlib_class_is_refused_even_when_imported() -> None:
    assert "subprocess" in sys.modules
    with pytest.raises(SerializationError, match=r"'subprocess:Popen'.*register_type"):
        from_jsonable({"$t": "object", "c": "subprocess:Popen", "v": {"args": ["rm", "-rf", "/"]}})


@pytest.mark.parametrize("name", ["builtins:eval", "os:system", "os:path", "os", "builtins:type.mro", "sys:modules"])
def test_names_that_are_not_classes_are_refused(name: str) -> None:
    with pytest.raises(SerializationError):
        from_jsonable({"$t": "object", "c": name, "v": {}})


def test_resolving_a_name_runs_no_module_getattr(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    module = types.ModuleType("lf_lazy")
    module.__getattr__ = lambda name: calls.append(name)  # type: ignore[method-assign]
    monkeypatch.setitem(sys.modules, "lf_lazy", module)
    with pytest.raises(SerializationError):
        from_jsonable({"$t": "object", "c": "lf_lazy:Anything", "v": {}})
    assert calls == []


def test_tag_must_match_the_class_kind() -> None:
    with pytest.raises(SerializationError, match="stored as 'object'"):
        from_jsonable({"$t": "object", "c": f"{__name__}:Point", "v": {"x": 1}})
    with pytest.raises(SerializationError, match="stored as 'pydantic'"):
        from_jsonable({"$t": "pydantic", "c": f"{__name__}:MyData", "v": {}})


@pytest.mark.parametrize(
    "stored",
    [
        {"$t": "nope", "v": 1},
        {"$t": "tuple", "v": "abc"},
        {"$t": "datetime", "v": "not a date"},
        {"$t": "bytes", "v": "***"},
        {"$t": "dict", "v": [[[1], 2]]},
        {"$t": "enum", "c": f"{__name__}:Color", "v": "purple"},
        {"$t": "object", "v": {}},
        {"$t": "namespace", "v": [1]},
        (1, 2),
    ],
    ids=repr,
)
def test_malformed_data_raises_serialization_error(stored: Any) -> None:
    with pytest.raises(SerializationError):
        from_jsonable(stored)


def test_invalid_json_text_raises_serialization_error() -> None:
    with pytest.raises(SerializationError, match="invalid JSON"):
        loads("{not json")


# ------------------------------------------------------------------ register_type


def test_register_type_forms_return_the_class() -> None:
    class A:
        pass

    class B:
        pass

    class C:
        pass

    assert register_type(A) is A

    assert register_type(B) is B
    decorated = register_type(name="tests.C")(C)
    assert decorated is C
    assert to_jsonable(A())["c"] == f"{__name__}:test_register_type_forms_return_the_class.<locals>.A"
    assert to_jsonable(C())["c"] == "tests.C"
    assert type(from_jsonable(to_jsonable(C()))) is C


def test_register_type_as_bare_decorator() -> None:
    @register_type
    class D:
        def __init__(self) -> None:
            self.v = {1: "x"}

    assert roundtrip(D()).v == {1: "x"}


def test_registered_stdlib_class_works() -> None:
    with pytest.raises(SerializationError, match="type fractions.Fraction is not supported"):
        to_jsonable(fractions.Fraction(3, 7))
    stored = {"$t": "object", "c": "fractions:Fraction", "v": {"_numerator": 3, "_denominator": 7}}
    with pytest.raises(SerializationError, match="register"):
        from_jsonable(stored)
    register_type(fractions.Fraction)
    assert roundtrip(fractions.Fraction(3, 7)) == fractions.Fraction(3, 7)
    assert from_jsonable(stored) == fractions.Fraction(3, 7)


def test_renaming_keeps_old_data_readable() -> None:
    class Renamed:
        def __init__(self) -> None:
            self.n = 5

    register_type(Renamed, name="old.Name")
    old = to_jsonable(Renamed())
    register_type(Renamed, name="new.Name")
    assert to_jsonable(Renamed())["c"] == "new.Name"
    assert from_jsonable(old).n == 5


def test_one_name_for_two_classes_is_refused() -> None:
    class First:
        pass

    class Second:
        pass

    register_type(First, name="tests.Same")
    with pytest.raises(SerializationError, match="already registered"):
        register_type(Second, name="tests.Same")


def _nested(depth: int) -> Any:
    """``depth`` lists, one inside the other."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_nesting_up_to_the_depth_limit_round_trips() -> None:
    from liteflow.core._serialization import MAX_DEPTH, dumps, loads

    deepest = _nested(MAX_DEPTH)
    assert loads(dumps(deepest)) == deepest
    tuples: Any = ()
    for _ in range(MAX_DEPTH - 1):  # tagged containers cost the decoder twice the stack
        tuples = (tuples,)
    assert loads(dumps(tuples)) == tuples


def test_data_too_deep_to_load_is_refused_at_save_time() -> None:
    from liteflow.core._serialization import MAX_DEPTH, dumps

    # 400 nested tuples used to save but could not be loaded again (RecursionError on decoding).
    tuples: Any = ()
    for _ in range(399):
        tuples = (tuples,)
    for value in (_nested(MAX_DEPTH + 1), {"a": _nested(MAX_DEPTH)}, tuples):
        with pytest.raises(SerializationError, match=rf"nested too deeply: more than {MAX_DEPTH} containers") as info:
            dumps(value, "data")
        assert len(str(info.value)) < 200  # the path is abbreviated, not 100 segments long
    with pytest.raises(SerializationError, match=r"cannot serialize data\.a\[0\]\[0\].*\.\.\..*\[0\]: "):
        dumps({"a": _nested(MAX_DEPTH)}, "data")


def test_a_cycle_deep_inside_is_told_from_deep_nesting() -> None:
    """The encoder counts containers instead of remembering them; a cycle found only at the depth
    limit is still reported as a cycle, at the first container the path comes back to."""
    from liteflow.core._serialization import MAX_DEPTH

    chain: list[dict[str, Any]] = [{} for _ in range(40)]
    for index in range(len(chain) - 1):
        chain[index]["next"] = chain[index + 1]
    chain[-1]["next"] = chain[10]  # back to the 11th: the path passes it again after 40 levels
    with pytest.raises(
        SerializationError, match=r"cannot serialize data\.start\.next\.next.*: it contains itself"
    ) as info:
        to_jsonable({"x": 1, "list": [1, 2], "start": chain[0]}, "data")
    assert "nested too deeply" not in str(info.value)
    shared = _nested(MAX_DEPTH // 2)
    assert to_jsonable([shared, shared, {"a": shared}]) == [shared, shared, {"a": shared}]
    nested_tuples: Any = ()
    for _ in range(MAX_DEPTH):
        nested_tuples = (nested_tuples,)
    with pytest.raises(SerializationError, match=r"nested too deeply: more than 100 containers"):
        to_jsonable({"t": nested_tuples})
