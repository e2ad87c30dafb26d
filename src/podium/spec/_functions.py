"""The built-in functions `${{ }}` expressions may call (`contains`, `format`, `fromJSON`, ...),
each with its implementation and how many arguments it takes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from podium.spec._values import ExpressionError, equal, to_json, to_text, type_name


@dataclass(frozen=True)
class Function:
    """A built-in: its implementation and how many arguments it accepts."""

    impl: Callable[..., object]
    min_args: int
    max_args: int | None  # None: any number

    def accepts(self, count: int) -> bool:
        return self.min_args <= count and (self.max_args is None or count <= self.max_args)

    @property
    def arity(self) -> str:
        if self.max_args is None:
            return f"{self.min_args} or more"
        low, high = self.min_args, self.max_args
        return str(low) if low == high else f"{low} to {high}"


def _text_arg(function: str, position: int, value: object) -> str:
    if not isinstance(value, str):
        raise ExpressionError(
            f"{function}() expects a string as argument {position}, got {type_name(value)}"
        )
    return value


def _contains(haystack: object, needle: object) -> bool:
    if haystack is None:
        return False
    if isinstance(haystack, str):
        return _text_arg("contains", 2, needle) in haystack
    if isinstance(haystack, list | tuple | Mapping):
        return any(equal(item, needle) for item in haystack)
    raise ExpressionError(
        f"contains() expects a string, array or object as argument 1, got {type_name(haystack)}"
    )


def _on_text(function: str, method: Callable[..., object]) -> Callable[..., object]:
    """A function whose arguments must all be strings, applied as `method(*args)`."""
    return lambda *args: method(*(_text_arg(function, i, a) for i, a in enumerate(args, 1)))


def _len(value: object) -> int:
    if isinstance(value, str | list | tuple | Mapping):
        return len(value)
    raise ExpressionError(f"len() expects a string, array or object, got {type_name(value)}")


def _from_json(text: object) -> object:
    try:
        return json.loads(_text_arg("fromJSON", 1, text), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as err:
        raise ExpressionError(f"fromJSON() got invalid JSON: {err}") from None


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not allowed")


def _join(items: object, separator: object = ",") -> str:
    if not isinstance(items, list | tuple):
        raise ExpressionError(f"join() expects an array as argument 1, got {type_name(items)}")
    return _text_arg("join", 2, separator).join(to_text(item) for item in items)


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{(\d+)\}|[{}]")


def _format(template: object, *args: object) -> str:
    text = _text_arg("format", 1, template)

    def replace(match: re.Match[str]) -> str:
        if match.group() in ("{{", "}}"):
            return match.group()[0]
        if match.group(1) is None:
            raise ExpressionError(f"format(): stray {match.group()!r} in {text!r}; double it")
        number = int(match.group(1))
        if number >= len(args):
            raise ExpressionError(f"format(): {{{number}}} used but {len(args)} value(s) given")
        return to_text(args[number])

    return _PLACEHOLDER.sub(replace, text)


FUNCTIONS: dict[str, Function] = {
    "contains": Function(_contains, 2, 2),
    "startsWith": Function(_on_text("startsWith", str.startswith), 2, 2),
    "endsWith": Function(_on_text("endsWith", str.endswith), 2, 2),
    "len": Function(_len, 1, 1),
    "toJSON": Function(to_json, 1, 1),
    "fromJSON": Function(_from_json, 1, 1),
    "default": Function(lambda value, fallback: fallback if value is None else value, 2, 2),
    "join": Function(_join, 1, 2),
    "format": Function(_format, 1, None),
    "lower": Function(_on_text("lower", str.lower), 1, 1),
    "upper": Function(_on_text("upper", str.upper), 1, 1),
    "trim": Function(_on_text("trim", str.strip), 1, 1),
}
