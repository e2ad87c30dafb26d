"""The parsed form of a `${{ }}` expression: frozen nodes, and a path spelled as it is written."""

from __future__ import annotations

from dataclasses import dataclass


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


def spelled(expr: Expr) -> str:
    """A path as it is written (`steps.a.output["k"][0]`); any other expression as `(…)`."""
    match expr:
        case Name(name):
            return name
        case Member(target, name):
            return f"{spelled(target)}.{name}"
        case Index(target, Literal(value)) if not isinstance(value, bool):
            return f"{spelled(target)}[{value!r}]"
        case Index(target, _):
            return f"{spelled(target)}[…]"
    return "(…)"
