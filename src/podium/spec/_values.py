"""Value semantics of `${{ }}` expressions: their error type, truthiness, equality, ordering,
type names and conversion to text and JSON."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping
from types import UnionType
from typing import Any


class ExpressionError(ValueError):
    """An expression is malformed or cannot be evaluated; syntax errors carry a 1-based `column`."""

    def __init__(self, message: str, *, column: int | None = None) -> None:
        super().__init__(message)
        self.column = column


def truthy(value: object) -> bool:
    """False for null, false, 0, "", [] and {}; true for everything else."""
    if isinstance(value, str | int | float | list | tuple | Mapping):
        return bool(value)
    return value is not None


_ORDER: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def compare(op: str, left: object, right: object) -> bool:
    """`==`/`!=` by `equal`; `<`, `<=`, `>`, `>=` only between two numbers or two strings."""
    if op in ("==", "!="):
        return equal(left, right) is (op == "==")
    numbers = is_number(left) and is_number(right)
    if numbers or (isinstance(left, str) and isinstance(right, str)):
        return bool(_ORDER[op](left, right))
    raise ExpressionError(
        f"cannot compare {type_name(left)} with {type_name(right)} using {op!r}; "
        "ordering works only between two numbers or two strings"
    )


def equal(left: object, right: object) -> bool:
    """Strict equality: no coercion between types, so `1 == true` and `1 == '1'` are false."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if is_number(left) or is_number(right):
        return is_number(left) and is_number(right) and left == right
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(map(equal, left, right))
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(equal(left[k], right[k]) for k in left)
    if isinstance(left, str | list | tuple | Mapping) or left is None:
        return type(left) is type(right) and left == right
    return left == right


def is_number(value: object) -> bool:
    """An int or float, never a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


_TYPE_NAMES: tuple[tuple[type | UnionType, str], ...] = (
    (type(None), "null"),
    (bool, "boolean"),
    (int | float, "number"),
    (str, "string"),
    (Mapping, "object"),
    (list | tuple, "array"),
)


def type_name(value: object) -> str:
    """The expression-language name of a value's type (null, boolean, number, string, ...)."""
    return next((name for kind, name in _TYPE_NAMES if isinstance(value, kind)), "unknown")


_JSON_OPTIONS: dict[str, Any] = {"sort_keys": True, "separators": (",", ":"), "allow_nan": False}


def to_json(value: object) -> str:
    """Compact JSON with sorted keys; raises ExpressionError for values JSON cannot hold."""
    try:
        return json.dumps(value, ensure_ascii=False, default=_jsonable, **_JSON_OPTIONS)
    except (TypeError, ValueError) as err:
        raise ExpressionError(f"cannot convert {type_name(value)} to JSON: {err}") from None


def _jsonable(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} values are not JSON serializable")


def to_text(value: object) -> str:
    """Strings as they are; null/booleans as `null`/`true`/`false`; arrays and objects as JSON."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | list | tuple | Mapping):
        return to_json(value)
    return str(value)
