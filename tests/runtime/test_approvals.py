"""Approvals on any step, through the engine and a real SQLite store: a step with `approval:` is
held before it starts; a person approves it (as asked or edited) or rejects it; several can wait
at once in parallel branches; a branch that lost an `any` race has its approval withdrawn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from podium.core.state import StepStatus
from podium.errors import InvalidTransitionError, UsageError
from podium.runtime.engine import Engine


def _touch(name: str, **extra: Any) -> dict[str, Any]:
    """A shell step that appends a line to `<name>.ran`: one line per time it ran."""
    return {"id": name, "kind": "shell", "shell": "sh", "run": f"echo ran >> {name}.ran", **extra}


def _ran(tmp_path: Path, name: str) -> int:
    path = tmp_path / f"{name}.ran"
    return len(path.read_text().splitlines()) if path.exists() else 0


async def _engine(tmp_path: Path) -> Engine:
    return await Engine.open(tmp_path / "podium.db", workspace=tmp_path)


def _kinds(events: list[Any]) -> list[str]:
    return [e.event.kind for e in events]


async def test_a_step_waits_for_approval_then_runs_once(tmp_path: Path) -> None:
    wf = {
        "name": "deploy",
        "inputs": {"target": {"type": "string", "default": "prod"}},
        "steps": [
            _touch("build"),
            {
                "id": "ship",
                "kind": "shell",
                "shell": "sh",
                "run": "echo ${{ inputs.target }} >> ship.ran",
                "needs": ["build"],
                "approval": "required",
            },
            _touch("after", needs=["ship"]),
        ],
    }
    async with await _engine(tmp_path) as engine:
        run_id = await engine.submit(wf)
        state = await engine.wait(run_id)
        assert state.status == "waiting"
        assert state.steps["ship"].status is StepStatus.WAITING
        [waiting] = await engine.approvals(run_id)
        assert waiting.step_id == "ship"
        assert waiting.input["run"] == "echo prod >> ship.ran"  # rendered, as it will run
        assert [w.step_id for w in await engine.approvals()] == ["ship"]
        assert _ran(tmp_path, "build") == 1
        assert _ran(tmp_path, "ship") == 0

        assert await engine.approve(run_id, "ship")
        state = await engine.wait(run_id)
        assert state.outcome == "succeeded"
        events = [e async for e in engine.events(run_id)]
    assert (_ran(tmp_path, "build"), _ran(tmp_path, "ship"), _ran(tmp_path, "after")) == (1, 1, 1)
    kinds = _kinds(events)
    assert kinds.count("approval.requested") == 1
    assert kinds.count("approval.granted") == 1
    assert kinds.index("approval.granted") < kinds.index(
        "step.started", kinds.index("approval.granted")
    )


async def test_an_edit_replaces_the_fields_and_a_bad_edit_is_refused(tmp_path: Path) -> None:
    wf = {"name": "w", "steps": [_touch("a", approval=True)]}
    async with await _engine(tmp_path) as engine:
        run_id = await engine.submit(wf)
        await engine.wait(run_id)
        with pytest.raises(UsageError, match="not valid: retry"):
            await engine.approve(run_id, "a", edit={"retry": {"max_attempts": 0}})
        with pytest.raises(UsageError, match="cannot change needs"):
            await engine.approve(run_id, "a", edit={"needs": ["x"]})
        with pytest.raises(UsageError, match="KEY=VALUE"):
            await engine.approve(run_id, "a", set=["nothing"])
        assert not await engine.store.pending_signals(run_id)  # nothing posted

        await engine.approve(run_id, "a", set=["run=echo edited >> edited.ran"])
        state = await engine.wait(run_id)
    assert state.outcome == "succeeded"
    assert (_ran(tmp_path, "a"), _ran(tmp_path, "edited")) == (0, 1)


async def test_a_rejected_step_fails_and_its_dependents_are_skipped(tmp_path: Path) -> None:
    wf = {
        "name": "w",
        "on_failure": "collect",
        "steps": [
            _touch("a", approval="${{ inputs.careful }}"),
            _touch("b", needs=["a"]),
            _touch("c"),
        ],
        "inputs": {"careful": {"type": "boolean", "default": True}},
    }
    async with await _engine(tmp_path) as engine:
        run_id = await engine.submit(wf)
        await engine.wait(run_id)
        await engine.reject(run_id, "a", reason="not today")
        state = await engine.wait(run_id)
        with pytest.raises(InvalidTransitionError, match="step a is not awaiting approval"):
            await engine.approve(run_id, "a")

        quiet = await engine.submit(wf, {"careful": False})  # the condition is false: no approval
        assert (await engine.wait(quiet)).outcome == "succeeded"
    assert state.outcome == "failed"
    assert state.steps["a"].error == "rejected: not today"
    assert state.steps["b"].status is StepStatus.SKIPPED
    assert state.steps["b"].reason == "upstream_failed"
    assert (_ran(tmp_path, "a"), _ran(tmp_path, "b"), _ran(tmp_path, "c")) == (1, 1, 2)


async def test_parallel_approvals_resolve_in_any_order(tmp_path: Path) -> None:
    wf = {
        "name": "w",
        "on_failure": "collect",
        "steps": [_touch(n, approval="required") for n in ("x", "y", "z")]
        + [_touch("join", needs=["x", "y", "z"], allow_failure=True)],
    }
    async with await _engine(tmp_path) as engine:
        run_id = await engine.submit(wf)
        await engine.wait(run_id)
        assert [w.step_id for w in await engine.approvals(run_id)] == ["x", "y", "z"]
        with pytest.raises(InvalidTransitionError, match="3 steps awaiting approval"):
            await engine.approve(run_id)
        await engine.approve(run_id, "z")
        await engine.wait(run_id)
        with pytest.raises(InvalidTransitionError, match="step z is not awaiting approval"):
            await engine.approve(run_id, "z")
        await engine.reject(run_id, "x", reason="no")
        await engine.wait(run_id)
        await engine.approve(run_id, "y")
        state = await engine.wait(run_id)
    assert state.outcome == "failed"
    assert [_ran(tmp_path, n) for n in ("x", "y", "z")] == [0, 1, 1]
    assert state.steps["join"].status is StepStatus.SKIPPED


async def test_an_any_join_withdraws_the_losers_approval(tmp_path: Path) -> None:
    wf = {
        "name": "w",
        "steps": [
            _touch("fast"),
            _touch("slow", approval="required"),
            _touch("first", needs=["fast", "slow"], join="any"),
        ],
    }
    async with await _engine(tmp_path) as engine:
        run_id = await engine.submit(wf)
        state = await engine.wait(run_id)
        events = [e async for e in engine.events(run_id)]
    assert state.outcome == "succeeded"
    assert state.steps["slow"].status is StepStatus.CANCELLED
    assert state.steps["slow"].reason == "lost_race"
    assert not state.approvals
    assert "approval.withdrawn" in _kinds(events)
    assert [_ran(tmp_path, n) for n in ("fast", "slow", "first")] == [1, 0, 1]


async def test_a_second_decision_before_the_driver_reads_the_first_is_refused(
    tmp_path: Path,
) -> None:
    wf = {"name": "w", "steps": [_touch("a", approval="required")]}
    async with await _engine(tmp_path) as engine:
        run_id = await engine.submit(wf)
        await engine.wait(run_id)
    async with await Engine.open(tmp_path / "podium.db", mode="control") as control:
        assert not await control.approve(run_id, "a")  # posted; a worker will drive it
        with pytest.raises(InvalidTransitionError, match="already decided"):
            await control.reject(run_id, "a", reason="changed my mind")
        [signal] = await control.store.pending_signals(run_id)
    assert signal.kind == "approve"
    async with await _engine(tmp_path) as engine:
        state = await engine.resume(run_id)
        state = await engine.wait(run_id)
    assert state.outcome == "succeeded"
    assert _ran(tmp_path, "a") == 1


async def test_an_approval_condition_is_checked_like_when(tmp_path: Path) -> None:
    from podium.errors import SpecError

    ahead = {
        "name": "w",
        "steps": [_touch("a", approval="${{ steps.b.output == 'x' }}"), _touch("b")],
    }
    broken = {"name": "w", "steps": [_touch("a", approval="${{ inputs.x.y.z > 1 }}")]}
    broken["inputs"] = {"x": {"type": "object", "default": {}}}
    async with await _engine(tmp_path) as engine:
        with pytest.raises(SpecError, match=r"steps\[0\]\.approval"):
            await engine.submit(ahead)
        state = await engine.run(broken)
    assert state.steps["a"].status is StepStatus.FAILED
    assert (state.steps["a"].error or "").startswith("approval: ")
    assert _ran(tmp_path, "a") == 0
