"""Tests for `${{ }}` templates: parsing, typed and string rendering, escapes, conditions."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from podium.spec.expr import Compare, ExpressionError, Literal, Member, Name, parse
from podium.spec.template import (
    Template,
    TemplateError,
    parse_condition,
    parse_template,
    render_value,
    value_references,
)

CONTEXT: dict[str, Any] = {
    "inputs": {"n": 3, "ratio": 0.5, "name": "Ada", "tags": ["a", "b"], "cfg": {"k": "v"}},
    "steps": {"fetch": {"output": {"ok": True, "none": None, "items": [1, 2]}}},
}


def render(text: str, context: dict[str, Any] | None = None) -> object:
    return parse_template(text).render(CONTEXT if context is None else context)


def template_error(text: str) -> TemplateError:
    with pytest.raises(TemplateError) as info:
        parse_template(text)
    return info.value


# --- static templates ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "plain", "$ {{ x }}", "${ x }", "{{ x }}", "$$", "cost: $5"])
def test_static_templates_render_unchanged(text: str) -> None:
    template = parse_template(text)
    assert template.is_static
    assert template.render({}) == text
    assert template.references() == set()


def test_dynamic_template_is_not_static() -> None:
    assert not parse_template("a ${{ inputs.n }}").is_static


# --- rendering -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("n=${{ inputs.n }}", "n=3"),
        ("r=${{ inputs.ratio }}", "r=0.5"),
        ("hi ${{ inputs.name }}!", "hi Ada!"),
        ("ok=${{ steps.fetch.output.ok }}", "ok=true"),
        ("no=${{ false }}", "no=false"),
        ("none=${{ default(steps.fetch.output.none, 'n/a') }}", "none=n/a"),
        ("missing=${{ default(steps.fetch.output.nope, 0) }}", "missing=0"),
        ("tags=${{ inputs.tags }}", 'tags=["a","b"]'),
        ("cfg=${{ inputs.cfg }}", 'cfg={"k":"v"}'),
        ("${{ inputs.n }}${{ inputs.name }}", "3Ada"),
        ("${{inputs.n}}-${{inputs.n}}", "3-3"),
        ("a ${{ inputs.n }} b ${{ inputs.name }} c", "a 3 b Ada c"),
    ],
)
def test_string_interpolation(text: str, expected: str) -> None:
    assert render(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${{ inputs.n }}", 3),
        ("  ${{ inputs.ratio }}\n", 0.5),
        ("${{ inputs.tags }}", ["a", "b"]),
        ("${{ inputs.cfg }}", {"k": "v"}),
        ("${{ steps.fetch.output.ok }}", True),
        ("${{ steps.fetch.output.none }}", None),
        ("${{ inputs.name }}", "Ada"),
        ("${{ len(inputs.tags) > 1 }}", True),
    ],
)
def test_a_whole_template_keeps_the_value_type(text: str, expected: object) -> None:
    value = render(text)
    assert value == expected
    assert type(value) is type(expected)


def test_whole_template_returns_the_context_object_itself() -> None:
    assert render("${{ inputs.tags }}") is CONTEXT["inputs"]["tags"]


# --- escapes and braces --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$${{ inputs.n }}", "${{ inputs.n }}"),
        ("a $${{ b }} ${{ inputs.n }}", "a ${{ b }} 3"),
        ("$${{", "${{"),
        ("$$${{ x }}", "$${{ x }}"),
        ("${{ '}}' }}", "}}"),
        ('${{ "}}" }}', "}}"),
        ("x${{ '${{' }}", "x${{"),
        ("${{ format('{0}}}', inputs.n) }}", "3}"),
        ("${{ format('{{{0}}}', inputs.n) }}", "{3}"),
        ("${{ 'it\\'s }}' }}", "it's }}"),
        ("${{ inputs.cfg['k'] }}}", "v}"),
    ],
)
def test_escapes_and_braces_inside_strings(text: str, expected: str) -> None:
    assert render(text) == expected


def test_escaped_template_is_static() -> None:
    assert parse_template("$${{ inputs.n }}").is_static


# --- errors --------------------------------------------------------------------------------------


def test_unterminated_template() -> None:
    err = template_error("a ${{ inputs.n")
    assert "never closed" in str(err)
    assert err.column == 3
    assert "'a ${{ inputs.n'" in str(err)


def test_unclosed_string_is_named() -> None:
    err = template_error("${{ 'oops }}")
    assert "' string is not closed" in str(err)


def test_empty_expression() -> None:
    err = template_error("x ${{  }}")
    assert "empty" in str(err)
    assert err.column == 3


def test_syntax_error_names_template_and_columns() -> None:
    err = template_error("abc ${{  inputs.n ) }}")
    assert "in template 'abc ${{  inputs.n ) }}'" in str(err)
    assert "unexpected ')' at column 10 in 'inputs.n )'" in str(err)
    assert err.column == 19
    assert isinstance(err.__cause__, ExpressionError)


def test_evaluation_errors_are_template_errors() -> None:
    template = parse_template("hello ${{ secrets.x }}")
    with pytest.raises(TemplateError, match=r"in template 'hello \$\{\{ secrets.x \}\}'"):
        template.render(CONTEXT)
    with pytest.raises(TemplateError, match="cannot compare"):
        render("${{ inputs.n < 'a' }}")


def test_template_error_is_an_expression_error() -> None:
    assert issubclass(TemplateError, ExpressionError)
    assert issubclass(TemplateError, ValueError)


def test_long_templates_are_abbreviated_in_messages() -> None:
    err = template_error("x" * 500 + " ${{ a b }}")
    assert "..." in str(err)
    assert len(str(err)) < 300


# --- caching and value helpers -------------------------------------------------------------------


def test_parse_template_is_cached() -> None:
    assert parse_template("c ${{ inputs.n }}") is parse_template("c ${{ inputs.n }}")


def test_templates_compare_by_source() -> None:
    assert Template("x ${{ a }}") == parse_template("x ${{ a }}")
    assert Template("x ${{ a }}") != Template("x ${{ b }}")


def test_render_value_walks_nested_structures() -> None:
    value = {
        "n": "${{ inputs.n }}",
        "text": "name: ${{ inputs.name }}",
        "list": ["${{ inputs.tags }}", 7, None, {"deep": "${{ steps.fetch.output.ok }}"}],
        "tuple": ("${{ inputs.n }}", "x"),
        "number": 1.5,
        "${{ not a key }}": "keys stay",
    }
    assert render_value(value, CONTEXT) == {
        "n": 3,
        "text": "name: Ada",
        "list": [["a", "b"], 7, None, {"deep": True}],
        "tuple": (3, "x"),
        "number": 1.5,
        "${{ not a key }}": "keys stay",
    }


def test_render_value_returns_plain_strings_untouched() -> None:
    text = "no templates here"
    assert render_value(text, {}) is text
    assert render_value("$${{ x }}", {}) == "${{ x }}"


def test_value_references() -> None:
    value = {
        "a": "${{ steps.fetch.output.items[0] }} and ${{ inputs.n }}",
        "b": ["${{ steps.other.status == 'ok' }}", "plain ${ not.this }"],
        "c": {"d": ("${{ format('{0}', inputs.name) }}",)},
        "e": 1,
    }
    assert value_references(value) == {
        ("steps", "fetch", "output", "items", "0"),
        ("inputs", "n"),
        ("steps", "other", "status"),
        ("inputs", "name"),
    }


def test_value_references_raise_on_bad_templates() -> None:
    with pytest.raises(TemplateError):
        value_references({"a": ["${{ a ==  }}"]})


# --- conditions ----------------------------------------------------------------------------------

CONDITION = Compare("==", Member(Member(Name("steps"), "a"), "ok"), Literal(True))


@pytest.mark.parametrize(
    "text",
    [
        "steps.a.ok == true",
        "  steps.a.ok == true  ",
        "${{ steps.a.ok == true }}",
        "  ${{steps.a.ok == true}}\n",
    ],
)
def test_parse_condition_accepts_bare_and_wrapped(text: str) -> None:
    assert parse_condition(text) == CONDITION


@pytest.mark.parametrize(
    "text", ["${{ a }} && ${{ b }}", "${{ a }} extra", "${{ a }}${{ b }}", "${{ a }} $${{ b }}"]
)
def test_parse_condition_rejects_partial_templates(text: str) -> None:
    with pytest.raises(TemplateError, match="single"):
        parse_condition(text)


def test_parse_condition_reports_syntax_errors() -> None:
    with pytest.raises(ExpressionError, match="column 3"):
        parse_condition("a = b")
    with pytest.raises(TemplateError, match="never closed"):
        parse_condition("${{ a == b")


# --- properties ----------------------------------------------------------------------------------

no_template_text = st.text().filter(lambda text: "${{" not in text)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | no_template_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(no_template_text)
def test_text_without_templates_renders_unchanged(text: str) -> None:
    assert parse_template(text).render({}) == text
    assert render_value(text, {}) is text


@given(json_values)
def test_values_without_templates_render_equal(value: object) -> None:
    assert render_value(value, {}) == value
    assert value_references(value) == set()


@given(st.text())
def test_escaping_every_opener_gives_back_the_text(text: str) -> None:
    template = parse_template(text.replace("${{", "$${{"))
    assert template.is_static
    assert template.render({}) == text


@given(st.text(), st.text(), st.text())
def test_interpolated_strings_are_inserted_verbatim(before: str, value: str, after: str) -> None:
    assume(not before.endswith("$"))  # '$' + '${{' would be the escape `$${{`
    escape = "$${{"
    source = before.replace("${{", escape) + "${{ inputs.s }}" + after.replace("${{", escape)
    rendered = parse_template(source).render({"inputs": {"s": value}})
    stripped = not before.strip() and not after.strip()
    assert rendered == (value if stripped else before + value + after)


@given(st.integers() | st.booleans() | st.none() | st.lists(st.integers(), max_size=3))
def test_whole_template_equals_direct_evaluation(value: object) -> None:
    context = {"inputs": {"v": value}}
    assert parse_template("${{ inputs.v }}").render(context) == value
    assert parse("inputs.v") == parse_condition("${{ inputs.v }}")
