"""Run inputs: `--input NAME=VALUE` pairs and API values, checked against the declared types."""

from __future__ import annotations

import copy
import difflib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping

from podium.errors import InputError
from podium.spec._numbers import read_integer
from podium.spec.model import Workflow

_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")
_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")
_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
_EXPECTED = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object (a JSON mapping)",
    "array": "an array (a JSON list)",
    "secret": "a string (the secret's value)",
}


def _is_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


_CHECKS: dict[str, Callable[[object], bool]] = {
    "string": lambda value: isinstance(value, str),
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "number": _is_number,
    "boolean": lambda value: isinstance(value, bool),
    "object": lambda value: isinstance(value, dict),
    "array": lambda value: isinstance(value, list),
    "secret": lambda value: isinstance(value, str),
}
INPUT_TYPES = tuple(_CHECKS)


def type_problem(kind: str, value: object) -> str | None:
    """Why `value` is not of input type `kind` (None when it is)."""
    if _CHECKS[kind](value):
        return None
    return f"expected {_EXPECTED[kind]}, got {describe(value)}"


def describe(value: object) -> str:
    """A short, JSON-like rendering of a value for messages."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    except ValueError:
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_input_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """`["n=3", "name=x=y"]` -> `{"n": "3", "name": "x=y"}`; a malformed pair is an InputError."""
    result: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InputError(f"--input expects NAME=VALUE, got {pair!r}")
        _check_utf8(name, pair)
        if name in result:
            raise InputError(f"--input {name} is given twice; pass each input once")
        result[name] = value
    return result


def _check_utf8(name: str, pair: str) -> None:
    try:
        pair.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(pair[exc.start])
        what = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"U+{code:04X}"
        raise InputError(
            f"--input {name}: not valid UTF-8 ({what} at position {exc.start}); "
            "pass the value as UTF-8 text"
        ) from None


def coerce_inputs(workflow: Workflow, given: Mapping[str, object]) -> dict[str, object]:
    """Check `given` against the declared inputs: coerce strings, type-check, fill in defaults."""
    _check_names(workflow, given)
    values: dict[str, object] = {}
    errors: list[str] = []
    for name, spec in workflow.inputs.items():
        if name not in given:
            values[name] = copy.deepcopy(spec.default)
            continue
        try:
            values[name] = coerce_value(spec.type, given[name])
        except ValueError as exc:
            errors.append(f"input {name}: {exc}")
    if errors:
        raise InputError("; ".join(errors) + "; fix the values and try again")
    return values


def _check_names(workflow: Workflow, given: Mapping[str, object]) -> None:
    declared = workflow.inputs
    listing = f"declared inputs: {', '.join(declared)}" if declared else "it declares no inputs"
    if unknown := [name for name in given if name not in declared]:
        hints = [_did_you_mean(name, declared) for name in unknown]
        named = ", ".join(f"{name}{hint}" for name, hint in zip(unknown, hints, strict=True))
        raise InputError(f"workflow {workflow.name} has no input {named}; {listing}")
    missing = [name for name, spec in declared.items() if spec.is_required and name not in given]
    if missing:
        raise InputError(
            f"missing required input{'s' if len(missing) > 1 else ''}: {', '.join(missing)}; "
            "pass each as --input NAME=VALUE"
        )


def _did_you_mean(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


def coerce_value(kind: str, value: object) -> object:
    """Parse text into input type `kind`; other values must already have that type."""
    if isinstance(value, str) and kind not in ("string", "secret"):
        value = _parse_text(kind, value)
    if problem := type_problem(kind, value):
        raise ValueError(problem)
    return value


def _parse_text(kind: str, text: str) -> object:
    if kind == "integer" and _INTEGER.match(text):
        return read_integer(text)
    if kind == "number" and _NUMBER.match(text):
        return read_integer(text) if _INTEGER.match(text) else float(text)
    if kind == "boolean" and text.strip().lower() in _BOOLEANS:
        return _BOOLEANS[text.strip().lower()]
    if kind in ("object", "array"):
        try:
            return json.loads(text, parse_int=read_integer)
        except json.JSONDecodeError as exc:
            expected = f"expected {_EXPECTED[kind]} as JSON"
            raise ValueError(f"{expected}, got {describe(text)}: {exc.msg}") from None
    hint = " (true/false, yes/no or 1/0)" if kind == "boolean" else ""
    raise ValueError(f"expected {_EXPECTED[kind]}{hint}, got {describe(text)}")
