"""The safe `${{ }}` expression language: tokenizer, parser to frozen AST, evaluator, references.

Precedence, lowest first: `||`/`or`, `&&`/`and`, `!`/`not`, comparisons (non-associative), then
member/index access, calls and parentheses. There is no arithmetic and nothing is ever `eval`-ed.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import UnionType
from typing import Any

MAX_LENGTH = 4096
MAX_DEPTH = 64


class ExpressionError(ValueError):
    """An expression is malformed or cannot be evaluated; syntax errors carry a 1-based `column`."""

    def __init__(self, message: str, *, column: int | None = None) -> None:
        super().__init__(message)
        self.column = column


# --- AST ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expr:
    """Base of every AST node."""


@dataclass(frozen=True)
class Literal(Expr):
    value: str | int | float | bool | None


@dataclass(frozen=True)
class Name(Expr):
    name: str


@dataclass(frozen=True)
class Member(Expr):
    target: Expr
    name: str


@dataclass(frozen=True)
class Index(Expr):
    target: Expr
    index: Expr


@dataclass(frozen=True)
class Call(Expr):
    function: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Not(Expr):
    operand: Expr


@dataclass(frozen=True)
class Logical(Expr):
    op: str  # "&&" or "||"
    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Compare(Expr):
    op: str
    left: Expr
    right: Expr


# --- tokenizer -----------------------------------------------------------------------------------

_SCAN = re.compile(
    r"""(?P<space>\s+)
      | (?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
      | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
      | (?P<op>==|!=|<=|>=|&&|\|\||[<>!()\[\].,])""",
    re.VERBOSE,
)
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}
_HINTS = {
    "=": " (did you mean '=='?)",
    "&": " (did you mean '&&'?)",
    "|": " (did you mean '||'?)",
    **dict.fromkeys("+-*/%", " (expressions have no arithmetic)"),
}
_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
_KEYWORD_VALUES: dict[str, bool | None] = {"true": True, "false": False, "null": None}
_RESERVED = ("and", "or", "not")


@dataclass(frozen=True)
class _Token:
    kind: str  # "num", "str", "name", "op" or "end"
    text: str
    value: str | int | float | None
    column: int


def _snippet(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _syntax_error(text: str, column: int, message: str) -> ExpressionError:
    return ExpressionError(f"{message} at column {column} in {_snippet(text)}", column=column)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        if text[pos] in "'\"":
            token, pos = _scan_string(text, pos)
            tokens.append(token)
            continue
        match = _SCAN.match(text, pos)
        if match is None:
            hint = _HINTS.get(text[pos], "")
            raise _syntax_error(text, pos + 1, f"unexpected character {text[pos]!r}{hint}")
        kind = match.lastgroup or ""
        if kind != "space":
            value = _number(text, match.group(), pos) if kind == "num" else None
            tokens.append(_Token(kind, match.group(), value, pos + 1))
        pos = match.end()
    tokens.append(_Token("end", "", None, len(text) + 1))
    return tokens


def _number(text: str, literal: str, pos: int) -> int | float:
    if literal.lstrip("-").isdigit():
        return int(literal)
    value = float(literal)
    if not math.isfinite(value):
        raise _syntax_error(text, pos + 1, f"number {literal} is out of range")
    return value


def _scan_string(text: str, start: int) -> tuple[_Token, int]:
    quote, pos = text[start], start + 1
    chars: list[str] = []
    while pos < len(text):
        char = text[pos]
        if char == quote:
            return _Token("str", text[start : pos + 1], "".join(chars), start + 1), pos + 1
        if char == "\\":
            escape = text[pos + 1 : pos + 2]
            if not escape:
                break
            if escape not in _ESCAPES:
                raise _syntax_error(text, pos + 1, f"unknown escape '\\{escape}' in string")
            chars.append(_ESCAPES[escape])
            pos += 2
            continue
        chars.append(char)
        pos += 1
    raise _syntax_error(text, start + 1, f"unterminated string (missing closing {quote})")


# --- parser --------------------------------------------------------------------------------------


def parse(text: str) -> Expr:
    """Parse one expression; raises ExpressionError naming the column of the first problem."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"expression is {len(text)} characters long; the limit is {MAX_LENGTH}"
        )
    if not text.strip():
        raise ExpressionError("expression is empty; write a value such as inputs.name")
    return _Parser(text).parse()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.depth = 0

    def parse(self) -> Expr:
        node = self.expression()
        if self.peek().kind != "end":
            raise self.error(self.peek(), f"unexpected {_describe(self.peek())}")
        return node

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def advance(self) -> _Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def at(self, *texts: str) -> bool:
        token = self.peek()
        return token.kind in ("op", "name") and token.text in texts

    def expect(self, text: str) -> None:
        if not self.at(text):
            raise self.error(self.peek(), f"expected {text!r}, found {_describe(self.peek())}")
        self.advance()

    def error(self, token: _Token, message: str) -> ExpressionError:
        return _syntax_error(self.text, token.column, message)

    @contextmanager
    def deeper(self, token: _Token) -> Iterator[None]:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(token, f"expression is nested more than {MAX_DEPTH} levels deep")
        try:
            yield
        finally:
            self.depth -= 1

    # `expression` and `conjunction` loop inline (no shared helper) to keep the stack shallow.
    def expression(self) -> Expr:
        operands = [self.conjunction()]
        while self.at("||", "or"):
            self.advance()
            operands.append(self.conjunction())
        return operands[0] if len(operands) == 1 else Logical("||", tuple(operands))

    def conjunction(self) -> Expr:
        operands = [self.negation()]
        while self.at("&&", "and"):
            self.advance()
            operands.append(self.negation())
        return operands[0] if len(operands) == 1 else Logical("&&", tuple(operands))

    def negation(self) -> Expr:
        if not self.at("!", "not"):
            return self.comparison()
        token = self.advance()
        with self.deeper(token):
            return Not(self.negation())

    def comparison(self) -> Expr:
        left = self.postfix(self.primary())
        if not self.at(*_COMPARISONS):
            return left
        op = self.advance().text
        right = self.postfix(self.primary())
        if self.at(*_COMPARISONS):
            raise self.error(self.peek(), "comparisons cannot be chained; join them with &&")
        return Compare(op, left, right)

    def postfix(self, node: Expr) -> Expr:
        token = self.peek()
        if token.kind != "op" or token.text not in (".", "["):
            return node
        self.advance()
        with self.deeper(token):
            if token.text == "[":
                index = self.expression()
                self.expect("]")
                return self.postfix(Index(node, index))
            name = self.advance()
            if name.kind != "name":
                raise self.error(name, f"expected a name after '.', found {_describe(name)}")
            return self.postfix(Member(node, name.text))

    def primary(self) -> Expr:
        token = self.advance()
        if token.kind in ("num", "str"):
            return Literal(token.value)
        if token.kind == "name" and token.text in _KEYWORD_VALUES:
            return Literal(_KEYWORD_VALUES[token.text])
        if token.kind == "name" and token.text not in _RESERVED:
            return self.call(token) if self.at("(") else Name(token.text)
        if token.kind == "op" and token.text == "(":
            with self.deeper(token):
                node = self.expression()
            self.expect(")")
            return node
        raise self.error(token, f"expected a value, found {_describe(token)}")

    def call(self, name: _Token) -> Expr:
        function = _FUNCTIONS.get(name.text)
        if function is None:
            known = ", ".join(sorted(_FUNCTIONS))
            raise self.error(name, f"unknown function {name.text}(); known functions: {known}")
        self.advance()
        args: list[Expr] = []
        with self.deeper(name):
            if not self.at(")"):
                args.append(self.expression())
            while self.at(","):
                self.advance()
                args.append(self.expression())
        if not self.at(")"):
            raise self.error(self.peek(), f"expected ',' or ')', found {_describe(self.peek())}")
        self.advance()
        if not function.accepts(len(args)):
            message = f"{name.text}() takes {function.arity} argument(s), got {len(args)}"
            raise self.error(name, message)
        return Call(name.text, tuple(args))


def _describe(token: _Token) -> str:
    if token.kind == "end":
        return "end of expression"
    names = {"num": "number ", "str": "string ", "name": "name ", "op": ""}
    return f"{names[token.kind]}{token.text if token.kind == 'num' else repr(token.text)}"


# --- evaluator -----------------------------------------------------------------------------------


def evaluate(expr: Expr, context: Mapping[str, object]) -> object:
    """Evaluate a parsed expression against the root names in `context`."""
    match expr:
        case Literal(value):
            return value
        case Name(name):
            return _lookup(name, context)
        case Member(target, name):
            obj = evaluate(target, context)
            return obj.get(name) if isinstance(obj, Mapping) else None
        case Index(target, index):
            return _index(evaluate(target, context), evaluate(index, context))
        case Call(function, args):
            return _FUNCTIONS[function].impl(*(evaluate(arg, context) for arg in args))
        case Not(operand):
            return not truthy(evaluate(operand, context))
        case Logical(op, operands):
            return _logical(op == "||", operands, context)
        case Compare(op, left, right):
            return _compare(op, evaluate(left, context), evaluate(right, context))
    raise ExpressionError(f"cannot evaluate a {type(expr).__name__} node")


def truthy(value: object) -> bool:
    """False for null, false, 0, "", [] and {}; true for everything else."""
    if isinstance(value, str | int | float | list | tuple | Mapping):
        return bool(value)
    return value is not None


def _lookup(name: str, context: Mapping[str, object]) -> object:
    if name not in context:
        known = ", ".join(sorted(context)) or "none"
        raise ExpressionError(f"unknown name {name!r}; expressions can use: {known}")
    return context[name]


def _index(value: object, key: object) -> object:
    if isinstance(value, Mapping):
        return value.get(key) if isinstance(key, str) else None
    if isinstance(value, list | tuple) and _is_number(key) and isinstance(key, int):
        return value[key] if 0 <= key < len(value) else None
    return None


def _logical(want: bool, operands: tuple[Expr, ...], context: Mapping[str, object]) -> object:
    value: object = None
    for operand in operands:
        value = evaluate(operand, context)
        if truthy(value) is want:
            return value
    return value


_ORDER: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _compare(op: str, left: object, right: object) -> bool:
    if op in ("==", "!="):
        return _equal(left, right) is (op == "==")
    numbers = _is_number(left) and _is_number(right)
    if numbers or (isinstance(left, str) and isinstance(right, str)):
        return bool(_ORDER[op](left, right))
    raise ExpressionError(
        f"cannot compare {type_name(left)} with {type_name(right)} using {op!r}; "
        "ordering works only between two numbers or two strings"
    )


def _equal(left: object, right: object) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if _is_number(left) or _is_number(right):
        return _is_number(left) and _is_number(right) and left == right
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(map(_equal, left, right))
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(_equal(left[k], right[k]) for k in left)
    if isinstance(left, str | list | tuple | Mapping) or left is None:
        return type(left) is type(right) and left == right
    return left == right


def _is_number(value: object) -> bool:
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


# --- references ----------------------------------------------------------------------------------


def references(expr: Expr) -> set[tuple[str, ...]]:
    """Every path rooted at a name, as its leading literal segments (`steps.a.output[0]`...)."""
    found: set[tuple[str, ...]] = set()
    _collect(expr, found)
    return found


def _collect(expr: Expr, found: set[tuple[str, ...]]) -> None:
    path = _path(expr, found)
    if path is not None:
        found.add(path)


def _path(expr: Expr, found: set[tuple[str, ...]]) -> tuple[str, ...] | None:
    """The literal path of `expr` if it is still open; adds closed paths to `found` on the way."""
    match expr:
        case Name(name):
            return (name,)
        case Member(target, name):
            path = _path(target, found)
            return None if path is None else (*path, name)
        case Index(target, Literal(str() | int() as key)) if not isinstance(key, bool):
            path = _path(target, found)
            return None if path is None else (*path, str(key))
        case Index(target, index):
            _collect(target, found)
            _collect(index, found)
        case Call(_, args) | Logical(_, args):
            for arg in args:
                _collect(arg, found)
        case Not(operand):
            _collect(operand, found)
        case Compare(_, left, right):
            _collect(left, found)
            _collect(right, found)
    return None


# --- functions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Function:
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
        return any(_equal(item, needle) for item in haystack)
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


_FUNCTIONS: dict[str, _Function] = {
    "contains": _Function(_contains, 2, 2),
    "startsWith": _Function(_on_text("startsWith", str.startswith), 2, 2),
    "endsWith": _Function(_on_text("endsWith", str.endswith), 2, 2),
    "len": _Function(_len, 1, 1),
    "toJSON": _Function(to_json, 1, 1),
    "fromJSON": _Function(_from_json, 1, 1),
    "default": _Function(lambda value, fallback: fallback if value is None else value, 2, 2),
    "join": _Function(_join, 1, 2),
    "format": _Function(_format, 1, None),
    "lower": _Function(_on_text("lower", str.lower), 1, 1),
    "upper": _Function(_on_text("upper", str.upper), 1, 1),
    "trim": _Function(_on_text("trim", str.strip), 1, 1),
}
