"""The safe `${{ }}` expression language: tokenizer, parser to frozen AST, evaluator, references.

Precedence, lowest first: `||`/`or`, `&&`/`and`, `!`/`not`, comparisons (non-associative), then
member/index access, calls and parentheses. There is no arithmetic and nothing is ever `eval`-ed.
Value semantics (equality, ordering, text and JSON) live in `_values`, built-ins in `_functions`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from podium.spec._ast import Call as Call
from podium.spec._ast import Compare as Compare
from podium.spec._ast import Expr as Expr
from podium.spec._ast import Index as Index
from podium.spec._ast import Literal as Literal
from podium.spec._ast import Logical as Logical
from podium.spec._ast import Member as Member
from podium.spec._ast import Name as Name
from podium.spec._ast import Not as Not
from podium.spec._ast import spelled
from podium.spec._functions import FUNCTIONS
from podium.spec._values import ExpressionError as ExpressionError
from podium.spec._values import compare
from podium.spec._values import to_json as to_json
from podium.spec._values import to_text as to_text
from podium.spec._values import truthy as truthy
from podium.spec._values import type_name as type_name

MAX_LENGTH = 4096
MAX_DEPTH = 64


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
        function = FUNCTIONS.get(name.text)
        if function is None:
            known = ", ".join(sorted(FUNCTIONS))
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


def evaluate(expr: Expr, context: Mapping[str, object], *, strict: bool = False) -> object:
    """Evaluate a parsed expression against the root names in `context`. A field or item that is
    not there is null; with `strict` it is an error naming it, except inside `default()`."""
    match expr:
        case Literal(value):
            return value
        case Name(name):
            return _lookup(name, context)
        case Member(target, name):
            return _part(expr, evaluate(target, context, strict=strict), name, strict)
        case Index(target, index):
            obj = evaluate(target, context, strict=strict)
            return _part(expr, obj, evaluate(index, context, strict=strict), strict)
        case Call(function, args):
            lenient = function == "default"
            values = (
                evaluate(a, context, strict=strict and not (lenient and n == 0))
                for n, a in enumerate(args)
            )
            return FUNCTIONS[function].impl(*values)
        case Not(operand):
            return not truthy(evaluate(operand, context, strict=strict))
        case Logical(op, operands):
            return _logical(op == "||", operands, context, strict)
        case Compare(op, left, right):
            left_value = evaluate(left, context, strict=strict)
            return compare(op, left_value, evaluate(right, context, strict=strict))
    raise ExpressionError(f"cannot evaluate a {type(expr).__name__} node")


def _lookup(name: str, context: Mapping[str, object]) -> object:
    if name not in context:
        known = ", ".join(sorted(context)) or "none"
        raise ExpressionError(f"unknown name {name!r}; expressions can use: {known}")
    return context[name]


def _part(expr: Member | Index, value: object, key: object, strict: bool) -> object:
    """`value.key` or `value[key]` (a negative index counts from the end: `[-1]` is the last
    item): null when it is not there, an error when `strict`."""
    if isinstance(value, Mapping) and isinstance(key, str) and key in value:
        return value[key]
    index = key if isinstance(key, int) and not isinstance(key, bool) else None
    if index is not None and isinstance(value, list | tuple) and -len(value) <= index < len(value):
        return value[index]
    if not strict:
        return None
    raise ExpressionError(
        f"{spelled(expr)} is missing: {_why_missing(expr, value, key)}; "
        f"write default({spelled(expr)}, <fallback>) to make it optional"
    )


def _why_missing(expr: Member | Index, value: object, key: object) -> str:
    target = spelled(expr.target)
    if isinstance(value, Mapping):
        keys = ", ".join(sorted(map(str, value))[:20]) or "none"
        return f"{target} has no key {key!r} (its keys: {keys})"
    if isinstance(value, list | tuple) and isinstance(key, int):
        return f"{target} has {len(value)} items"
    return f"{target} is {type_name(value)}, which has no {key!r}"


def _logical(
    want: bool, operands: tuple[Expr, ...], context: Mapping[str, object], strict: bool
) -> object:
    value: object = None
    for operand in operands:
        value = evaluate(operand, context, strict=strict)
        if truthy(value) is want:
            return value
    return value


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
