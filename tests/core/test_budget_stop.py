"""Budgets in the scheduler: checked before each step and on each usage report; exceeding one
stops the run with an event naming the budget and the figure, cancelling what runs."""

from __future__ import annotations

from typing import Any

from podium.core import events as ev
from podium.core.scheduler import decide
from podium.core.state import StepStatus

from .sim import Sim, make_state


def shell(step_id: str, *needs: str) -> dict[str, Any]:
    return {"id": step_id, "kind": "shell", "run": "true", "needs": list(needs)}


def wf(*steps: dict[str, Any], **budget: Any) -> dict[str, Any]:
    return {"name": "b", "steps": list(steps), "budget": budget}


def test_token_budget_stops_the_run_and_cancels_running_steps() -> None:
    sim = Sim(make_state(wf(shell("a"), shell("b"), shell("c", "a"), tokens=1000)))
    sim.turn()
    sim.record(
        ev.ModelCalled(at=sim.now, step_id="a", model="m", input_tokens=900, output_tokens=200)
    )
    sim.turn()
    exceeded = [e for e in sim.log if isinstance(e, ev.BudgetExceeded)]
    assert len(exceeded) == 1
    assert (exceeded[0].budget, exceeded[0].limit, exceeded[0].figure) == ("tokens", 1000, 1100)
    assert "tokens" in exceeded[0].message
    assert sorted(sim.cancel_requests) == ["a", "b"]
    assert sim.state.steps["c"].status is StepStatus.CANCELLED
    sim.cancelled("a", "budget")
    sim.cancelled("b", "budget")
    sim.turn()
    assert sim.state.outcome == "failed"
    assert sim.state.completed_error == exceeded[0].message


def test_step_budget_refuses_the_step_beyond_it() -> None:
    sim = Sim(make_state(wf(shell("a"), shell("b"), shell("c"), steps=2)))
    assert sorted(sim.turn()) == ["a", "b"]
    assert any(isinstance(e, ev.BudgetExceeded) and e.budget == "steps" for e in sim.log)
    assert sim.state.steps["c"].status is StepStatus.CANCELLED


def test_retries_do_not_count_as_new_steps() -> None:
    doc = wf(shell("a"), steps=1)
    doc["steps"][0]["retry"] = {"max_attempts": 2, "initial_delay_seconds": 0}
    sim = Sim(make_state(doc))
    sim.turn()
    sim.fail("a", retryable=True)
    assert sim.turn() == ["a"]
    assert not any(isinstance(e, ev.BudgetExceeded) for e in sim.log)


def test_parallelism_budget_limits_without_stopping() -> None:
    sim = Sim(make_state(wf(*(shell(f"s{i}") for i in range(5)), parallelism=2)))
    assert len(sim.turn()) == 2
    assert sim.state.stopping is None


def test_wall_time_budget_wakes_the_run_and_stops_it() -> None:
    sim = Sim(make_state(wf(shell("a"), wall_seconds=60)))
    sim.turn()
    assert decide(sim.state, sim.now).wake_at == sim.state.created_at.replace() + _minutes(1)
    sim.advance(61)
    sim.turn()
    exceeded = [e for e in sim.log if isinstance(e, ev.BudgetExceeded)]
    assert exceeded[0].budget == "wall_seconds"


def _minutes(n: int) -> Any:
    from datetime import timedelta

    return timedelta(minutes=n)
