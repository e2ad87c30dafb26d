"""Issue 8, defect 7: a skipped step's message names only the needs that caused the skip."""

from __future__ import annotations

from typing import Any

from podium.core import events as ev

from .sim import Sim, make_state


def _shell(step_id: str, *needs: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "kind": "shell", "run": "true", "needs": list(needs), **fields}


def _skip_message(sim: Sim, step_id: str) -> str:
    (skipped,) = [e for e in sim.log if isinstance(e, ev.StepSkipped) and e.step_id == step_id]
    return skipped.message


def test_a_skip_names_the_skipped_need_not_the_pending_one() -> None:
    doc = {
        "name": "t",
        "steps": [_shell("pend"), _shell("gate", when="${{ false }}"), _shell("c", "pend", "gate")],
    }
    sim = Sim(make_state(doc))
    assert sim.turn() == ["pend"]  # gate is skipped by its condition, pend still runs
    assert _skip_message(sim, "c") == "a step it needs was skipped: gate"


def test_a_failure_skip_names_the_failed_need_not_the_running_one() -> None:
    doc = {
        "name": "t",
        "on_failure": "collect",
        "steps": [_shell("pend"), _shell("gate"), _shell("c", "pend", "gate")],
    }
    sim = Sim(make_state(doc))
    sim.turn()
    sim.fail("gate")  # pend is still running
    sim.turn()
    assert _skip_message(sim, "c") == "a step it needs failed or was cancelled: gate"
