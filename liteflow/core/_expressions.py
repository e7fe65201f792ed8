"""Safe expressions for workflow definitions loaded as data.

An expression is a small subset of Python: literals, names given by the caller (``data``,
``context``, ``step``), attribute and item access, arithmetic, comparison, boolean logic, the
conditional ``a if c else b``, and calls of the functions in :data:`FUNCTIONS`. It is parsed with
:mod:`ast` and checked node by node against a whitelist when the definition is loaded, then
compiled to a tree of closures; nothing ever goes through ``eval``.

Why a walker of our own rather than ``simpleeval`` or ``cel-python``: simpleeval checks what an
expression does only while evaluating it, so a bad expression would surface when the step runs,
not at load; and its safety limits are attributes of an evaluator object rather than a checked
tree. CEL has its own syntax (``&&``, ``||``, no ``a if c else b``) and evaluates over CEL values, so
attribute access on the user's plain objects would need converting the workflow data first. The
subset here is small enough to check completely at load time.

Limits: the source length, the number of AST nodes, and the size of what ``*``, ``**`` and ``+``
may produce are bounded, so an expression cannot exhaust memory or CPU. Names and attributes
starting with ``_`` are refused, so there is no way to reach ``__class__``, ``__globals__`` and the
like. Sub-expressions without names are evaluated once at load, so ``9**9**9`` or ``'a'*10**9``
fail before anything runs.
"""

from __future__ import annotations

import ast
import operator
import types
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from ._errors import DefinitionError

MAX_LENGTH = 1_000
"""Longest expression source, in characters."""
MAX_NODES = 200
"""Most AST nodes in one expression."""
MAX_SEQUENCE = 100_000
"""Longest string, list or tuple that ``*`` or ``+`` may produce."""
MAX_INT_BITS = 4_096
"""Largest integer (in bits) that ``*`` or ``**`` may produce."""

# Attributes that lead from ordinary objects to frames and code; refused even without underscores.
_DENIED_ATTRIBUTES = frozenset(
    {"f_globals", "f_locals", "f_builtins", "f_back", "f_code", "gi_frame", "gi_code", "cr_frame", "cr_code",
     "ag_frame", "ag_code", "tb_frame", "tb_next", "func_globals", "mro", "format", "format_map"}
)  # fmt: skip


def _now() -> datetime:
    return datetime.now(timezone.utc)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "min": min,
    "max": max,
    "abs": abs,
    "round": round,
    "now": _now,
    "seconds": lambda n: timedelta(seconds=n),
    "minutes": lambda n: timedelta(minutes=n),
    "hours": lambda n: timedelta(hours=n),
    "days": lambda n: timedelta(days=n),
}
"""The functions an expression may call. ``now()`` is the current UTC time; ``seconds(n)``,
``minutes(n)``, ``hours(n)`` and ``days(n)`` make durations."""

Env = Mapping[str, Any]
Node = Callable[[Env], Any]


class ExpressionLimitError(ValueError):
    """An operation would produce a value larger than the expression limits allow."""


_SEQUENCES = (str, bytes, list, tuple)


def _size_of_product(left: Any, right: Any) -> None:
    if isinstance(right, _SEQUENCES) and not isinstance(left, _SEQUENCES):
        left, right = right, left
    if isinstance(left, _SEQUENCES) and not isinstance(right, _SEQUENCES):
        # operator.index accepts what Python's repetition accepts (int, numpy ints...), so the
        # count checked here is the count used.
        if len(left) * max(operator.index(right), 0) > MAX_SEQUENCE:
            raise ExpressionLimitError(f"repeating a sequence more than {MAX_SEQUENCE} items long")
        return
    integers = isinstance(left, int) and isinstance(right, int)
    if integers and abs(left).bit_length() + abs(right).bit_length() > MAX_INT_BITS:
        raise ExpressionLimitError(f"a product larger than {MAX_INT_BITS} bits")


def _multiply(left: Any, right: Any) -> Any:
    _size_of_product(left, right)
    return left * right


def _power(base: Any, exponent: Any) -> Any:
    # bit_length * exponent is an upper bound of the result's size, known before computing it.
    big = isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1
    if big and abs(base).bit_length() * exponent > MAX_INT_BITS:
        raise ExpressionLimitError(f"a power larger than {MAX_INT_BITS} bits")
    return base**exponent


def _add(left: Any, right: Any) -> Any:
    sequences = isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES)
    if sequences and len(left) + len(right) > MAX_SEQUENCE:
        raise ExpressionLimitError(f"a concatenation more than {MAX_SEQUENCE} items long")
    return left + right


def _modulo(left: Any, right: Any) -> Any:
    if isinstance(left, (str, bytes)):
        raise ExpressionLimitError("% formatting of strings is not allowed: use str() and +")
    return left % right


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: _add,
    ast.Sub: operator.sub,
    ast.Mult: _multiply,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: _modulo,
    ast.Pow: _power,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Not: operator.not_,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}


def get_attribute(value: Any, name: str) -> Any:
    """``value.name``: a key of a mapping, else an attribute; never one starting with ``_``."""
    if name.startswith("_") or name in _DENIED_ATTRIBUTES:
        raise ExpressionLimitError(f"attribute {name!r} is not allowed")
    if isinstance(value, Mapping):
        try:
            return value[name]
        except KeyError:
            raise KeyError(f"no key {name!r}") from None
    found = getattr(value, name)
    # An object that keeps a module (self.os = os) must not open the way to os.environ and the like.
    if isinstance(found, types.ModuleType):
        raise ExpressionLimitError(f"attribute {name!r} is a module; modules are not reachable")
    return found


def get_item(value: Any, key: Any) -> Any:
    """``value[key]``: mappings and sequences by key or index; other objects by attribute name."""
    if isinstance(value, (Mapping, Sequence)):
        return value[key]
    if isinstance(key, str):
        return get_attribute(value, key)
    raise TypeError(f"{type(value).__name__} cannot be indexed with {key!r}")


class Expression:
    """A checked, compiled expression. Call it with the names it may use as keyword arguments."""

    def __init__(self, source: str, names: frozenset[str], node: Node, where: str) -> None:
        self.source = source
        self.names = names
        self.where = where
        self._node = node

    def __call__(self, **env: Any) -> Any:
        """Evaluate with the given names.

        Raises:
            DefinitionError: naming where the expression is, when evaluating it fails (a missing
                attribute, a limit exceeded...); the original error is its ``__cause__``.
        """
        try:
            return self._node(env)
        except Exception as error:
            raise DefinitionError(
                f"{self.where}: expression {self.source!r} failed: {type(error).__name__}: {error}"
            ) from error

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def compile_expression(source: Any, names: frozenset[str], where: str) -> Expression:
    """Parse and check ``source``; ``names`` are the variables it may use.

    Raises:
        DefinitionError: naming ``where`` (e.g. "step 'add', input 'input1'") and the problem.
    """
    if not isinstance(source, str) or not source.strip():
        raise DefinitionError(f"{where}: needs an expression (a string), got {source!r}")
    if len(source) > MAX_LENGTH:
        raise DefinitionError(f"{where}: expression longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as error:
        raise DefinitionError(f"{where}: invalid expression {source!r}: {error.msg}") from None
    count = sum(1 for _ in ast.walk(tree))
    if count > MAX_NODES:
        raise DefinitionError(f"{where}: expression too complex ({count} nodes, at most {MAX_NODES})")
    compiler = _Compiler(names, where, source)
    return Expression(source, names, compiler.compile(tree.body), where)


class _Compiler:
    """Turns a checked AST into closures; ``constant`` tells whether a node uses no names."""

    def __init__(self, names: frozenset[str], where: str, source: str) -> None:
        self.names = names
        self.where = where
        self.source = source

    def fail(self, problem: str) -> DefinitionError:
        return DefinitionError(f"{self.where}: {problem} in expression {self.source!r}")

    def compile(self, node: ast.expr) -> Node:
        return self._node(node)[0]

    def _node(self, node: ast.expr) -> tuple[Node, bool]:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise self.fail(f"{_describe(node)} is not allowed")
        compiled, constant = method(node)
        if constant and not isinstance(node, ast.Constant):
            try:
                compiled({})  # a part without names, e.g. 9**9**9: fails here, before anything runs
            except Exception as error:
                raise self.fail(f"{type(error).__name__}: {error}") from None
        return compiled, constant

    def _Constant(self, node: ast.Constant) -> tuple[Node, bool]:
        value = node.value
        if not isinstance(value, (str, int, float, bool, type(None))):
            raise self.fail(f"literal {value!r} is not allowed")
        return (lambda env: value), True

    def _Name(self, node: ast.Name) -> tuple[Node, bool]:
        name = node.id
        if name not in self.names:
            allowed = ", ".join(sorted(self.names)) or "none"
            hint = " (call functions with parentheses)" if name in FUNCTIONS else ""
            raise self.fail(f"unknown name {name!r}{hint}; the names here are: {allowed}")
        return (lambda env: env[name]), False

    def _Attribute(self, node: ast.Attribute) -> tuple[Node, bool]:
        name = node.attr
        if name.startswith("_") or name in _DENIED_ATTRIBUTES:
            raise self.fail(f"attribute {name!r} is not allowed")
        value, constant = self._node(node.value)
        return (lambda env: get_attribute(value(env), name)), constant

    def _Subscript(self, node: ast.Subscript) -> tuple[Node, bool]:
        value, constant = self._node(node.value)
        key, key_constant = self._node(node.slice)
        return (lambda env: get_item(value(env), key(env))), constant and key_constant

    def _Slice(self, node: ast.Slice) -> tuple[Node, bool]:
        parts = [self._node(part) if part is not None else None for part in (node.lower, node.upper, node.step)]
        funcs = [None if part is None else part[0] for part in parts]
        constant = all(part is None or part[1] for part in parts)

        def make(env: Env) -> slice:
            return slice(*(None if f is None else f(env) for f in funcs))

        return make, constant

    def _BinOp(self, node: ast.BinOp) -> tuple[Node, bool]:
        function = _BINARY.get(type(node.op))
        if function is None:
            raise self.fail(f"operator {type(node.op).__name__} is not allowed")
        (left, left_constant), (right, right_constant) = self._node(node.left), self._node(node.right)
        compiled: Node = lambda env: function(left(env), right(env))  # noqa: E731
        return compiled, left_constant and right_constant

    def _UnaryOp(self, node: ast.UnaryOp) -> tuple[Node, bool]:
        function = _UNARY.get(type(node.op))
        if function is None:
            raise self.fail(f"operator {type(node.op).__name__} is not allowed")
        operand, constant = self._node(node.operand)
        return (lambda env: function(operand(env))), constant

    def _BoolOp(self, node: ast.BoolOp) -> tuple[Node, bool]:
        values = [self._node(value) for value in node.values]
        funcs = [value for value, _ in values]
        constant = all(c for _, c in values)
        if isinstance(node.op, ast.And):

            def all_of(env: Env) -> Any:
                result: Any = True
                for f in funcs:
                    result = f(env)
                    if not result:
                        return result
                return result

            return all_of, constant

        def any_of(env: Env) -> Any:
            result: Any = False
            for f in funcs:
                result = f(env)
                if result:
                    return result
            return result

        return any_of, constant

    def _Compare(self, node: ast.Compare) -> tuple[Node, bool]:
        first, constant = self._node(node.left)
        steps: list[tuple[Callable[[Any, Any], Any], Node]] = []
        for op, comparator in zip(node.ops, node.comparators):
            function = _COMPARE[type(op)]
            right, right_constant = self._node(comparator)
            constant = constant and right_constant
            steps.append((function, right))

        def compare(env: Env) -> bool:
            left = first(env)
            for function, right_node in steps:
                right = right_node(env)
                if not function(left, right):
                    return False
                left = right
            return True

        return compare, constant

    def _IfExp(self, node: ast.IfExp) -> tuple[Node, bool]:
        (test, a), (body, b), (orelse, c) = self._node(node.test), self._node(node.body), self._node(node.orelse)
        return (lambda env: body(env) if test(env) else orelse(env)), a and b and c

    def _sequence(self, elements: list[ast.expr]) -> tuple[list[Node], bool]:
        compiled = [self._node(element) for element in elements]
        return [f for f, _ in compiled], all(c for _, c in compiled)

    def _List(self, node: ast.List) -> tuple[Node, bool]:
        funcs, constant = self._sequence(node.elts)
        return (lambda env: [f(env) for f in funcs]), constant

    def _Tuple(self, node: ast.Tuple) -> tuple[Node, bool]:
        funcs, constant = self._sequence(node.elts)
        return (lambda env: tuple(f(env) for f in funcs)), constant

    def _Dict(self, node: ast.Dict) -> tuple[Node, bool]:
        if any(key is None for key in node.keys):
            raise self.fail("** in a dict literal is not allowed")
        keys, keys_constant = self._sequence([key for key in node.keys if key is not None])
        values, values_constant = self._sequence(node.values)
        return (lambda env: {k(env): v(env) for k, v in zip(keys, values)}), keys_constant and values_constant

    def _Call(self, node: ast.Call) -> tuple[Node, bool]:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            shown = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            allowed = ", ".join(sorted(FUNCTIONS))
            raise self.fail(f"call of {shown!r} is not allowed; the functions are: {allowed}")
        if node.keywords:
            raise self.fail(f"keyword arguments to {node.func.id}() are not allowed")
        function = FUNCTIONS[node.func.id]
        args, constant = self._sequence(node.args)
        # now() changes with time: never treat it as a constant folded at load.
        return (lambda env: function(*(a(env) for a in args))), constant and node.func.id != "now"


def _describe(node: ast.AST) -> str:
    kinds = {
        "Lambda": "a lambda",
        "ListComp": "a comprehension",
        "SetComp": "a comprehension",
        "DictComp": "a comprehension",
        "GeneratorExp": "a generator expression",
        "NamedExpr": "an assignment (:=)",
        "JoinedStr": "an f-string",
        "Starred": "* unpacking",
        "Await": "await",
        "Yield": "yield",
        "YieldFrom": "yield",
        "Set": "a set literal",
    }
    return kinds.get(type(node).__name__, type(node).__name__)
