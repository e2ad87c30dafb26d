"""`workflow` steps in the spec: the step model, how a reference resolves (a registered name, a
path, a name in `workflows/`), and the checks made before a run exists — the target validates
(its problems under the step path), inputs fit, and no chain recurses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from podium.errors import SpecError, UsageError
from podium.spec.load import load_workflow
from podium.spec.model import Workflow, WorkflowStep
from podium.spec.subworkflows import MAX_NESTING, check_tree, resolve


def _doc(name: str, *steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "steps": list(steps) or [{"id": "x", "kind": "shell", "run": "true"}],
        **extra,
    }


def _calls(step_id: str, target: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "kind": "workflow", "workflow": target, **extra}


def _write(folder: Path, name: str, doc: dict[str, Any]) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def _problems(exc: pytest.ExceptionInfo[SpecError]) -> list[str]:
    return [str(p) for p in exc.value.problems]


def test_the_step_model() -> None:
    wf = load_workflow(
        _doc(
            "w",
            _calls("s", "child.yaml", inputs={"a": "${{ inputs.x }}"}, budget={"tokens": 10}),
            inputs={"x": {"type": "string"}},
        )
    )
    step = wf.steps[0]
    assert isinstance(step, WorkflowStep)
    assert step.templated == ("inputs",)
    assert step.is_idempotent
    assert step.budget is not None
    assert step.budget.tokens == 10
    with pytest.raises(SpecError, match=r"steps\[0\]\.workflow"):
        load_workflow(_doc("w", _calls("s", "")))


def test_references_resolve_to_registered_names_paths_and_the_workflows_folder(
    tmp_path: Path,
) -> None:
    _write(tmp_path, "sub/child.yaml", _doc("child"))
    _write(tmp_path, "workflows/named.json", _doc("named"))
    registered = Workflow.model_validate(_doc("reg"))
    assert resolve("sub/child.yaml", tmp_path).key == "sub/child.yaml"
    assert resolve("named", tmp_path).key == "workflows/named.json"
    assert resolve("reg", tmp_path, {"reg": registered}).source is registered
    assert resolve("alias", tmp_path, {"alias": "sub/child.yaml"}).key == "sub/child.yaml"
    with pytest.raises(UsageError, match=r"neither a registered name nor a file.*reg"):
        resolve("nothing", tmp_path, {"reg": registered})
    with pytest.raises(UsageError, match=r"does not exist"):
        resolve("gone.yaml", tmp_path)


def test_a_workflow_that_calls_itself_is_refused_naming_the_cycle(tmp_path: Path) -> None:
    me = _write(tmp_path, "me.json", _doc("me", _calls("again", "me.json")))
    with pytest.raises(SpecError) as raised:
        check_tree(load_workflow(me), tmp_path, root="me.json")
    assert _problems(raised) == ["steps[0].workflow: workflow steps recurse: me.json -> me.json"]


def test_an_indirect_cycle_is_refused_with_the_path_that_leads_to_it(tmp_path: Path) -> None:
    _write(tmp_path, "a.json", _doc("a", _calls("to_b", "b.json")))
    _write(tmp_path, "b.json", _doc("b", _doc_step := _calls("to_a", "a.json")))
    top = Workflow.model_validate(_doc("top", _calls("start", "a.json")))
    with pytest.raises(SpecError) as raised:
        check_tree(top, tmp_path)
    assert _problems(raised) == [
        "steps[0] -> steps[0] -> steps[0].workflow: workflow steps recurse: a.json -> b.json "
        "-> a.json"
    ]
    assert _doc_step["id"] == "to_a"


def test_nesting_is_bounded(tmp_path: Path) -> None:
    for level in range(MAX_NESTING + 2):
        _write(tmp_path, f"l{level}.json", _doc(f"l{level}", _calls("down", f"l{level + 1}.json")))
    _write(tmp_path, f"l{MAX_NESTING + 2}.json", _doc("leaf"))
    with pytest.raises(SpecError, match=f"nest deeper than {MAX_NESTING} levels"):
        check_tree(Workflow.model_validate(_doc("top", _calls("s", "l0.json"))), tmp_path)


def test_a_broken_child_reports_its_problems_under_the_step(tmp_path: Path) -> None:
    _write(tmp_path, "bad.json", {"name": "bad", "steps": [{"id": "x", "kind": "shel"}]})
    top = Workflow.model_validate(_doc("top", _calls("s", "bad.json")))
    with pytest.raises(SpecError) as raised:
        check_tree(top, tmp_path)
    [problem] = _problems(raised)
    assert problem.startswith("steps[0] (workflow bad.json): steps[0].kind: ")
    assert 'unknown kind "shel"' in problem


def test_inputs_must_be_declared_and_required_ones_given(tmp_path: Path) -> None:
    declared = {"need": {"type": "string"}, "opt": {"type": "integer", "default": 1}}
    child = _doc("child", inputs=declared)
    _write(tmp_path, "child.json", child)
    ok = Workflow.model_validate(_doc("top", _calls("s", "child.json", inputs={"need": "x"})))
    assert [wf.name for wf in check_tree(ok, tmp_path)] == ["child"]
    bad = Workflow.model_validate(_doc("top", _calls("s", "child.json", inputs={"nope": 1})))
    with pytest.raises(SpecError) as raised:
        check_tree(bad, tmp_path)
    assert _problems(raised) == [
        "steps[0].inputs.nope: workflow 'child' declares no input 'nope'; it takes need, opt",
        "steps[0].inputs: workflow 'child' needs input need; give it in inputs:",
    ]


def test_the_builder_makes_workflow_steps() -> None:
    from podium.spec.builder import WorkflowBuilder

    flow = WorkflowBuilder("top")
    flow.input("who", type="string")
    sub = flow.workflow("sub", "child.yaml", inputs={"name": "${{ inputs.who }}"})
    flow.shell("after", "echo ${{ steps.sub.output.hi }}", needs=sub)
    step = flow.build().steps[0]
    assert isinstance(step, WorkflowStep)
    assert (step.workflow, step.inputs) == ("child.yaml", {"name": "${{ inputs.who }}"})
