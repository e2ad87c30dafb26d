"""Output shaping shared by the executors: text, parsed JSON or schema-checked JSON (refused
for output truncated at the cap), and the JSON-compatibility check for python return values.
The truncation marker is the core's (`podium.core.outputs`), re-exported for the executors."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any, NoReturn

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import SchemaError, best_match  # type: ignore[import-untyped]
from pydantic import BaseModel

from podium.core.outputs import truncation_marker as truncation_marker
from podium.core.outputs import with_marker as with_marker
from podium.errors import StepExecutionError
from podium.spec.patterns import (
    PatternError,
    PatternTimeout,
    SafeValidator,
    time_limit,
    unsupported,
)

_SCALARS = (str, int, bool, type(None))
_MAX_CACHED_VALIDATORS = 256
_validators: dict[int, tuple[Mapping[str, Any], Any]] = {}


def shape_output(
    raw: str | object, spec: object, *, step_id: str, cut: tuple[int, int | None] | None = None
) -> object:
    """Turn a step's raw output into the form its `output` field asks for.

    `"text"` keeps the value; `"json"` parses a string; a dict is a JSON Schema (Draft 2020-12) that
    the (parsed) value must satisfy. Non-string values are validated but never parsed. `cut` is
    (bytes kept, bytes written) when the text was truncated at the cap: it cannot be parsed then.
    """
    if spec == "text":
        return raw
    if cut is not None:
        raise _truncated(step_id, *cut)
    value = _parse_json(raw, step_id) if isinstance(raw, str) else raw
    if isinstance(spec, Mapping):
        _validate(value, spec, step_id)
    return value


def _truncated(step_id: str, kept: int, total: int | None) -> StepExecutionError:
    whole = f"{total:,}" if total is not None else f"more than {kept:,}"
    return StepExecutionError(
        f"step {step_id}: its output was truncated at the cap (kept {kept:,} of {whole} bytes), so "
        "it cannot be parsed as JSON; raise the workflow's `output_limit_bytes` (up to 64 MiB) or "
        "make the step print less",
        retryable=False,
        error_type="output",
    )


def _parse_json(text: str, step_id: str) -> object:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise StepExecutionError(
            f"step {step_id}: output is not JSON ({exc}); it began {text[:200]!r}. Make the step "
            "print JSON only, or set `output: text`",
            retryable=False,
            error_type="output",
        ) from None


def _validate(value: object, schema: Mapping[str, Any], step_id: str) -> None:
    """Patterns match with a time limit (`podium.spec.patterns`): one that backtracks
    catastrophically fails the step instead of stalling the event loop."""
    validator = _validator_for(schema, step_id)
    try:
        with time_limit():
            error = best_match(validator.iter_errors(value))
    except PatternTimeout as exc:
        raise StepExecutionError(
            f"step {step_id}: in the output schema, {exc}",
            retryable=False,
            error_type="output",
        ) from None
    except PatternError as exc:
        problem = f": a pattern is not a valid regular expression: {exc}"
        raise _invalid_schema(step_id, problem) from None
    if error is None:
        return
    message = error.message if len(error.message) <= 300 else error.message[:300] + "…"
    raise StepExecutionError(
        f"step {step_id}: output does not match its schema at {error.json_path}: {message}",
        retryable=False,
        error_type="output",
    )


def _validator_for(schema: Mapping[str, Any], step_id: str) -> Any:
    cached = _validators.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise _invalid_schema(step_id, f"at {exc.json_path}: {exc.message}") from None
    problem = unsupported(schema)
    if problem is not None:
        raise _invalid_schema(step_id, f": {problem}")
    validator = SafeValidator(schema)
    if len(_validators) >= _MAX_CACHED_VALIDATORS:
        _validators.clear()
    _validators[id(schema)] = (schema, validator)
    return validator


def _invalid_schema(step_id: str, problem: str) -> StepExecutionError:
    return StepExecutionError(
        f"step {step_id}: its output schema is invalid {problem}; fix the `output` schema",
        retryable=False,
        error_type="output",
    )


def json_safe(value: object) -> object:
    """`value` as plain JSON data (dict, list, str, int, finite float, bool, None).

    Pydantic models and dataclass instances are converted; anything else is refused with the
    offending type and its path (`$.items[2]`).
    """
    return _to_json(value, "$")


def _to_json(value: object, path: str) -> object:
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return _refuse(f"{value!r} (not a finite number)", path)
    if isinstance(value, Mapping):
        return _mapping_to_json(value, path)
    if isinstance(value, list | tuple):
        return [_to_json(item, f"{path}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _to_json(dataclasses.asdict(value), path)
    return _refuse(f"a {type(value).__qualname__}", path)


def _mapping_to_json(value: Mapping[Any, Any], path: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            _refuse(f"a dict key {key!r} of type {type(key).__qualname__}", path)
        out[key] = _to_json(item, f"{path}.{key}")
    return out


def _refuse(what: str, path: str) -> NoReturn:
    raise StepExecutionError(
        f"the return value holds {what} at {path}, which is not JSON data; return dicts with str "
        "keys, lists, str, int, float, bool, None, pydantic models or dataclasses",
        retryable=False,
        error_type="output",
    )
