"""Properties of the core over random DAGs, joins, limits and completion orders (Hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from podium.core import events as ev
from podium.core.fold import replay
from podium.core.state import TERMINAL, StepStatus

from .sim import Sim, make_state


@st.composite
def workflows(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 14))
    steps = []
    for i in range(n):
        needs = sorted(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else []
        step: dict[str, Any] = {
            "id": f"s{i}",
            "kind": "shell",
            "run": "true",
            "needs": [f"s{j}" for j in needs],
            "expected_seconds": draw(st.sampled_from([0.1, 1, 5])),
            "allow_failure": draw(st.booleans()),
        }
        if len(needs) > 1:
            step["join"] = draw(st.sampled_from(["all", "any", {"quorum": 2}]))
        steps.append(step)
    limit = draw(st.one_of(st.none(), st.integers(1, 4)))
    policy = draw(st.sampled_from(["fail_fast", "collect"]))
    return {"name": "p", "steps": steps, "max_concurrency": limit, "on_failure": policy}


@settings(max_examples=300, deadline=None)
@given(doc=workflows(), data=st.data())
def test_random_runs_always_complete_consistently(doc: dict[str, Any], data: st.DataObject) -> None:
    sim = Sim(make_state(doc))
    limit = doc["max_concurrency"]
    sim.turn()
    for _ in range(200):
        for sid in list(sim.cancel_requests):
            if sid in sim.state.running:
                sim.cancelled(sid, "fail_fast" if sim.state.stopping else "lost_race")
        sim.cancel_requests.clear()
        sim.turn()
        running = sorted(sim.state.running)
        if not running:
            break
        assert limit is None or len(running) <= limit
        sid = data.draw(st.sampled_from(running))
        if data.draw(st.booleans()) or True:
            _check_needs_met(sim, sid)
        if data.draw(st.integers(0, 4)) == 0:
            sim.fail(sid)
        else:
            sim.succeed(sid, sid)
    sim.turn()
    state = sim.state
    assert state.outcome in ("succeeded", "failed")
    assert all(s.status in TERMINAL for s in state.steps.values())
    assert state.unfinished == 0
    assert (state.outcome == "failed") == bool(state.failures)
    assert sum(isinstance(e, ev.RunCompleted) for e in sim.log) == 1
    first = ev.RunCreated(at=state.created_at, run_id="run_test", workflow=doc, workspace="/tmp")
    again = replay([first, *sim.log])
    assert {k: s.status for k, s in again.steps.items()} == {
        k: s.status for k, s in state.steps.items()
    }


def _check_needs_met(sim: Sim, sid: str) -> None:
    step = sim.state.steps[sid]
    ok = 0
    for need in step.spec.needs:
        n = sim.state.steps[need]
        ok += n.status is StepStatus.SUCCEEDED or (
            n.status is StepStatus.FAILED and n.spec.allow_failure
        )
    required = sim.state.graph.quorum[sid]
    assert ok >= required, f"{sid} started with {ok}/{required} needs met"


@settings(max_examples=150, deadline=None)
@given(doc=workflows())
def test_priority_prefers_longer_remaining_paths(doc: dict[str, Any]) -> None:
    doc = {**doc, "max_concurrency": 1, "on_failure": "collect"}
    sim = Sim(make_state(doc))
    while True:
        started = sim.turn()
        if not started:
            break
        ready = [s for s in sim.state.steps.values() if s.status is StepStatus.READY]
        chosen = sim.state.steps[started[0]]
        assert all(chosen.rank >= other.rank for other in ready)
        sim.succeed(started[0])
    assert sim.state.outcome == "succeeded"
