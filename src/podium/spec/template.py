"""Templates: strings with `${{ expr }}` parts, parsed once and rendered against a run's context."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeAlias

from podium.spec.expr import Expr, ExpressionError, evaluate, parse, references, to_text

_OPEN = re.compile(r"\$?\$\{\{")  # `${{` opens an expression, `$${{` is a literal `${{`


class TemplateError(ExpressionError):
    """A template is malformed or one of its expressions failed; the message quotes the template."""


@dataclass(frozen=True)
class _Slot:
    """One `${{ ... }}` part: the parsed expression and its source text."""

    expr: Expr
    text: str


_Part: TypeAlias = str | _Slot


@dataclass(frozen=True)
class Template:
    """A parsed string containing zero or more `${{ expr }}` parts; construction validates it."""

    source: str
    _parts: tuple[_Part, ...] = field(init=False, repr=False, compare=False)
    _whole: _Slot | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = _split(self.source)
        slots = [part for part in parts if isinstance(part, _Slot)]
        blank = all(isinstance(part, _Slot) or not part.strip() for part in parts)
        object.__setattr__(self, "_parts", parts)
        object.__setattr__(self, "_whole", slots[0] if len(slots) == 1 and blank else None)

    @property
    def is_static(self) -> bool:
        """True when the template has no `${{ }}` parts (escaped `$${{` does not count)."""
        return all(isinstance(part, str) for part in self._parts)

    def render(self, context: Mapping[str, object]) -> object:
        """The value itself when the template is one `${{ }}`; otherwise the interpolated string.
        A field that is not there, or null written into text, is an error naming it (wrap it in
        `default(…, fallback)` to make it optional)."""
        with _blame(self.source):
            if self._whole is not None:
                return evaluate(self._whole.expr, context, strict=True)
            return "".join(_render_part(part, context) for part in self._parts)

    def slots(self) -> Iterator[tuple[str, set[tuple[str, ...]]]]:
        """Each `${{ }}` part's references, with the text before it (earlier parts as NUL)."""
        before = ""
        for part in self._parts:
            if isinstance(part, str):
                before += part
            else:
                yield before, references(part.expr)
                before += "\0"

    def references(self) -> set[tuple[str, ...]]:
        """Every name path the template's expressions read (see `expr.references`)."""
        found: set[tuple[str, ...]] = set()
        for part in self._parts:
            if isinstance(part, _Slot):
                found |= references(part.expr)
        return found


@functools.lru_cache(maxsize=4096)
def parse_template(text: str) -> Template:
    """Parse (and cache) a template; raises TemplateError on bad syntax."""
    return Template(text)


def render_value(value: object, context: Mapping[str, object]) -> object:
    """Render every templated string inside nested dicts/lists/tuples; other values pass through."""
    if isinstance(value, str):
        return parse_template(value).render(context) if "${{" in value else value
    if isinstance(value, Mapping):
        return {key: render_value(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item, context) for item in value]
    if isinstance(value, tuple):
        return tuple(render_value(item, context) for item in value)
    return value


def value_references(value: object) -> set[tuple[str, ...]]:
    """All name paths read by the templates inside a nested value."""
    found: set[tuple[str, ...]] = set()
    for text in _strings(value):
        if "${{" in text:
            found |= parse_template(text).references()
    return found


def parse_condition(text: str) -> Expr:
    """Parse a `when:` condition, written bare (`a == b`) or wrapped (`${{ a == b }}`)."""
    stripped = text.strip()
    if not stripped.startswith("${{"):
        return parse(stripped)
    whole = parse_template(stripped)._whole
    if whole is None:
        raise TemplateError(
            f"condition {_brief(text)} must be a single '${{{{ ... }}}}' or a bare expression"
        )
    return whole.expr


def _split(source: str) -> tuple[_Part, ...]:
    parts: list[_Part] = []
    literal, pos = "", 0
    while (match := _OPEN.search(source, pos)) is not None:
        literal += source[pos : match.start()]
        pos = match.end()
        if match.group().startswith("$$"):
            literal += "${{"
            continue
        end = _closing(source, pos)
        parts.extend([literal, _slot(source, pos, end)] if literal else [_slot(source, pos, end)])
        literal, pos = "", end + 2
    literal += source[pos:]
    return (*parts, literal) if literal else tuple(parts)


def _closing(source: str, start: int) -> int:
    """Index of the `}}` closing the expression that starts at `start`, skipping quoted strings."""
    quote, pos = "", start
    while pos < len(source):
        char = source[pos]
        if quote and char == "\\":
            pos += 1
        elif char == quote or (not quote and char in "'\""):
            quote = "" if quote else char
        elif not quote and source.startswith("}}", pos):
            return pos
        pos += 1
    unclosed = f" (a {quote} string is not closed)" if quote else ""
    raise TemplateError(
        f"in template {_brief(source)}: '${{{{' at column {start - 2} is never closed{unclosed}; "
        "end it with '}}'",
        column=start - 2,
    )


def _slot(source: str, start: int, end: int) -> _Slot:
    text = source[start:end]
    stripped = text.strip()
    if not stripped:
        raise TemplateError(
            f"in template {_brief(source)}: empty '${{{{ }}}}' at column {start - 2}; "
            "put an expression inside or write '$${{' for a literal '${{'",
            column=start - 2,
        )
    try:
        return _Slot(parse(stripped), stripped)
    except ExpressionError as err:
        offset = start + len(text) - len(text.lstrip())
        column = None if err.column is None else offset + err.column
        raise TemplateError(f"in template {_brief(source)}: {err}", column=column) from err


def _render_part(part: _Part, context: Mapping[str, object]) -> str:
    if isinstance(part, str):
        return part
    value = evaluate(part.expr, context, strict=True)
    if value is None:
        raise ExpressionError(
            f"{part.text} is null, which would be written as the text 'null'; write "
            f"default({part.text}, '') or another fallback to make it optional"
        )
    return to_text(value)


@contextmanager
def _blame(source: str) -> Iterator[None]:
    try:
        yield
    except ExpressionError as err:
        raise TemplateError(f"in template {_brief(source)}: {err}") from err


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _brief(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")
