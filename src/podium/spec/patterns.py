"""Regular expressions written by users or models, matched with a time limit.

Python's `re` backtracks without bound and holds the GIL while it does: `^(a+)+$` against
`"a" * 40 + "b"` stalls the whole event loop. Patterns of output schemas, human-step schemas and
routing rules are matched here with the `regex` engine instead, which stops a match after
`MATCH_SECONDS` (raising `PatternTimeout`) and releases the GIL while it runs. Inside
`time_limit()` every match shares one budget as well (`CHECK_SECONDS`), so a schema that matches
a slow pattern against thousands of values cannot add up to a stall either.

`SafeValidator` is Draft 2020-12 with the keywords that match a pattern (`pattern`,
`patternProperties`, `additionalProperties`) going through `search`; `unsupported` refuses the
one combination jsonschema would still match with `re` (`unevaluatedProperties` beside
`patternProperties`).
`format: regex` is not asserted (no format checker is used), so it never runs a user pattern.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import regex  # type: ignore[import-untyped]
from jsonschema import Draft202012Validator, validators  # type: ignore[import-untyped]
from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]

MATCH_SECONDS = 0.1
"""The longest one match of a user pattern may take before it is abandoned."""

CHECK_SECONDS = 1.0
"""The longest all the matches of one check (`time_limit()`) may take together."""

PatternError: type[Exception] = regex.error
"""Raised by `search` for a pattern the `regex` engine cannot compile."""

_MAX_CACHED = 512
_compiled: dict[tuple[str, int], Any] = {}


class PatternTimeout(Exception):
    """A pattern took longer than `seconds` on one value (it backtracks catastrophically), or
    the matches of one check took longer than `seconds` together (`overall`)."""

    def __init__(self, pattern: str, seconds: float, value: str, *, overall: bool = False) -> None:
        self.pattern = pattern
        self.seconds = seconds
        shown = value if len(value) <= 60 else value[:60] + "…"
        if overall:
            message = (
                f"matching patterns took longer than {seconds:g} s in all (stopped at "
                f"{pattern!r} on the value {shown!r}); simplify the pattern or check fewer values"
            )
        else:
            message = (
                f"the pattern {pattern!r} took longer than {seconds:g} s on the value {shown!r} "
                "(it backtracks catastrophically); simplify the pattern, e.g. remove nested "
                "repetition such as (a+)+"
            )
        super().__init__(message)


_clock = time.monotonic
_check: ContextVar[tuple[float, float] | None] = ContextVar("podium_pattern_check", default=None)


@contextmanager
def time_limit(seconds: float | None = None) -> Iterator[None]:
    """Every match inside shares `seconds` (`CHECK_SECONDS`) besides its own limit."""
    budget = CHECK_SECONDS if seconds is None else seconds
    token = _check.set((_clock() + budget, budget))
    try:
        yield
    finally:
        _check.reset(token)


def compile_problem(pattern: str) -> str | None:
    """Why `pattern` is not a regular expression the guarded matcher accepts, or None."""
    try:
        _compile(pattern, 0)
    except regex.error as exc:
        return f"not a valid regular expression: {exc}"
    return None


def search(
    pattern: str, text: str, *, ignore_case: bool = False, seconds: float | None = None
) -> bool:
    """Whether `pattern` is found anywhere in `text`; PatternTimeout after `seconds`
    (`MATCH_SECONDS`), or once the budget of the enclosing `time_limit()` is spent."""
    compiled = _compile(pattern, regex.IGNORECASE if ignore_case else 0)
    limit = MATCH_SECONDS if seconds is None else seconds
    check = _check.get()
    left = limit if check is None else check[0] - _clock()
    if left <= 0:
        raise PatternTimeout(pattern, check[1] if check else limit, text, overall=True)
    try:
        return compiled.search(text, timeout=min(limit, left), concurrent=True) is not None
    except TimeoutError:
        overall = left < limit
        spent = check[1] if overall and check is not None else limit
        raise PatternTimeout(pattern, spent, text, overall=overall) from None


def _compile(pattern: str, flags: int) -> Any:
    key = (pattern, flags)
    compiled = _compiled.get(key)
    if compiled is None:
        compiled = regex.compile(pattern, flags)
        if len(_compiled) >= _MAX_CACHED:
            _compiled.clear()
        _compiled[key] = compiled
    return compiled


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional(instance: Mapping[str, Any], schema: Mapping[str, Any]) -> Iterator[str]:
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    for key in instance:
        if key not in properties and not any(search(p, key) for p in patterns):
            yield key


def _additional_properties(
    validator: Any, allowed: Any, instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    extras = set(_additional(instance, schema))
    if validator.is_type(allowed, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], allowed, path=extra)
    elif not allowed and extras:
        joined = ", ".join(repr(each) for each in sorted(extras))
        if "patternProperties" in schema:
            shown = ", ".join(repr(each) for each in sorted(schema["patternProperties"]))
            yield ValidationError(f"{joined} do not match any of the regexes: {shown}")
        else:
            yield ValidationError(f"Additional properties are not allowed ({joined} unexpected)")


def unsupported(schema: Any) -> str | None:
    """Why `schema` cannot be checked with the time limit, or None. jsonschema evaluates
    `unevaluatedProperties` by matching `patternProperties` with `re`, unguarded; the two are
    refused together."""
    keywords = set(_keywords(schema))
    if {"unevaluatedProperties", "patternProperties"} <= keywords:
        return (
            "it combines `unevaluatedProperties` with `patternProperties`, whose patterns could "
            "then not be matched with a time limit; use `additionalProperties` instead"
        )
    return None


def _keywords(schema: Any) -> Iterator[str]:
    if isinstance(schema, Mapping):
        for key, value in schema.items():
            yield str(key)
            yield from _keywords(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _keywords(item)


SafeValidator: Any = validators.extend(
    Draft202012Validator,
    {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
    },
)
"""Draft 2020-12 whose pattern keywords match with the time limit (PatternTimeout beyond it)."""
