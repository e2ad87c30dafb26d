"""Where steps run (`execution: local | ray`): checked at validation with the field and the
allowed values, refused on kinds that need the driver's process, and settled at submission from
the step, its workflow or the project, so the run records it. No Ray is needed here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from podium.config import ProjectConfig, load_config
from podium.errors import SpecError, UsageError
from podium.runtime.engine import Engine
from podium.runtime.placement import placed, ray_address
from podium.spec.execution import RAY_ADDRESS_ENV
from podium.spec.load import load_workflow
from podium.store.memory import MemoryEventStore


def shell(step_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "kind": "shell", "run": "true", **fields}


AGENT = {"id": "ask", "kind": "agent", "agent": "writer", "prompt": "hi"}


def problems(doc: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as caught:
        load_workflow(doc)
    return str(caught.value)


def test_an_unknown_execution_names_the_field_and_the_choices() -> None:
    text = problems({"name": "w", "steps": [shell("a", execution="cloud")]})
    assert "steps[0].execution: must be 'local' or 'ray', got \"cloud\"" in text
    text = problems({"name": "w", "execution": "moon", "steps": [shell("a")]})
    assert "execution: must be 'local' or 'ray'" in text


@pytest.mark.parametrize(
    ("step", "why"),
    [
        (AGENT, "it needs the driver's models, tools and breakers"),
        ({"id": "p", "kind": "plan", "goal": "g"}, "it needs the driver's models"),
        ({"id": "h", "kind": "human", "prompt": "ok?"}, "it waits for a person"),
        ({"id": "c", "kind": "workflow", "workflow": "child.yaml"}, "its attempt is a child run"),
        (
            {"id": "l", "kind": "loop", "max_iterations": 2, "steps": [shell("b")]},
            "it runs no attempt: mark its body's steps instead",
        ),
    ],
)
def test_kinds_that_need_the_driver_are_refused_on_ray_saying_why(
    step: dict[str, Any], why: str
) -> None:
    text = problems({"name": "w", "steps": [{**step, "execution": "ray"}]})
    kind = step["kind"]
    assert f"steps[0]: execution: ray does not apply to {kind} steps ({why}" in text
    assert "Only shell, python, http, file steps run on Ray" in text


def test_a_workflow_default_reaches_the_steps_that_can_run_on_ray() -> None:
    loop = {"id": "l", "kind": "loop", "max_iterations": 2, "steps": [shell("inner")]}
    doc = {
        "name": "w",
        "execution": "ray",
        "steps": [shell("a"), AGENT, loop, shell("here", execution="local")],
    }
    wf = placed(load_workflow(doc))
    where = {s.id: s.execution for s in wf.steps}
    assert where == {"a": "ray", "ask": None, "l": None, "here": "local"}
    assert wf.steps[2].steps[0].execution == "ray"  # type: ignore[attr-defined]
    recorded = wf.model_dump(mode="json", exclude_unset=True)
    assert recorded["steps"][0]["execution"] == "ray"


def test_the_project_default_applies_unless_the_workflow_says_otherwise() -> None:
    wf = load_workflow({"name": "w", "steps": [shell("a")]})
    assert placed(wf, "ray").steps[0].execution == "ray"
    assert placed(wf, "local").steps[0].execution is None
    local = load_workflow({"name": "w", "execution": "local", "steps": [shell("a")]})
    assert placed(local, "ray").steps[0].execution is None


async def test_a_submitted_run_records_where_its_steps_run() -> None:
    config = ProjectConfig(execution="ray")
    async with Engine(MemoryEventStore(), mode="control", config=config) as engine:
        human = {"id": "ask", "kind": "human", "prompt": "ok?", "needs": ["a"]}
        run_id = await engine.submit({"name": "w", "steps": [shell("a"), human]})
        state = await engine.state(run_id)
    assert state.steps["a"].spec.execution == "ray"
    assert state.steps["ask"].spec.execution is None


def test_the_project_configuration_checks_execution_and_ray_address(tmp_path: Path) -> None:
    path = tmp_path / "podium.toml"
    path.write_text('execution = "cloud"\nray_address = "http://head:8265"\n')
    with pytest.raises(SpecError) as caught:
        load_config(path=path)
    text = str(caught.value)
    assert "execution: Input should be 'local' or 'ray'" in text
    assert "ray_address: Ray address 'http://head:8265' is not one Ray connects to" in text
    path.write_text('execution = "ray"\nray_address = "ray://head:10001"\n')
    config = load_config(path=path)
    assert (config.execution, config.ray_address) == ("ray", "ray://head:10001")
    assert config.digest() != ProjectConfig().digest()


def test_the_ray_address_comes_from_the_flag_then_the_environment_then_the_project(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(RAY_ADDRESS_ENV, raising=False)
    assert ray_address(None, None) is None
    assert ray_address(None, "head:6379") == "head:6379"
    monkeypatch.setenv(RAY_ADDRESS_ENV, "auto")
    assert ray_address(None, "head:6379") == "auto"
    assert ray_address("ray://other:10001", "head:6379") == "ray://other:10001"
    monkeypatch.setenv(RAY_ADDRESS_ENV, "head")
    with pytest.raises(UsageError, match="write auto"):
        ray_address(None, None)
