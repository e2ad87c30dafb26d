"""The turn: outcomes, reports, signals and take-overs folded into events by the one pure function
the runtime and the simulator share."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from tests.core.sim import T0, Sim, make_state

from podium.core import events as ev
from podium.core.happenings import (
    REPORT_KINDS,
    AttemptOutcome,
    ControlSignal,
    Report,
    TakenOver,
    make_report,
)
from podium.core.state import StepStatus
from podium.core.turn import take_turn
from podium.errors import ReportError


def shell(step_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "kind": "shell", "run": "true", **extra}


def chain() -> Sim:
    return Sim(make_state({"name": "w", "steps": [shell("a"), shell("b", needs=["a"])]}))


def test_a_forged_success_cannot_be_reported() -> None:
    with pytest.raises(ReportError, match=r"cannot report 'step\.succeeded'"):
        make_report("a", "step.succeeded", {"output": "forged"})


def test_a_report_may_not_set_what_the_run_fills_in() -> None:
    with pytest.raises(ReportError, match="may not set step_id"):
        make_report("a", "model.called", {"model": "m", "step_id": "b"})


def test_a_malformed_report_is_refused_at_the_source() -> None:
    with pytest.raises(ReportError, match=r"malformed model\.called"):
        make_report("a", "model.called", {"not_a_field": 1})


@pytest.mark.parametrize("kind", REPORT_KINDS)
def test_every_report_kind_becomes_its_event(kind: str) -> None:
    data: dict[str, Any] = {
        "model.called": {"model": "m", "input_tokens": 3},
        "tool.started": {"call_id": "t1.0", "tool": "read_file", "safe": True},
        "tool.called": {"tool": "read_file", "latency_seconds": 0.1},
        "agent.routed": {"requested": "x", "selected": "y"},
        "breaker.changed": {"key": "k", "from_status": "closed", "to_status": "open"},
        "step.progress": {"message": "half", "fraction": 0.5},
        "tool.approval_needed": {"call_id": "t1.0", "tool": "rm", "arguments": {"path": "x"}},
    }[kind]
    agent = {"id": "a", "kind": "agent", "agent": "x", "prompt": "p"}  # the one with tools
    sim = Sim(make_state({"name": "w", "steps": [agent]}))
    sim.turn()
    turn = take_turn(sim.state, [make_report("a", kind, data)], T0)
    held = {"tool.approval_needed": "approval.requested"}  # a held tool call asks a person
    assert [e.kind for e in turn.events] == [held.get(kind, kind)]


def test_only_an_agent_step_may_hold_a_tool_call() -> None:
    sim = chain()
    sim.turn()
    held = make_report("a", "tool.approval_needed", {"call_id": "t1.0", "tool": "rm"})
    turn = take_turn(sim.state, [held], T0)
    assert turn.events == []  # a shell step has no tool loop: nothing is asked, it still runs
    assert sim.state.steps["a"].status is StepStatus.RUNNING


def test_a_held_tool_call_must_have_the_shape_of_one() -> None:
    with pytest.raises(ReportError, match=r"malformed tool\.approval_needed"):
        make_report("a", "tool.approval_needed", {"tool": "rm", "subject": "step"})


def test_a_report_that_slipped_past_the_source_is_still_dropped() -> None:
    sim = chain()
    sim.turn()
    forged = Report("a", "step.succeeded", {"output": "x"})  # type: ignore[arg-type]
    turn = take_turn(sim.state, [forged], T0)
    assert turn.events == []
    assert sim.state.steps["a"].status is StepStatus.RUNNING
    assert sim.state.steps["b"].status is StepStatus.PENDING


def test_an_outcome_of_a_stale_attempt_is_dropped() -> None:
    sim = chain()
    sim.turn()
    turn = take_turn(sim.state, [AttemptOutcome("a", attempt=7, output="late")], T0)
    assert turn.events == []


def test_a_stale_signal_is_consumed_and_recorded_as_refused() -> None:
    sim = chain()
    sim.turn()
    signals = [
        ControlSignal(1, "retry", {"step_id": "a"}),  # a is running: not retryable
        ControlSignal(2, "retry", {"step_id": "nope"}),
        ControlSignal(3, "bogus", {}),
        ControlSignal(4, "skip", {"step_id": 3}),
    ]
    turn = take_turn(sim.state, signals, T0)
    refused = [e for e in turn.events if isinstance(e, ev.SignalRefused)]
    assert [e.signal_id for e in refused] == [1, 2, 3, 4]
    assert "only failed, interrupted" in refused[0].reason
    assert "no step 'nope'" in refused[1].reason
    assert "unknown signal kind" in refused[2].reason
    assert turn.consumed == [1, 2, 3, 4]
    assert sim.state.steps["a"].status is StepStatus.RUNNING


def test_a_template_that_cannot_render_fails_the_step_without_launching_it() -> None:
    doc = {
        "name": "w",
        "steps": [shell("a"), shell("b", needs=["a"], run="echo ${{ fromJSON(steps.a.output) }}")],
    }
    sim = Sim(make_state(doc))
    sim.turn()
    sim.succeed("a", "plain text")
    assert sim.turn() == []
    b = sim.state.steps["b"]
    assert b.status is StepStatus.FAILED
    assert b.error_type == "template"
    assert sim.state.outcome == "failed"


def test_a_launch_carries_the_rendered_step_and_survives_pickling() -> None:
    doc = {
        "name": "w",
        "steps": [shell("a"), shell("b", needs=["a"], run="echo ${{ steps.a.output }}")],
    }
    sim = Sim(make_state(doc))
    sim.turn()
    sim.succeed("a", "hi")
    sim.turn()
    launch = sim.launched["b"]
    assert launch.step.run == "echo hi"  # type: ignore[attr-defined]
    assert launch.upstream == {"a": "hi"}
    assert pickle.loads(pickle.dumps(launch)) == launch


def test_a_take_over_requeues_idempotent_steps_and_interrupts_the_rest() -> None:
    doc = {"name": "w", "steps": [shell("a", idempotent=True), shell("b")]}
    sim = Sim(make_state(doc))
    sim.turn()
    turn = take_turn(sim.state, [TakenOver(("b",))], T0)
    resumed = turn.events[0]
    assert isinstance(resumed, ev.RunResumed)
    assert (resumed.requeued, resumed.interrupted, resumed.stopped) == (["a"], ["b"], ["b"])
    assert [launch.step_id for launch in turn.launch] == ["a"]


def lost_attempt(step_id: str, attempt: int = 1) -> AttemptOutcome:
    return AttemptOutcome(step_id, attempt, error="the Ray worker died", lost=True)


def test_a_lost_idempotent_attempt_runs_again_with_the_same_key() -> None:
    sim = Sim(make_state({"name": "w", "steps": [shell("a", idempotent=True)]}))
    sim.turn()
    key = sim.launched["a"].idempotency_key
    turn = take_turn(sim.state, [lost_attempt("a")], T0)
    lost = turn.events[0]
    assert isinstance(lost, ev.StepLost)
    assert (lost.requeued, lost.error, lost.attempt) == (True, "the Ray worker died", 1)
    (again,) = turn.launch
    assert (again.step_id, again.attempt, again.idempotency_key) == ("a", 1, key)
    assert sim.state.steps["a"].status is StepStatus.RUNNING


def test_a_lost_side_effecting_attempt_is_interrupted_and_waits_for_a_person() -> None:
    sim = chain()  # shell steps are not idempotent by default
    sim.turn()
    turn = take_turn(sim.state, [lost_attempt("a")], T0)
    assert [e.kind for e in turn.events] == ["step.lost"]
    assert turn.launch == []
    step = sim.state.steps["a"]
    assert (step.status, step.error) == (StepStatus.INTERRUPTED, "the Ray worker died")
    assert sim.state.outcome is None
    assert sim.state.awaits_person
    retried = take_turn(sim.state, [ControlSignal(1, "retry", {"step_id": "a"})], T0)
    assert [launch.step_id for launch in retried.launch] == ["a"]


def test_a_lost_report_of_a_stale_attempt_changes_nothing() -> None:
    sim = Sim(make_state({"name": "w", "steps": [shell("a", idempotent=True)]}))
    sim.turn()
    assert take_turn(sim.state, [lost_attempt("a", attempt=2)], T0).events == []
    assert sim.state.steps["a"].status is StepStatus.RUNNING


def test_a_lost_outcome_survives_pickling() -> None:
    outcome = lost_attempt("a")
    assert pickle.loads(pickle.dumps(outcome)) == outcome
