"""`human` steps through the engine and a real SQLite store: the run parks on the question (one
`approval.requested`, subject `answer`); `Engine.answer` checks the value against what it asks
(text, a choice, a JSON Schema) before posting; the answer is the step's output; a `timeout`
fails the step or takes its default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from podium.core.state import StepStatus
from podium.errors import SpecError, UsageError
from podium.runtime.engine import Engine


def _human(step_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "kind": "human", "prompt": f"Question {step_id}?", **fields}


async def test_answers_are_checked_then_become_outputs(tmp_path: Path) -> None:
    wf = {
        "name": "ask",
        "inputs": {"who": {"type": "string", "default": "ops"}},
        "steps": [
            _human("pick", prompt="Where, ${{ inputs.who }}?", input={"choice": ["dev", "prod"]}),
            _human("size", input={"type": "integer", "minimum": 1}),
            _human("note"),
            {
                "id": "use",
                "kind": "shell",
                "needs": ["pick", "size", "note"],
                "run": "echo ${{ steps.pick.output }}-${{ steps.size.output }}",
            },
        ],
    }
    async with await Engine.open(tmp_path / "p.db", workspace=tmp_path) as engine:
        run_id = await engine.submit(wf)
        parked = await engine.wait(run_id)
        assert parked.status == "waiting"
        asked = {w.step_id: w for w in await engine.approvals(run_id)}
        assert asked["pick"].subject == "answer"
        question = {"prompt": "Where, ops?", "input": {"choice": ["dev", "prod"]}}
        assert asked["pick"].input == question
        with pytest.raises(UsageError, match="not one of the choices"):
            await engine.answer(run_id, "pick", "staging")
        with pytest.raises(UsageError, match="less than the minimum"):
            await engine.answer(run_id, "size", 0)
        with pytest.raises(UsageError, match="expected text"):
            await engine.answer(run_id, "note", 3)
        with pytest.raises(UsageError, match="asks a question"):
            await engine.approve(run_id, "note")
        assert not await engine.store.pending_signals(run_id)
        await engine.answer(run_id, "size", 3)
        await engine.answer(run_id, "note", "fine")
        await engine.answer(run_id, "pick", "prod")
        state = await engine.wait(run_id)
        kinds = [e.event.kind for e in await engine.store.read(run_id)]
    assert state.outcome == "succeeded"
    assert (state.steps["size"].output, state.steps["note"].output) == (3, "fine")
    assert state.steps["use"].output.strip() == "prod-3"
    assert kinds.count("approval.requested") == 3
    assert kinds.count("approval.granted") == 3
    assert kinds.count("step.started") == 1  # only the shell step ran; nobody ran the questions


async def test_a_timeout_fails_the_step_or_takes_its_default(tmp_path: Path) -> None:
    wf = {
        "name": "late",
        "on_failure": "collect",
        "steps": [
            _human("strict", timeout="200ms"),
            _human("lenient", timeout="200ms", on_timeout={"default": "as usual"}),
        ],
    }
    async with await Engine.open(tmp_path / "p.db", workspace=tmp_path) as engine:
        state = await engine.run(wf)
    assert state.outcome == "failed"
    assert state.steps["strict"].status is StepStatus.FAILED
    assert state.steps["strict"].error == "no answer within 0.2s (on_timeout: fail)"
    assert state.steps["lenient"].output == "as usual"
    assert not state.approvals


async def test_a_default_that_does_not_answer_is_a_spec_error(tmp_path: Path) -> None:
    wf = {
        "name": "bad",
        "steps": [_human("h", input={"choice": ["a"]}, on_timeout={"default": "b"})],
    }
    async with await Engine.open(tmp_path / "p.db", workspace=tmp_path) as engine:
        with pytest.raises(SpecError, match=r"on_timeout\.default does not answer the step"):
            await engine.submit(wf)
