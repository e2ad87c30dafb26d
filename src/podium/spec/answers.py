"""What a person may answer a `human` step: any text, one of its `choice` options, or a value
its JSON Schema accepts. Used by the workflow model (a default must answer the step) and by
`podium answer` (checked before anything is posted)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import SchemaError, best_match  # type: ignore[import-untyped]

from podium.spec.patterns import (
    PatternError,
    PatternTimeout,
    SafeValidator,
    time_limit,
    unsupported,
)


def schema_problem(schema: Mapping[str, Any]) -> str | None:
    try:
        Draft202012Validator.check_schema(dict(schema))
    except SchemaError as exc:
        return str(exc.message)
    return unsupported(schema)


def answer_problem(spec: Any, value: Any) -> str | None:
    """Why `value` does not answer a human step whose `input` is `spec` ("text", a `Choice`, a
    JSON Schema), or None when it does."""
    if spec == "text":
        return None if isinstance(value, str) else f"expected text, got {json.dumps(value)}"
    choice = getattr(spec, "choice", None)
    if choice is not None:
        if value in choice:
            return None
        options = ", ".join(json.dumps(c) for c in choice)
        return f"{json.dumps(value)} is not one of the choices: {options}"
    assert isinstance(spec, dict)
    try:
        with time_limit():
            error = best_match(SafeValidator(spec).iter_errors(value))
    except (PatternTimeout, PatternError) as exc:
        return f"the schema's pattern could not be checked: {exc}"
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where + ': ' if where else ''}{error.message}"


def parse_answer(spec: Any, text: str) -> Any:
    """The value a command-line answer stands for: text as typed for a text or choice step (a
    choice may also be given as JSON, e.g. a number), JSON for a schema (else the text)."""
    if spec == "text":
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    choice = getattr(spec, "choice", None)
    if choice is not None and text in choice:
        return text
    return value
