"""validate_workflow: every problem reported at once, each with its exact path."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from podium.errors import Problem, SpecError
from podium.spec.model import MAX_STEPS, HttpStep, Quorum, ShellStep, Workflow
from podium.spec.validate import validate_workflow


def shell(step_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "kind": "shell", "run": "echo hi", **fields}


def workflow(*steps: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"name": "w", "steps": list(steps), **top}


def problems(doc: object) -> list[Problem]:
    with pytest.raises(SpecError) as excinfo:
        validate_workflow(doc, source="w.yaml")
    assert excinfo.value.source == "w.yaml"
    return excinfo.value.problems


def message_at(doc: object, path: str) -> str:
    """The one problem reported at `path` (there must be exactly one there)."""
    found = [p.message for p in problems(doc) if p.path == path]
    assert len(found) == 1, problems(doc)
    return found[0]


# --- a valid workflow -----------------------------------------------------------------------------


def test_valid_workflow_returns_the_model() -> None:
    doc = workflow(
        shell("a"),
        shell("b", needs="a", retry=3, timeout="30s", when="steps.a.status == 'succeeded'"),
        {"id": "c", "kind": "http", "url": "https://x/${{ steps.b.output }}", "needs": ["b"]},
        inputs={"n": {"type": "integer", "default": 3}},
        max_concurrency=2,
    )
    result = validate_workflow(doc)
    assert isinstance(result, Workflow)
    assert result.step("b") == ShellStep(
        id="b", run="echo hi", needs=["a"], retry=3, timeout=30.0, when=doc["steps"][1]["when"]
    )
    assert isinstance(result.steps[2], HttpStep)
    assert result.max_concurrency == 2


def test_document_must_be_a_mapping() -> None:
    assert problems(["steps"]) == [
        Problem("", "the document must be a mapping with name and steps")
    ]


# --- schema: kinds --------------------------------------------------------------------------------


def test_unknown_kind_lists_the_kinds() -> None:
    doc = workflow(shell("a"), shell("b"), {"id": "c", "kind": "foo"})
    assert message_at(doc, "steps[2].kind") == (
        'unknown kind "foo"; expected one of agent, file, http, human, loop, plan, python, '
        "shell, workflow"
    )


def test_misspelt_kind_suggests_the_close_one() -> None:
    assert 'did you mean "shell"?' in message_at(
        workflow({"id": "a", "kind": "shel"}), "steps[0].kind"
    )


def test_missing_kind_says_so() -> None:
    assert message_at(workflow({"id": "a", "run": "x"}), "steps[0].kind").startswith(
        "missing; every step needs a kind"
    )


def test_step_that_is_not_a_mapping() -> None:
    assert (
        message_at(workflow("a"), "steps[0]") == "expected a mapping with id and kind, got a string"
    )


# --- schema: fields -------------------------------------------------------------------------------


def test_unknown_field_suggests_the_close_one() -> None:
    doc = workflow(shell("a"), shell("b", neds=["a"]))
    assert message_at(doc, "steps[1].neds") == 'unknown field "neds"; did you mean "needs"?'


def test_unknown_field_without_a_close_one_lists_the_fields() -> None:
    message = message_at(workflow(shell("a", colour="red")), "steps[0].colour")
    assert message.startswith('unknown field "colour"; allowed: ')
    assert "needs" in message
    assert "run" in message


def test_nested_field_error_has_the_nested_path() -> None:
    doc = workflow(shell("a"), shell("b"), shell("c"), shell("d", retry={"max_attempts": 0}))
    assert message_at(doc, "steps[3].retry.max_attempts") == (
        "must be greater than or equal to 1, got 0"
    )


def test_unknown_nested_field_suggests_the_close_one() -> None:
    doc = workflow(shell("a", retry={"backof": 2}))
    assert 'did you mean "backoff"?' in message_at(doc, "steps[0].retry.backof")


def test_missing_required_field() -> None:
    assert message_at(workflow({"id": "a", "kind": "shell"}), "steps[0].run") == (
        "required field is missing"
    )


def test_bad_literal_names_the_choices() -> None:
    doc = workflow({"id": "a", "kind": "file", "op": "delete", "path": "x"})
    assert message_at(doc, "steps[0].op") == "must be 'read', 'write' or 'append', got \"delete\""


@pytest.mark.parametrize("join", ["some", {"quorum": 0}, {"quorm": 1}, 3])
def test_bad_join_is_one_problem(join: object) -> None:
    message = message_at(workflow(shell("a"), shell("b", needs=["a"], join=join)), "steps[1].join")
    assert message.startswith('expected "all", "any" or {quorum: N} with N at least 1, got ')


def test_bad_step_id() -> None:
    message = message_at(workflow(shell("has space")), "steps[0].id")
    assert message.startswith('step ids start with a letter or "_"')
    assert message.endswith('got "has space"')


def test_model_validator_error_is_at_the_step() -> None:
    doc = workflow({"id": "a", "kind": "file", "op": "write", "path": "out.txt"})
    assert message_at(doc, "steps[0]") == "op write needs content"


def test_bad_duration() -> None:
    assert "is not a duration" in message_at(
        workflow(shell("a", timeout="soon")), "steps[0].timeout"
    )


def test_top_level_problems() -> None:
    found = problems({"steps": [shell("a")], "stepz": 1, "inputs": {"n": {"typ": "integer"}}})
    assert {str(p) for p in found} == {
        "name: required field is missing",
        'stepz: unknown field "stepz"; did you mean "steps"?',
        'inputs.n.typ: unknown field "typ"; did you mean "type"?',
    }


def test_empty_steps() -> None:
    assert message_at(workflow(), "steps") == "a workflow needs at least one step"


def test_steps_must_be_a_list() -> None:
    assert (
        message_at({"name": "w", "steps": {"a": 1}}, "steps")
        == 'must be a valid list, got {"a": 1}'
    )


def test_one_bad_step_does_not_hide_the_others() -> None:
    doc = workflow(shell("a", retry="x"), {"id": "b", "kind": "nope"}, shell("c", neds=[]))
    assert [p.path for p in problems(doc)] == ["steps[0].retry", "steps[1].kind", "steps[2].neds"]


# --- semantics: ids and needs ---------------------------------------------------------------------


def test_duplicate_id_names_both_indexes() -> None:
    doc = workflow(shell("a"), shell("b"), shell("a"))
    assert message_at(doc, "steps[2].id") == (
        'duplicate step id "a", also used by steps[0]; step ids must be unique'
    )


def test_unknown_need() -> None:
    found = problems(workflow(shell("a"), shell("b"), shell("c"), shell("d", needs=["fetch"])))
    assert [str(p) for p in found] == ['steps[3].needs[0]: unknown step "fetch"']


def test_unknown_need_suggests_the_close_one() -> None:
    doc = workflow(shell("fetch_data"), shell("b", needs=["fetch_dat"]))
    assert message_at(doc, "steps[1].needs[0]") == (
        'unknown step "fetch_dat"; did you mean "fetch_data"?'
    )


def test_need_on_itself() -> None:
    assert message_at(workflow(shell("a", needs=["a"])), "steps[0].needs[0]") == (
        'step "a" needs itself; remove it'
    )


def test_need_listed_twice() -> None:
    doc = workflow(shell("a"), shell("b", needs=["a", "a"]))
    assert message_at(doc, "steps[1].needs[1]") == '"a" is listed twice (also needs[0]); remove one'


def test_need_on_an_invalid_step_is_not_unknown() -> None:
    doc = workflow(shell("a", retry="bad"), shell("b", needs=["a"], run="${{ steps.a.output }}"))
    assert [p.path for p in problems(doc)] == ["steps[0].retry"]


def test_cycle_is_named() -> None:
    doc = workflow(shell("a", needs=["c"]), shell("b", needs=["a"]), shell("c", needs=["b"]))
    assert [str(p) for p in problems(doc)] == [
        "steps[1].needs[0]: cycle: a -> c -> b -> a (each step needs the next); "
        "remove one of these needs"
    ]


def test_long_cycle_is_abbreviated() -> None:
    steps = [shell(f"s{n}", needs=[f"s{(n + 1) % 30}"]) for n in range(30)]
    message = message_at(workflow(*steps), "steps[29].needs[0]")
    assert message.startswith("cycle: s0 -> s1 -> s2 -> s3 -> s4 -> ... 20 more ... -> s25")


# --- semantics: joins -----------------------------------------------------------------------------


def test_quorum_larger_than_needs() -> None:
    doc = workflow(shell("a"), shell("b"), shell("c", needs=["a", "b"], join={"quorum": 3}))
    assert message_at(doc, "steps[2].join.quorum") == (
        "quorum 3 is more than the 2 steps in needs; lower the quorum or add needs"
    )


@pytest.mark.parametrize(("join", "name"), [("any", "any"), ({"quorum": 1}, "quorum")])
def test_any_or_quorum_without_needs(join: object, name: str) -> None:
    assert message_at(workflow(shell("a", join=join)), "steps[0].join") == (
        f'join "{name}" waits on needs, but needs is empty'
    )


def test_quorum_within_needs_is_valid() -> None:
    doc = workflow(shell("a"), shell("b"), shell("c", needs=["a", "b"], join={"quorum": 2}))
    assert validate_workflow(doc).steps[2].join == Quorum(quorum=2)


# --- semantics: templates -------------------------------------------------------------------------


def test_template_syntax_error_has_the_field_path() -> None:
    assert "in template" in message_at(
        workflow(shell("a", run="echo ${{ steps. }}")), "steps[0].run"
    )


@pytest.mark.parametrize(
    ("step", "path"),
    [
        (shell("a", env={"HOME": "${{ oops("}), "steps[0].env.HOME"),
        (shell("a", run=["echo", "${{ }}"]), "steps[0].run[1]"),
        (
            {"id": "a", "kind": "python", "call": "m:f", "args": {"x": [1, "${{"]}},
            "steps[0].args.x[1]",
        ),
        (
            {"id": "a", "kind": "http", "url": "u", "headers": {"A": "${{ ! }}"}},
            "steps[0].headers.A",
        ),
        (shell("a", when="steps.a.status =="), "steps[0].when"),
        (shell("a", when="${{ 1 }} and more"), "steps[0].when"),
    ],
)
def test_template_errors_in_nested_fields(step: dict[str, Any], path: str) -> None:
    assert [p.path for p in problems(workflow(step))] == [path]


def test_reference_to_a_step_that_is_not_upstream() -> None:
    doc = workflow(
        shell("a"),
        shell("b"),
        shell("c"),
        shell("x"),
        shell("d", needs=["a"], run="${{ steps.c.output }}"),
    )
    assert str(problems(doc)[0]) == (
        'steps[4].run: template references step "c", which is not upstream of "d"; add it to needs'
    )


def test_transitive_upstream_reference_is_valid() -> None:
    doc = workflow(
        shell("a"),
        shell("b", needs="a"),
        shell("c", needs="b", run="echo ${{ steps.a.output.x }} ${{ steps['a'].status }}"),
        shell("d", needs="c", when="steps.a.status == 'succeeded' and steps.b.attempts > 1"),
    )
    assert len(validate_workflow(doc).steps) == 4


@pytest.mark.parametrize(
    ("run", "fragment"),
    [
        ("${{ steps.zzz.output }}", 'template references unknown step "zzz"'),
        ("${{ steps.a.outputs }}", 'steps.a.outputs, which does not exist; did you mean "output"?'),
        ("${{ steps.b.output }}", 'template references step "b" itself'),
        ("${{ steps[inputs.n].output }}", "template reads steps without naming one"),
        ("${{ inputs.nn }}", 'input "nn", which is not declared in inputs; did you mean "n"?'),
        ("${{ env.HOME }}", 'unknown name "env"; expressions start with inputs, steps or run'),
    ],
)
def test_bad_references(run: str, fragment: str) -> None:
    doc = workflow(shell("a"), shell("b", needs=["a"], run=run), inputs={"n": {"type": "string"}})
    assert fragment in message_at(doc, "steps[1].run")


def test_good_references() -> None:
    run = "${{ run.id }} ${{ inputs.n }} ${{ steps.a.error }} $${{ not.a.template }}"
    doc = workflow(shell("a"), shell("b", needs=["a"], run=run), inputs={"n": {}})
    assert validate_workflow(doc).steps[1].run == run


# --- inputs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"type": "integer", "default": "abc"}, 'expected an integer, got "abc"'),
        ({"type": "integer", "default": True}, "expected an integer, got true"),
        ({"type": "boolean", "default": "yes"}, 'expected true or false, got "yes"'),
        ({"default": 3}, "expected a string, got 3"),
        ({"type": "array", "default": {}}, "expected an array (a JSON list), got {}"),
    ],
)
def test_input_default_must_match_its_type(spec: dict[str, Any], fragment: str) -> None:
    message = message_at(workflow(shell("a"), inputs={"n": spec}), "inputs.n.default")
    assert message == f"{fragment}; change the default or the type"


def test_input_defaults_that_match() -> None:
    inputs = {
        "i": {"type": "integer", "default": 3},
        "f": {"type": "number", "default": 2},
        "o": {"type": "object", "default": {"a": 1}},
        "s": {"required": False},
    }
    assert validate_workflow(workflow(shell("a"), inputs=inputs)).inputs["f"].default == 2


# --- caps and scale -------------------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_too_many_steps_is_one_problem() -> None:
    doc = workflow(*({"id": "x"} for _ in range(MAX_STEPS + 1)))
    assert [str(p) for p in problems(doc)] == [
        "steps: 10,001 steps; the limit is 10,000; split the workflow into several workflows "
        "run one after another, or let one shell or python step work through many items in a "
        "loop of its own"
    ]


@pytest.mark.timeout(60)
def test_ten_thousand_steps_in_a_chain_need_no_recursion() -> None:
    steps = [shell("s0")] + [
        shell(f"s{n}", needs=[f"s{n - 1}"], run="${{ steps.s0.output }}")
        for n in range(1, MAX_STEPS)
    ]
    assert len(validate_workflow(workflow(*steps)).steps) == MAX_STEPS
    steps[0] = shell("s0", needs=[f"s{MAX_STEPS - 1}"])
    [cycle] = problems(workflow(*steps))
    assert cycle.message.startswith("cycle: s0 -> s9999 -> s9998")


# --- everything at once ---------------------------------------------------------------------------


def test_all_problems_are_reported_together() -> None:
    doc = {
        "name": "w",
        "colour": "red",
        "inputs": {"n": {"type": "integer", "default": "many"}},
        "steps": [
            shell("a", neds=["b"]),
            {"id": "b", "kind": "foo"},
            shell("c", needs=["fetch"]),
            shell("c"),
            shell("d", needs=["e"]),
            shell("e", needs=["d"]),
            shell("f", join="any", when="${{ inputs.m }}"),
            shell("g", run="${{ oops( }}"),
            shell("h", run="${{ steps.g.output }}"),
        ],
    }
    assert [p.path for p in problems(doc)] == [
        "colour",
        "inputs.n.default",
        "steps[0].neds",
        "steps[1].kind",
        "steps[2].needs[0]",
        "steps[3].id",
        "steps[5].needs[0]",
        "steps[6].join",
        "steps[6].when",
        "steps[7].run",
        "steps[8].run",
    ]


# --- properties -----------------------------------------------------------------------------------


@st.composite
def dags(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Random acyclic graphs, listed in a random order; each step reads one of its needs."""
    size = draw(st.integers(1, 12))  # short enough that cycles are named in full
    needs = [draw(st.lists(st.integers(0, n - 1), unique=True)) if n else [] for n in range(size)]
    steps = [
        shell(f"s{n}", needs=[f"s{m}" for m in ups], run=_reading(ups))
        for n, ups in enumerate(needs)
    ]
    return draw(st.permutations(steps))


def _reading(ups: list[int]) -> str:
    return f"echo ${{{{ steps.s{ups[0]}.output }}}}" if ups else "echo"


def _ancestors(steps: list[dict[str, Any]], step_id: str) -> set[str]:
    needs = {step["id"]: step["needs"] for step in steps}
    seen: set[str] = set()
    todo = list(needs[step_id])
    while todo:
        if (current := todo.pop()) not in seen:
            seen.add(current)
            todo += needs[current]
    return seen


@settings(max_examples=150, deadline=None)
@given(dags())
def test_random_dags_validate(steps: list[dict[str, Any]]) -> None:
    assert len(validate_workflow(workflow(*steps)).steps) == len(steps)


@settings(max_examples=150, deadline=None)
@given(dags(), st.data())
def test_a_back_edge_is_reported_as_a_cycle(
    steps: list[dict[str, Any]], data: st.DataObject
) -> None:
    pairs = [(s["id"], up) for s in steps for up in sorted(_ancestors(steps, s["id"]))]
    assume(pairs)
    low, high = data.draw(st.sampled_from(pairs))  # `low` needs `high`, perhaps through others
    for step in steps:
        if step["id"] == high:
            step["needs"] = [*step["needs"], low]
    cycles = [p for p in problems(workflow(*steps)) if p.message.startswith("cycle: ")]
    assert cycles
    needs = {step["id"]: step["needs"] for step in steps}
    names = cycles[0].message.removeprefix("cycle: ").split(" (")[0].split(" -> ")
    assert names[0] == names[-1]
    assert all(after in needs[before] for before, after in pairwise(names))


def test_dots_in_step_ids_are_reserved_for_plan_children() -> None:
    message = message_at(workflow({"id": "a.b", "kind": "shell", "run": "true"}), "steps[0].id")
    assert "reserved for the children of plan steps" in message
    assert "'a_b'" in message
