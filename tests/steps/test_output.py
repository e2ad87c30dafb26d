"""Output shaping: text, JSON, schemas, the truncation marker, JSON-safety of return values."""

from __future__ import annotations

import dataclasses
import math

import pytest
from pydantic import BaseModel

from podium.errors import StepExecutionError
from podium.steps.output import json_safe, shape_output, truncation_marker, with_marker

SCHEMA = {
    "type": "object",
    "properties": {"items": {"type": "array", "items": {"type": "integer"}}},
    "required": ["items"],
}


def test_text_is_kept_as_is() -> None:
    assert shape_output("a\nb\n", "text", step_id="s") == "a\nb\n"
    assert shape_output({"x": 1}, "text", step_id="s") == {"x": 1}


def test_json_is_parsed() -> None:
    assert shape_output('{"a": [1, 2]}', "json", step_id="s") == {"a": [1, 2]}


def test_json_parse_error_is_permanent_and_shows_the_start() -> None:
    with pytest.raises(StepExecutionError) as info:
        shape_output("not json " + "x" * 500, "json", step_id="s")
    assert info.value.retryable is False
    assert info.value.error_type == "output"
    assert "not json" in str(info.value)
    assert "x" * 250 not in str(info.value)


def test_schema_validates_parsed_text() -> None:
    assert shape_output('{"items": [1]}', SCHEMA, step_id="s") == {"items": [1]}


def test_schema_error_names_the_path() -> None:
    with pytest.raises(StepExecutionError) as info:
        shape_output('{"items": [1, "two"]}', SCHEMA, step_id="s")
    assert info.value.retryable is False
    assert info.value.error_type == "output"
    assert "step s: output does not match its schema at $.items[1]: " in str(info.value)


def test_non_string_values_are_validated_not_parsed() -> None:
    assert shape_output({"items": []}, SCHEMA, step_id="s") == {"items": []}
    assert shape_output('"[1]"', {"type": "string"}, step_id="s") == "[1]"
    with pytest.raises(StepExecutionError, match=r"output does not match its schema at \$: "):
        shape_output({}, SCHEMA, step_id="s")


def test_invalid_schema_is_reported() -> None:
    with pytest.raises(StepExecutionError, match="schema is invalid") as info:
        shape_output("1", {"type": "no-such-type"}, step_id="s")
    assert info.value.retryable is False


def test_truncation_marker() -> None:
    assert truncation_marker(10, 50) == "…[truncated: kept 10 of 50 bytes]"
    assert with_marker("abc", 3, 9) == "abc\n…[truncated: kept 3 of 9 bytes]"
    assert with_marker("abc\n", 4, None).endswith("\n…[truncated: kept 4 of more than 4 bytes]")


@dataclasses.dataclass
class Point:
    x: int
    y: tuple[int, ...]


class Model(BaseModel):
    name: str
    point: tuple[int, int]


def test_json_safe_converts_known_types() -> None:
    value = {"a": (1, 2.5, None, True), "p": Point(1, (2, 3)), "m": Model(name="n", point=(1, 2))}
    assert json_safe(value) == {
        "a": [1, 2.5, None, True],
        "p": {"x": 1, "y": [2, 3]},
        "m": {"name": "n", "point": [1, 2]},
    }


@pytest.mark.parametrize(
    ("value", "where", "what"),
    [
        ({"a": [1, {2, 3}]}, "$.a[1]", "set"),
        ({"a": {1: "x"}}, "$.a", "dict key 1"),
        ([math.nan], "$[0]", "nan"),
        (object(), "$", "object"),
    ],
)
def test_json_safe_refuses_other_values(value: object, where: str, what: str) -> None:
    with pytest.raises(StepExecutionError) as info:
        json_safe(value)
    assert info.value.retryable is False
    assert where in str(info.value)
    assert what in str(info.value)
