"""Validating loop steps (F2): the bound, the body's needs, cycles and templates with paths such
as `steps[1].steps[0].needs[0]`, what `until` and `loop.*` may read, nested loops."""

from __future__ import annotations

from typing import Any

import pytest

from podium.errors import SpecError
from podium.spec.builder import WorkflowBuilder
from podium.spec.lint import workflow_warnings
from podium.spec.loop import walk
from podium.spec.model import LoopStep
from podium.spec.validate import validate_workflow


def shell(step_id: str, *needs: str, run: str = "true") -> dict[str, Any]:
    return {"id": step_id, "kind": "shell", "run": run, "needs": list(needs)}


def loop(*body: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": "l", "kind": "loop", "max_iterations": 3, "steps": list(body), **extra}


def problems(*steps: dict[str, Any]) -> dict[str, list[str]]:
    with pytest.raises(SpecError) as excinfo:
        validate_workflow({"name": "w", "steps": list(steps)})
    found: dict[str, list[str]] = {}
    for problem in excinfo.value.problems:
        found.setdefault(problem.path, []).append(problem.message)
    return found


def test_a_valid_loop_reads_its_body_outer_steps_and_the_iteration() -> None:
    body = [
        shell("draft", run="echo ${{ loop.iteration }} ${{ steps.seed.output }}"),
        shell("check", "draft", run="echo ${{ steps.draft.output }}"),
        shell("note", run="echo ${{ default(loop.previous.check.output, '') }}"),
    ]
    after = shell("after", "l", run="echo ${{ steps.l.iterations[-1].check.output }}")
    doc = {
        "name": "w",
        "steps": [
            shell("seed"),
            loop(*body, needs=["seed"], until="${{ steps.check.output }}"),
            after,
        ],
    }
    wf = validate_workflow(doc)
    step = wf.steps[1]
    assert isinstance(step, LoopStep)
    assert [s.id for s in step.steps] == ["draft", "check", "note"]
    assert step.bound == 3


def test_a_loop_without_a_bound_is_an_error_that_says_so() -> None:
    found = problems({"id": "l", "kind": "loop", "steps": [shell("a")]})
    [message] = found["steps[0].max_iterations"]
    assert message.startswith("a loop needs a bound: set max_iterations (1 to 10,000)")


@pytest.mark.parametrize(
    ("value", "expected"), [(0, "greater than or equal to 1"), (10_001, "10000")]
)
def test_max_iterations_is_between_one_and_ten_thousand(value: int, expected: str) -> None:
    found = problems(loop(shell("a"), max_iterations=value))
    assert expected in found["steps[0].max_iterations"][0]


def test_body_schema_errors_have_nested_paths() -> None:
    found = problems(shell("a"), loop(shell("ok"), {"id": "b", "kind": "shell", "rn": "x"}))
    assert 'unknown field "rn"; did you mean "run"?' in found["steps[1].steps[1].rn"]


def test_body_needs_stay_within_the_body() -> None:
    found = problems(shell("outer"), loop(shell("a", "outer"), shell("b", "nope")))
    assert found["steps[1].steps[0].needs[0]"] == [
        '"outer" is outside this loop\'s body: body steps need only body steps; add it to the '
        "loop step's needs instead"
    ]
    assert found["steps[1].steps[1].needs[0]"] == ['unknown step "nope"']


def test_cycles_in_the_body_are_found() -> None:
    found = problems(loop(shell("a", "b"), shell("b", "a")))
    [message] = [m for path, ms in found.items() for m in ms if path.startswith("steps[0].steps[")]
    assert message.startswith("cycle: ")


def test_body_templates_read_only_upstream_body_steps_and_upstream_outer_steps() -> None:
    body = [
        shell("a", run="echo ${{ steps.b.output }}"),
        shell("b"),
        shell("c", run="echo ${{ steps.side.output }} ${{ steps.l.output }}"),
    ]
    found = problems(shell("side"), loop(*body))
    assert found["steps[1].steps[0].run"] == [
        'template references step "b", which is not upstream of "a"; add it to needs'
    ]
    assert found["steps[1].steps[2].run"] == [
        'template references step "l" itself; a step cannot read its own result',
        'template references step "side", which is not upstream of "l"; add it to needs',
    ]


def test_loop_references_are_checked() -> None:
    body = [shell("a", run="echo ${{ loop.previous.zz.output }} ${{ loop.count }}")]
    found = problems(loop(*body), shell("out", "l", run="echo ${{ loop.iteration }}"))
    assert sorted(found["steps[0].steps[0].run"]) == [
        "template references loop.count, which does not exist; a loop has iteration, previous",
        'template references loop.previous.zz, but "zz" is not a step of this loop\'s body (a)',
    ]
    assert found["steps[1].run"][0].startswith("template uses loop, which is only defined inside")


def test_until_reads_the_body_and_upstream_steps_only() -> None:
    found = problems(shell("side"), loop(shell("a"), until="${{ steps.check.output.ok }}"))
    assert found["steps[1].until"] == [
        'until references unknown step "check"; it reads this iteration\'s body steps (a) or '
        "steps upstream of the loop"
    ]
    ok = loop(shell("a"), needs=["side"], until="${{ steps.a.output == steps.side.output }}")
    validate_workflow({"name": "w", "steps": [shell("side"), ok]})


def test_iterations_exist_only_on_loop_steps() -> None:
    found = problems(shell("a"), shell("b", "a", run="echo ${{ steps.a.iterations }}"))
    assert "steps.a.iterations, which does not exist" in found["steps[1].run"][0]


def test_nested_loops_compose_paths_and_read_outward() -> None:
    inner = {
        "id": "inner",
        "kind": "loop",
        "max_iterations": 2,
        "needs": ["a"],
        "steps": [
            shell("x", run="echo ${{ steps.a.output }} ${{ loop.iteration }}"),
            shell("y", run="echo ${{ steps.zz.output }}"),
        ],
    }
    found = problems(loop(shell("a"), inner))
    assert list(found) == ["steps[0].steps[1].steps[1].run"]
    assert found["steps[0].steps[1].steps[1].run"][0].startswith("template references unknown step")


def test_dots_are_reserved_in_body_ids_too() -> None:
    found = problems(loop(shell("a.b")))
    assert "reserved for the children of plan steps and loops" in found["steps[0].steps[0].id"][0]


def test_agent_names_in_a_body_are_checked_against_the_catalog() -> None:
    class Catalog:
        def check(self, names: Any) -> list[Any]:
            self.seen = list(names)
            return []

    catalog = Catalog()
    agent = {"id": "ask", "kind": "agent", "agent": "writer", "prompt": "hi"}
    validate_workflow({"name": "w", "steps": [loop(agent)]}, agents=catalog)
    assert catalog.seen == [("writer", "steps[0].steps[0].agent")]


def test_attempt_fields_belong_on_body_steps() -> None:
    found = problems(loop(shell("a"), retry=3, timeout="5s"))
    assert found["steps[0]"] == [
        "retry and timeout do not apply to a loop step (it runs no attempt of its own); set "
        "them on the body's steps"
    ]


def test_lint_reads_loop_bodies() -> None:
    wf = validate_workflow({"name": "w", "steps": [loop(shell("a", run="echo hi > out.txt"))]})
    [warning] = workflow_warnings(wf)
    assert warning.path == "steps[0].steps[0].run"
    assert [where for where, _ in walk(wf.steps)] == ["steps[0]", "steps[0].steps[0]"]


def test_the_python_builder_makes_the_same_loop() -> None:
    body = WorkflowBuilder("body")
    draft = body.shell("draft", "echo ${{ loop.iteration }}")
    body.shell("check", "echo ${{ steps.draft.output }}", needs=draft)
    flow = WorkflowBuilder("w")
    seed = flow.shell("seed", "true")
    refine = flow.loop("refine", body, 4, until="${{ steps.check.output }}", needs=seed)
    flow.shell("after", "echo ${{ steps.refine.iterations[-1].draft.output }}", needs=refine)
    wf = flow.build()
    step = wf.steps[1]
    assert isinstance(step, LoopStep)
    assert (step.bound, step.until, step.needs) == (4, "${{ steps.check.output }}", ["seed"])
    assert [(s.id, s.needs) for s in step.steps] == [("draft", []), ("check", ["draft"])]
