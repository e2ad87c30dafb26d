"""Recovery counting in the pure core: takeovers from dead drivers count in a row, a finished
step resets the count, a run over `max_recoveries` is dead-lettered (nothing starts, it lists as
`dead`), and a person's retry, skip or cancel brings it back or ends it."""

from __future__ import annotations

from typing import Any

from podium.core import events as ev
from podium.core.control import signal_events
from podium.core.fold import replay
from podium.core.happenings import ControlSignal, TakenOver
from podium.core.state import StepStatus

from .sim import Sim, make_state


def _shell(step_id: str, *needs: str) -> dict[str, Any]:
    return {"id": step_id, "kind": "shell", "run": ["true"], "needs": list(needs)}


def _http(step_id: str, *needs: str) -> dict[str, Any]:
    return {"id": step_id, "kind": "http", "url": "http://x", "needs": list(needs)}


def _sim(*steps: dict[str, Any]) -> Sim:
    return Sim(make_state({"name": "w", "steps": list(steps)}))


def _crash(sim: Sim, limit: int = 2) -> ev.Event:
    (event,) = sim.happen(TakenOver(crashed=True, max_recoveries=limit))
    return event


def _signal(sim: Sim, kind: str, **payload: Any) -> list[ev.Event]:
    signal = ControlSignal(id=len(sim.log), kind=kind, payload=payload)
    return sim.happen(signal)


def test_takeovers_from_dead_drivers_count_in_a_row_until_the_run_is_dead_lettered() -> None:
    sim = _sim(_http("poison"), _shell("after", "poison"))
    sim.turn()
    for count in (1, 2):
        resumed = _crash(sim)
        assert isinstance(resumed, ev.RunResumed)
        assert resumed.recovery == count
        assert resumed.requeued == ["poison"]
        assert sim.turn() == ["poison"]  # idempotent: the same attempt again
    dead = _crash(sim)
    assert isinstance(dead, ev.RunDeadLettered)
    assert dead.recoveries == 3
    assert dead.interrupted == ["poison"]
    assert "3 times in a row" in dead.reason
    assert "max_recoveries is 2" in dead.reason
    assert "podium retry run_test" in dead.reason
    assert sim.state.status == "dead"
    assert sim.state.steps["poison"].status is StepStatus.INTERRUPTED
    assert sim.turn() == []  # nothing starts in a dead run
    assert sim.log[-1] is dead  # and nothing is recorded: it waits for a person
    assert replay([_created(sim), *sim.log]).status == "dead"


def test_a_finished_step_resets_the_count_and_a_handed_back_run_is_not_a_recovery() -> None:
    sim = _sim(_http("a"), _http("b", "a"), _http("c", "b"))
    sim.turn()
    assert _crash(sim, limit=1).recovery == 1  # type: ignore[union-attr]
    sim.turn()
    sim.succeed("a")  # progress
    sim.turn()
    assert _crash(sim, limit=1).recovery == 1  # type: ignore[union-attr]  # counted afresh
    sim.turn()
    (handed,) = sim.happen(TakenOver(crashed=False, max_recoveries=1))
    assert isinstance(handed, ev.RunResumed)
    assert handed.recovery == 0
    sim.turn()
    assert isinstance(_crash(sim, limit=1), ev.RunResumed)  # 1 again, not 2: still alive


def test_nothing_in_flight_records_nothing() -> None:
    sim = _sim(_shell("a"))
    assert sim.happen(TakenOver(crashed=True, max_recoveries=0)) == []


def test_max_recoveries_zero_dead_letters_at_the_first_crash_and_names_every_step() -> None:
    sim = _sim(_http("a"), _shell("b"))
    sim.turn()
    dead = _crash(sim, limit=0)
    assert isinstance(dead, ev.RunDeadLettered)
    assert dead.interrupted == ["a", "b"]
    assert "a, b ran" in dead.reason


def test_a_retry_revives_the_dead_run_with_a_fresh_count() -> None:
    sim = _sim(_http("poison"), _shell("after", "poison"))
    sim.turn()
    _crash(sim, limit=0)
    events = _signal(sim, "retry", step_id="poison")
    assert [e.kind for e in events] == ["run.revived", "step.retry_requested"]
    assert sim.state.status == "running"
    assert sim.state.recoveries == 0
    assert sim.turn() == ["poison"]
    sim.succeed("poison")
    sim.turn()
    sim.succeed("after")
    sim.turn()
    assert sim.state.outcome == "succeeded"


def test_a_skip_revives_it_a_refused_signal_does_not_and_a_cancel_ends_it() -> None:
    sim = _sim(_http("poison"), _shell("after", "poison"))
    sim.turn()
    _crash(sim, limit=0)
    refused = _signal(sim, "retry", step_id="after")  # pending: nothing to retry
    assert [e.kind for e in refused] == ["signal.refused"]
    assert sim.state.status == "dead"
    skipped = _signal(sim, "skip", step_id="poison")
    assert [e.kind for e in skipped] == ["run.revived", "step.skipped"]
    sim.turn()
    assert sim.state.outcome == "succeeded"  # `after` skipped with it: nothing was left to run

    other = _sim(_http("poison"))
    other.turn()
    _crash(other, limit=0)
    assert [e.kind for e in _signal(other, "cancel", reason="gave up")] == ["run.cancel_requested"]
    other.turn()
    assert other.state.outcome == "cancelled"


def test_signal_events_on_a_live_run_do_not_revive() -> None:
    sim = _sim(_shell("a"))
    sim.turn()
    sim.fail("a")
    sim.turn()
    signal = ControlSignal(id=1, kind="retry", payload={"step_id": "a"})
    assert [e.kind for e in signal_events(sim.state, signal, sim.now)] == ["step.retry_requested"]


def _created(sim: Sim) -> ev.RunCreated:
    return ev.RunCreated(
        at=sim.state.created_at,
        run_id=sim.state.run_id,
        workflow=sim.state.workflow.model_dump(mode="json", exclude_unset=True),
        workspace="/tmp",
    )
