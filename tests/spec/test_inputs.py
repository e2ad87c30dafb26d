"""Run inputs: `--input NAME=VALUE` parsing and coercion to the declared types."""

from __future__ import annotations

from typing import Any

import pytest

from podium.errors import InputError, UsageError
from podium.spec import coerce_inputs, parse_input_pairs
from podium.spec.model import Workflow


def declaring(**inputs: dict[str, Any]) -> Workflow:
    steps = [{"id": "a", "kind": "shell", "run": "echo"}]
    return Workflow.model_validate({"name": "w", "inputs": inputs, "steps": steps})


TYPED = declaring(
    s={"type": "string", "default": "x"},
    i={"type": "integer", "default": 1},
    n={"type": "number", "default": 1.5},
    b={"type": "boolean", "default": False},
    o={"type": "object", "default": {"k": [1]}},
    a={"type": "array", "default": []},
)

# --- parse_input_pairs ----------------------------------------------------------------------------


def test_pairs_split_at_the_first_equals_sign() -> None:
    assert parse_input_pairs(["n=3", "expr=a=b", "empty=", " who =x y"]) == {
        "n": "3",
        "expr": "a=b",
        "empty": "",
        "who": "x y",
    }


@pytest.mark.parametrize("pair", ["novalue", "=3", "  =x"])
def test_bad_pair(pair: str) -> None:
    with pytest.raises(InputError, match="--input expects NAME=VALUE, got"):
        parse_input_pairs([pair])


def test_pair_given_twice() -> None:
    with pytest.raises(InputError, match="--input n is given twice"):
        parse_input_pairs(["n=1", "n=2"])


def test_invalid_utf8_from_the_command_line_is_refused() -> None:
    undecodable = b"caf\xe9".decode("utf-8", "surrogateescape")  # how argv carries bad bytes
    with pytest.raises(
        InputError, match=r"--input who: not valid UTF-8 \(byte 0xe9 at position 7\)"
    ):
        parse_input_pairs([f"who={undecodable}"])


def test_input_error_is_a_usage_error() -> None:
    assert issubclass(InputError, UsageError)


# --- coerce_inputs --------------------------------------------------------------------------------


def test_defaults_are_filled_in() -> None:
    values = coerce_inputs(TYPED, {})
    assert values == {"s": "x", "i": 1, "n": 1.5, "b": False, "o": {"k": [1]}, "a": []}
    values["o"]["k"].append(2)  # type: ignore[index]
    assert TYPED.inputs["o"].default == {"k": [1]}  # defaults are copied, not shared


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("s", "007", "007"),
        ("i", " -42 ", -42),
        ("n", "3", 3),
        ("n", "2.5e3", 2500.0),
        ("n", ".5", 0.5),
        ("b", "true", True),
        ("b", "YES", True),
        ("b", "1", True),
        ("b", "no", False),
        ("b", "False", False),
        ("b", "0", False),
        ("o", '{"a": [1, 2]}', {"a": [1, 2]}),
        ("a", "[1, 2]", [1, 2]),
    ],
)
def test_strings_are_coerced(name: str, text: str, value: object) -> None:
    result = coerce_inputs(TYPED, {name: text})[name]
    assert result == value
    assert type(result) is type(value)


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("i", "1.5", 'input i: expected an integer, got "1.5"'),
        ("i", "1_000", 'input i: expected an integer, got "1_000"'),
        ("n", "nan", 'input n: expected a number, got "nan"'),
        ("n", "inf", 'input n: expected a number, got "inf"'),
        ("b", "maybe", 'input b: expected true or false (true/false, yes/no or 1/0), got "maybe"'),
        ("o", "[1]", "input o: expected an object (a JSON mapping), got [1]"),
        ("o", "{bad", "input o: expected an object (a JSON mapping) as JSON, got"),
        ("a", '{"a": 1}', 'input a: expected an array (a JSON list), got {"a": 1}'),
    ],
)
def test_bad_strings(name: str, text: str, fragment: str) -> None:
    with pytest.raises(InputError) as excinfo:
        coerce_inputs(TYPED, {name: text})
    assert fragment in str(excinfo.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("s", "x"), ("i", 7), ("n", 7), ("n", 7.5), ("b", True), ("o", {}), ("a", [{}])],
)
def test_typed_values_pass(name: str, value: object) -> None:
    assert coerce_inputs(TYPED, {name: value})[name] == value


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("s", 3, "input s: expected a string, got 3"),
        ("i", True, "input i: expected an integer, got true"),
        ("i", 1.0, "input i: expected an integer, got 1.0"),
        ("n", False, "input n: expected a number, got false"),
        ("n", float("inf"), "input n: expected a number, got Infinity"),
        ("b", 1, "input b: expected true or false, got 1"),
        ("o", [], "input o: expected an object (a JSON mapping), got []"),
        ("a", None, "input a: expected an array (a JSON list), got null"),
    ],
)
def test_values_of_the_wrong_type(name: str, value: object, fragment: str) -> None:
    with pytest.raises(InputError) as excinfo:
        coerce_inputs(TYPED, {name: value})
    assert fragment in str(excinfo.value)


def test_every_bad_value_is_reported() -> None:
    with pytest.raises(InputError) as excinfo:
        coerce_inputs(TYPED, {"i": "x", "b": "y"})
    assert str(excinfo.value) == (
        'input i: expected an integer, got "x"; '
        'input b: expected true or false (true/false, yes/no or 1/0), got "y"; '
        "fix the values and try again"
    )


def test_unknown_input_lists_the_declared_ones() -> None:
    with pytest.raises(InputError) as excinfo:
        coerce_inputs(declaring(target={}, count={"default": 1}), {"targt": "x"})
    assert str(excinfo.value) == (
        'workflow w has no input targt (did you mean "target"?); declared inputs: target, count'
    )


def test_unknown_input_when_none_are_declared() -> None:
    with pytest.raises(InputError, match="has no input x; it declares no inputs"):
        coerce_inputs(declaring(), {"x": "1"})


def test_missing_required_inputs_are_named() -> None:
    workflow = declaring(a={}, b={"type": "integer"}, c={"default": "x"}, d={"required": False})
    with pytest.raises(InputError) as excinfo:
        coerce_inputs(workflow, {})
    assert str(excinfo.value) == ("missing required inputs: a, b; pass each as --input NAME=VALUE")


def test_optional_input_without_default_is_none() -> None:
    assert coerce_inputs(declaring(d={"required": False}), {}) == {"d": None}


def test_required_input_with_a_default_must_be_given() -> None:
    with pytest.raises(InputError, match="missing required input: c;"):
        coerce_inputs(declaring(c={"default": "x", "required": True}), {})


def test_cli_pairs_end_to_end() -> None:
    given = parse_input_pairs(["i=5", 'o={"x": true}', "b=yes"])
    assert coerce_inputs(TYPED, given) == {
        "s": "x",
        "i": 5,
        "n": 1.5,
        "b": True,
        "o": {"x": True},
        "a": [],
    }
