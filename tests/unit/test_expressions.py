"""The safe expression language of loaded definitions: what it evaluates, and what it refuses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from liteflow.core import DefinitionError
from liteflow.core._expressions import MAX_LENGTH, MAX_NODES, compile_expression

NAMES = frozenset({"data", "context"})


@dataclass
class Order:
    total: int
    lines: list[str]


def evaluate(source: str, data: object = None, context: object = None) -> object:
    return compile_expression(source, NAMES, "test")(data=data, context=context)


@pytest.mark.parametrize(
    ("source", "data", "expected"),
    [
        ("data.total > 10 and len(data.lines) == 2", Order(11, ["a", "b"]), True),
        ("data.total > 10 and len(data.lines) == 2", {"total": 11, "lines": ["a", "b"]}, True),
        ("data['total'] * 2 + 1", Order(4, []), 9),
        ("data.lines[-1]", Order(0, ["a", "b"]), "b"),
        ("data.lines[0:1]", {"lines": ["a", "b"]}, ["a"]),
        ("'big' if data.total >= 100 else 'small'", {"total": 5}, "small"),
        ("not data.total or data.total in (1, 2, 3)", {"total": 2}, True),
        ("data.total is None", {"total": None}, True),
        ("1 < data.total <= 3", {"total": 3}, True),
        ("str(data.total) + '!'", {"total": 7}, "7!"),
        ("max(data.lines) + min(data.lines)", {"lines": ["b", "a"]}, "ba"),
        ("round(abs(-2.456), 1) + int('3') + float(1) + bool(0)", None, 6.5),
        ("days(1) + hours(2) + minutes(3) + seconds(4)", None, timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("{'weight': data.total, 'lines': [1, 2]}", {"total": 3}, {"weight": 3, "lines": [1, 2]}),
        ("-data.total // 2 % 5 ** 2 / 1", {"total": 7}, 21.0),
    ],
)
def test_expressions_evaluate_on_objects_and_dicts_alike(source: str, data: object, expected: object) -> None:
    assert evaluate(source, data) == expected


def test_now_is_the_current_utc_time_each_time_it_is_evaluated() -> None:
    now = compile_expression("now()", NAMES, "test")
    first = now(data=None, context=None)
    assert isinstance(first, datetime) and first.utcoffset() == timedelta(0)
    assert now(data=None, context=None) >= first


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("__import__('os').system('x')", "call of"),
        ("().__class__.__bases__", "'__bases__' is not allowed"),
        ("data.__dict__", "'__dict__' is not allowed"),
        ("data._private", "'_private' is not allowed"),
        ("data.gi_frame.f_globals", "'f_globals' is not allowed"),
        ("getattr(data, 'x')", "call of 'getattr'"),
        ("data.lines.pop()", "call of 'data.lines.pop'"),
        ("open('/etc/passwd')", "call of 'open'"),
        ("lambda: 1", "a lambda is not allowed"),
        ("[x for x in data]", "a comprehension is not allowed"),
        ("{x: 1 for x in data}", "a comprehension is not allowed"),
        ("(x for x in data)", "a generator expression is not allowed"),
        ("(y := 1)", "an assignment"),
        ("f'{data}'", "an f-string is not allowed"),
        ("9**9**9", "a power larger than"),
        ("'a'*10**9", "repeating a sequence"),
        ("[0] * 10**6", "repeating a sequence"),
        ("data.total + 10**10000", "a power larger than"),
        ("'%9999999999d' % 1", "% formatting"),
        ("1 << 64", "operator LShift is not allowed"),
        ("os", "unknown name 'os'"),
        ("len", "call functions with parentheses"),
        ("int(x=1)", "keyword arguments"),
        ("{**data}", "** in a dict literal"),
        ("b'bytes'", "literal b'bytes' is not allowed"),
        ("data.total +", "invalid expression"),
        ("1/0", "ZeroDivisionError"),
        ("x" * (MAX_LENGTH + 1), "longer than"),
        ("+".join(["1"] * (MAX_NODES // 2)), "too complex"),
        ("", "needs an expression"),
    ],
)
def test_unsafe_or_invalid_expressions_are_refused_when_compiled(source: str, problem: str) -> None:
    with pytest.raises(DefinitionError, match="step 'x'") as raised:
        compile_expression(source, NAMES, "step 'x'")
    assert problem in str(raised.value)


def test_limits_hold_at_run_time_too_for_values_from_the_data() -> None:
    repeat = compile_expression("data.text * data.times", NAMES, "step 'x', input 'y'")
    assert repeat(data={"text": "ab", "times": 3}, context=None) == "ababab"
    with pytest.raises(DefinitionError, match="step 'x', input 'y'.*repeating a sequence"):
        repeat(data={"text": "ab", "times": 10**8}, context=None)
    power = compile_expression("data.base ** data.exponent", NAMES, "here")
    with pytest.raises(DefinitionError, match="a power larger than"):
        power(data={"base": 10, "exponent": 10**6}, context=None)


def test_a_missing_attribute_at_run_time_names_the_expression_and_keeps_the_cause() -> None:
    with pytest.raises(DefinitionError, match="step 'a', input 'b': expression 'data.nope' failed") as raised:
        compile_expression("data.nope", NAMES, "step 'a', input 'b'")(data={"yes": 1}, context=None)
    assert isinstance(raised.value.__cause__, KeyError)


def test_dict_methods_are_not_reachable_as_attributes() -> None:
    # data.items on a dict is the key "items", never the dict's method.
    items = compile_expression("data.items", NAMES, "here")
    assert items(data={"items": [1]}, context=None) == [1]
    with pytest.raises(DefinitionError, match="no key 'items'"):
        items(data={}, context=None)


def test_modules_kept_on_objects_are_not_reachable() -> None:
    import os

    class Holder:
        def __init__(self) -> None:
            self.os = os

    with pytest.raises(DefinitionError, match="'os' is a module"):
        evaluate("data.os.environ", Holder())


def test_repetition_counts_are_checked_whatever_their_integer_type() -> None:
    class Count:
        def __index__(self) -> int:
            return 10**9

    with pytest.raises(DefinitionError, match="repeating a sequence"):
        evaluate("'ab' * data", Count())
    with pytest.raises(DefinitionError, match="repeating a sequence"):
        evaluate("data * 'ab'", Count())
