"""Issue 8, defect 11: a template field that is not there (or null written into text) fails the
step before it launches, naming the field; `default(…, fallback)` makes it optional."""

from __future__ import annotations

from typing import Any

from podium.core.state import StepStatus
from podium.spec.model import ShellStep

from .sim import Sim, make_state


def _doc(run: str, **inputs: Any) -> dict[str, Any]:
    return {
        "name": "t",
        "inputs": inputs,
        "steps": [
            {"id": "a", "kind": "python", "call": "json:loads", "args": {"s": "{}"}},
            {"id": "b", "kind": "shell", "run": run, "needs": ["a"]},
        ],
    }


def _after_a(run: str, output: Any, inputs: dict[str, Any] | None = None, **specs: Any) -> Sim:
    sim = Sim(make_state(_doc(run, **specs), inputs))
    sim.turn()
    sim.succeed("a", output)
    sim.turn()
    return sim


def test_a_missing_key_fails_the_step_before_it_launches_naming_the_field() -> None:
    sim = _after_a("echo ${{ steps.a.output.missing_key }}", {"present": 1})
    b = sim.state.steps["b"]
    assert b.status is StepStatus.FAILED
    assert "b" not in sim.launched
    assert b.error_type == "template"
    assert "steps.a.output.missing_key is missing" in (b.error or "")
    assert "steps.a.output has no key 'missing_key' (its keys: present)" in (b.error or "")
    assert "default(steps.a.output.missing_key, <fallback>)" in (b.error or "")


def test_a_null_input_written_into_text_is_an_error_not_the_text_null() -> None:
    sim = _after_a("echo ${{ inputs.who }}", {}, {"who": None}, who={"required": False})
    b = sim.state.steps["b"]
    assert b.status is StepStatus.FAILED
    assert "inputs.who is null" in (b.error or "")
    assert "default(inputs.who, '')" in (b.error or "")


def test_default_makes_a_field_optional() -> None:
    run = "echo ${{ default(steps.a.output.missing_key, 'none') }} ${{ default(inputs.who, 'x') }}"
    sim = _after_a(run, {"present": 1}, {"who": None}, who={"required": False})
    step = sim.launched["b"].step
    assert isinstance(step, ShellStep)
    assert step.run == "echo none x"


def test_an_index_past_the_end_is_missing_too() -> None:
    sim = _after_a("echo ${{ steps.a.output[3] }}", [1, 2])
    assert "steps.a.output has 2 items" in (sim.state.steps["b"].error or "")
