"""Tests for the `${{ }}` expression language: parsing, evaluation, functions, errors, refs."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podium.spec.expr import (
    MAX_DEPTH,
    MAX_LENGTH,
    Compare,
    ExpressionError,
    Literal,
    Logical,
    Member,
    Name,
    Not,
    evaluate,
    parse,
    references,
    truthy,
)

CONTEXT: dict[str, Any] = {
    "inputs": {"n": 3, "name": "Ada", "empty": "", "flag": True, "tags": ["a", "b"], "key": "k"},
    "steps": {
        "fetch-data": {
            "status": "succeeded",
            "output": {"items": [{"name": "first"}, {"name": "second"}], "map": {"k": "v"}},
        },
    },
    "run": {"id": "run-1"},
}


def ev(text: str, context: dict[str, Any] | None = None) -> object:
    return evaluate(parse(text), CONTEXT if context is None else context)


def syntax_error(text: str) -> ExpressionError:
    with pytest.raises(ExpressionError) as info:
        parse(text)
    return info.value


def eval_error(text: str) -> ExpressionError:
    with pytest.raises(ExpressionError) as info:
        ev(text)
    return info.value


# --- literals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("42", 42),
        ("-7", -7),
        ("1.5", 1.5),
        ("2e3", 2000.0),
        ("-0.25", -0.25),
        ("'single'", "single"),
        ('"double"', "double"),
        ("''", ""),
        (r"'it\'s'", "it's"),
        (r'"say \"hi\""', 'say "hi"'),
        (r"'a\\b'", "a\\b"),
        (r"'line\nnext\ttab'", "line\nnext\ttab"),
        ("'\"'", '"'),
        ("true", True),
        ("false", False),
        ("null", None),
    ],
)
def test_literals(text: str, expected: object) -> None:
    assert parse(text) == Literal(expected)
    value = ev(text)
    assert value == expected
    assert type(value) is type(expected)


# --- names and paths -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("inputs.n", 3),
        ("run.id", "run-1"),
        ("steps.fetch-data.status", "succeeded"),
        ("steps.fetch-data.output.items[0].name", "first"),
        ("steps.fetch-data.output.items[1]['name']", "second"),
        ("steps['fetch-data'].output.map.k", "v"),
        ("steps.fetch-data.output.map[inputs.key]", "v"),
        ("inputs.tags", ["a", "b"]),
        ("inputs.tags[-1]", "b"),  # a negative index counts from the end
    ],
)
def test_paths(text: str, expected: object) -> None:
    assert ev(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "inputs.missing",
        "inputs.missing.deeper",
        "inputs.tags[2]",
        "inputs.tags[-3]",
        "inputs.tags['a']",
        "inputs.tags[true]",
        "inputs.n.y",
        "inputs.name.length",
        "inputs.name[0]",
        "inputs[0]",
        "null.x",
    ],
)
def test_missing_members_and_indexes_are_null(text: str) -> None:
    assert ev(text) is None


def test_unknown_root_name_is_an_error_listing_the_known_ones() -> None:
    err = eval_error("secrets.token")
    assert "'secrets'" in str(err)
    assert "inputs, run, steps" in str(err)


def test_members_named_like_keywords() -> None:
    context = {"inputs": {"true": 1, "and": 2, "null": 3}}
    assert ev("inputs.true", context) == 1
    assert ev("inputs.and", context) == 2
    assert ev("inputs.null", context) == 3


def test_hyphens_belong_to_identifiers() -> None:
    assert parse("a-b") == Name("a-b")
    assert ev("inputs.n-x", {"inputs": {"n-x": 5}}) == 5


# --- operators -----------------------------------------------------------------------------------


def test_and_binds_tighter_than_or() -> None:
    assert parse("a || b && c") == Logical("||", (Name("a"), Logical("&&", (Name("b"), Name("c")))))
    assert parse("a && b || c") == Logical("||", (Logical("&&", (Name("a"), Name("b"))), Name("c")))


def test_not_binds_looser_than_comparison() -> None:
    assert parse("!a == b") == Not(Compare("==", Name("a"), Name("b")))
    assert ev("!inputs.n == 4") is True


def test_comparison_binds_tighter_than_and() -> None:
    assert parse("a == b && c") == Logical("&&", (Compare("==", Name("a"), Name("b")), Name("c")))


def test_member_access_binds_tightest() -> None:
    assert parse("a.b == c") == Compare("==", Member(Name("a"), "b"), Name("c"))


def test_parentheses_override_precedence() -> None:
    either = Logical("||", (Name("a"), Name("b")))
    assert parse("(a || b) && c") == Logical("&&", (either, Name("c")))
    assert ev("(false || true) && false") is False
    assert ev("false || true && false") is False
    assert ev("true || true && false") is True


def test_word_operators_match_symbols() -> None:
    assert parse("a or b and not c") == parse("a || b && !c")
    assert ev("not false and true") is True


def test_logical_chains_are_flat() -> None:
    node = parse("a || b || c || d")
    assert isinstance(node, Logical)
    assert len(node.operands) == 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("null || 'x'", "x"),
        ("'a' || 'b'", "a"),
        ("0 || ''", ""),
        ("'a' && 0", 0),
        ("'a' && 'b'", "b"),
        ("null && 'b'", None),
        ("inputs.missing || inputs.name", "Ada"),
        ("inputs.empty || 'fallback'", "fallback"),
        ("!inputs.empty", True),
        ("!!inputs.tags", True),
    ],
)
def test_logical_operators_return_the_deciding_operand(text: str, expected: object) -> None:
    assert ev(text) == expected


def test_or_and_and_short_circuit() -> None:
    assert ev("true || len(1)") is True
    assert ev("false && len(1)") is False
    assert ev("inputs.flag || nope.x") is True
    with pytest.raises(ExpressionError):
        ev("false || len(1)")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 == 1.0", True),
        ("'1' == 1", False),
        ("true == 1", False),
        ("false == 0", False),
        ("null == false", False),
        ("null == null", True),
        ("inputs.missing == null", True),
        ("'a' != 'b'", True),
        ('inputs.tags == fromJSON(\'["a", "b"]\')', True),
        ('inputs.tags == fromJSON(\'["b", "a"]\')', False),
        ('fromJSON(\'{"a": [1, {"b": 2}]}\') == fromJSON(\'{"a": [1.0, {"b": 2}]}\')', True),
        ('fromJSON(\'{"a": 1}\') == fromJSON(\'{"a": 1, "b": 2}\')', False),
        ("fromJSON('[1]') == fromJSON('{\"1\": 1}')", False),
        ("fromJSON('[]') == ''", False),
        ("2 < 10", True),
        ("2.5 <= 2.5", True),
        ("-1 > 0", False),
        ("10 >= 9.99", True),
        ("'a' < 'b'", True),
        ("'10' < '9'", True),
    ],
)
def test_comparisons(text: str, expected: bool) -> None:
    assert ev(text) is expected


@pytest.mark.parametrize(
    ("text", "left", "right"),
    [
        ("'1' < 1", "string", "number"),
        ("null >= 0", "null", "number"),
        ("true > false", "boolean", "boolean"),
        ("inputs.tags < inputs", "array", "object"),
    ],
)
def test_ordering_needs_two_numbers_or_two_strings(text: str, left: str, right: str) -> None:
    message = str(eval_error(text))
    assert f"cannot compare {left} with {right}" in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        (False, False),
        (0, False),
        (0.0, False),
        ("", False),
        ([], False),
        ({}, False),
        (True, True),
        (1, True),
        (-0.5, True),
        ("0", True),
        ("false", True),
        ([0], True),
        ({"a": None}, True),
        (object(), True),
    ],
)
def test_truthy(value: object, expected: bool) -> None:
    assert truthy(value) is expected


# --- functions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("contains('hello', 'ell')", True),
        ("contains('hello', 'xyz')", False),
        ("contains(inputs.tags, 'b')", True),
        ("contains(inputs.tags, 'c')", False),
        ("contains(fromJSON('[1, 2]'), 2.0)", True),
        ("contains(fromJSON('[1, 2]'), true)", False),
        ("contains(inputs, 'name')", True),
        ("contains(inputs, 'nope')", False),
        ("contains(inputs.missing, 'x')", False),
        ("startsWith('podium', 'pod')", True),
        ("startsWith('podium', 'ium')", False),
        ("endsWith('podium', 'ium')", True),
        ("endsWith('podium', 'pod')", False),
        ("len('abc')", 3),
        ("len(inputs.tags)", 2),
        ("len(inputs)", 6),
        ("len('')", 0),
        ('toJSON(fromJSON(\'{"b": [1, 2], "a": null}\'))', '{"a":null,"b":[1,2]}'),
        ("toJSON('x')", '"x"'),
        ("toJSON(true)", "true"),
        ("toJSON('é')", '"é"'),
        ("fromJSON('[1, \"two\", null]')", [1, "two", None]),
        ("fromJSON('3.5')", 3.5),
        ("default(inputs.missing, 'fallback')", "fallback"),
        ("default(inputs.empty, 'fallback')", ""),
        ("default(false, true)", False),
        ("join(inputs.tags)", "a,b"),
        ("join(inputs.tags, ' | ')", "a | b"),
        ("join(fromJSON('[1, true, null, \"s\", [2]]'), ';')", "1;true;null;s;[2]"),
        ("join(fromJSON('[]'))", ""),
        ("format('{0} and {1}', 'a', 'b')", "a and b"),
        ("format('{1}{0}{1}', 'x', 'y')", "yxy"),
        ("format('{{0}} is {0}', inputs.n)", "{0} is 3"),
        ("format('}}{{')", "}{"),
        ("format('{0}', inputs.tags)", '["a","b"]'),
        ("format('{0} {1} {2}', null, true, 1.5)", "null true 1.5"),
        ("format('no placeholders')", "no placeholders"),
        ("lower('MiXeD')", "mixed"),
        ("upper('MiXeD')", "MIXED"),
        ("trim('  padded \\n')", "padded"),
    ],
)
def test_functions(text: str, expected: object) -> None:
    assert ev(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("contains(3, 'x')", "contains() expects a string, array or object as argument 1"),
        ("contains('abc', 1)", "contains() expects a string as argument 2, got number"),
        ("startsWith(1, 'x')", "startsWith() expects a string as argument 1, got number"),
        ("endsWith('x', null)", "endsWith() expects a string as argument 2, got null"),
        ("len(3)", "len() expects a string, array or object, got number"),
        ("len(null)", "got null"),
        ("fromJSON('{bad')", "fromJSON() got invalid JSON"),
        ("fromJSON('NaN')", "NaN is not allowed"),
        ("fromJSON(1)", "fromJSON() expects a string"),
        ("join('abc')", "join() expects an array as argument 1, got string"),
        ("join(inputs.tags, 1)", "join() expects a string as argument 2"),
        ("format('{0} {1}', 'a')", "{1} used but 1 value(s) given"),
        ("format('{name}', 'a')", "stray '{'"),
        ("format('a } b')", "stray '}'"),
        ("format(1)", "format() expects a string as argument 1"),
        ("lower(inputs.tags)", "lower() expects a string as argument 1, got array"),
        ("upper(true)", "got boolean"),
        ("trim(inputs)", "got object"),
    ],
)
def test_function_errors(text: str, fragment: str) -> None:
    assert fragment in str(eval_error(text))


def test_to_json_of_unserialisable_values_is_an_error() -> None:
    with pytest.raises(ExpressionError, match="cannot convert"):
        ev("toJSON(run.obj)", {"run": {"obj": object()}})
    with pytest.raises(ExpressionError, match="cannot convert"):
        ev("toJSON(run.x)", {"run": {"x": math.nan}})


def test_unknown_function_lists_known_ones() -> None:
    err = syntax_error("inputs.n || shout('x')")
    assert "unknown function shout()" in str(err)
    assert "contains, default, endsWith, format, fromJSON, join, len" in str(err)
    assert err.column == 13


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("len()", "len() takes 1 argument(s), got 0"),
        ("contains('a')", "contains() takes 2 argument(s), got 1"),
        ("join(inputs.tags, ',', 'x')", "join() takes 1 to 2 argument(s), got 3"),
        ("format()", "format() takes 1 or more argument(s), got 0"),
    ],
)
def test_arity_is_checked_when_parsing(text: str, fragment: str) -> None:
    assert fragment in str(syntax_error(text))


# --- syntax errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("a ==", 5, "found end of expression"),
        ("a )", 3, "unexpected ')'"),
        ("(a", 3, "expected ')'"),
        ("'abc", 1, "unterminated string"),
        ("x == 'abc\\", 6, "unterminated string"),
        ("'a\\qb'", 3, "unknown escape '\\q'"),
        ("a = b", 3, "did you mean '=='?"),
        ("a & b", 3, "did you mean '&&'?"),
        ("a | b", 3, "did you mean '||'?"),
        ("a - b", 3, "no arithmetic"),
        ("a + 1", 3, "no arithmetic"),
        ("1 < 2 < 3", 7, "cannot be chained"),
        ("a == b != c", 8, "cannot be chained"),
        ("inputs.0", 8, "expected a name after '.'"),
        ("inputs.", 8, "expected a name after '.'"),
        ("inputs[0", 9, "expected ']'"),
        ("len(1 2)", 7, "expected ','"),
        ("len(1,)", 7, "expected a value, found ')'"),
        ("a b", 3, "unexpected name 'b'"),
        ("and", 1, "expected a value, found name 'and'"),
        ("a == !b", 6, "expected a value, found '!'"),
        ("inputs.x(1)", 9, "unexpected '('"),
        ("1e999", 1, "out of range"),
        ("a @ b", 3, "unexpected character '@'"),
    ],
)
def test_syntax_errors_name_the_column(text: str, column: int, fragment: str) -> None:
    err = syntax_error(text)
    assert err.column == column
    assert fragment in str(err)
    assert f"at column {column}" in str(err)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_expression_is_an_error(text: str) -> None:
    assert "empty" in str(syntax_error(text))


def test_expression_error_is_a_value_error() -> None:
    assert issubclass(ExpressionError, ValueError)


# --- caps ----------------------------------------------------------------------------------------


def test_length_cap() -> None:
    longest = "'" + "a" * (MAX_LENGTH - 2) + "'"
    assert ev(longest) == "a" * (MAX_LENGTH - 2)
    err = syntax_error(longest + " ")
    assert f"the limit is {MAX_LENGTH}" in str(err)


@pytest.mark.parametrize(
    "build",
    [
        lambda n: "(" * n + "1" + ")" * n,
        lambda n: "!" * n + "true",
        lambda n: "not " * n + "true",
        lambda n: "default(" * n + "1" + ", 2)" * n,
        lambda n: "inputs" + ".a" * n,
        lambda n: "inputs" + "[inputs" * n + "]" * n,
    ],
    ids=["parens", "bang", "not", "calls", "members", "indexes"],
)
def test_depth_cap(build: Any) -> None:
    evaluate(parse(build(MAX_DEPTH)), {"inputs": {}})
    err = syntax_error(build(MAX_DEPTH + 1))
    assert f"more than {MAX_DEPTH} levels" in str(err)
    assert err.column is not None


def test_long_flat_chains_are_not_nested() -> None:
    text = " || ".join(["false"] * 300) + " || 'last'"
    assert ev(text) == "last"


# --- references ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 == 1", set()),
        ("inputs", {("inputs",)}),
        ("steps.a.output.x", {("steps", "a", "output", "x")}),
        ("steps.a.output.items[0].name", {("steps", "a", "output", "items", "0", "name")}),
        ("steps['a-b'].status", {("steps", "a-b", "status")}),
        (
            "steps.a.output[inputs.key].x",
            {("steps", "a", "output"), ("inputs", "key")},
        ),
        ("steps.a.output[true].x", {("steps", "a", "output")}),
        (
            "contains(steps.a.output.tags, inputs.tag) && !steps.b.status == 'ok'",
            {("steps", "a", "output", "tags"), ("inputs", "tag"), ("steps", "b", "status")},
        ),
        ("fromJSON(steps.a.output.raw).x", {("steps", "a", "output", "raw")}),
        ("(steps.a).output", {("steps", "a", "output")}),
        ("inputs.x || inputs.x", {("inputs", "x")}),
    ],
)
def test_references(text: str, expected: set[tuple[str, ...]]) -> None:
    assert references(parse(text)) == expected


# --- properties ----------------------------------------------------------------------------------


def literal_source(value: object) -> str:
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        return "'" + escaped.replace("\n", "\\n").replace("\t", "\\t") + "'"
    return json.dumps(value)


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(scalars)
def test_literals_round_trip(value: object) -> None:
    result = ev(literal_source(value), {})
    assert result == value
    assert type(result) is type(value)


@given(json_values)
def test_json_round_trips_and_equals_itself(value: object) -> None:
    context = {"inputs": {"v": value}}
    assert ev("fromJSON(toJSON(inputs.v)) == inputs.v", context) is True
    assert ev("inputs.v == inputs.v", context) is True
    assert ev("toJSON(inputs.v)", context) == json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


@given(st.text(max_size=40))
def test_parse_never_fails_with_anything_but_expression_error(text: str) -> None:
    try:
        node = parse(text)
    except ExpressionError:
        return
    references(node)
