"""Loop steps in the pure core: starting a loop grows its body as namespaced children, each
finished iteration is decided (`until`, `max_iterations`, a failure, the `loop_iterations`
budget), templates see the iteration, replay re-grows exactly what was recorded, and a retried
loop starts over at iteration 1."""

from __future__ import annotations

from typing import Any

import pytest

from podium.core import events as ev
from podium.core.control import retry_event, skip_event, steps_in
from podium.core.fold import replay
from podium.core.loops import display_order, summary
from podium.core.state import StepStatus
from podium.errors import InvalidTransitionError
from podium.spec.model import PythonStep

from .sim import T0, Sim, make_state


def py(step_id: str, *needs: str, **args: Any) -> dict[str, Any]:
    return {"id": step_id, "kind": "python", "call": "m:f", "args": args, "needs": list(needs)}


def refine(**extra: Any) -> dict[str, Any]:
    """`draft` then `check` (which says ok when told), up to 5 times or until ok."""
    return {
        "id": "refine",
        "kind": "loop",
        "needs": ["seed"],
        "max_iterations": 5,
        "until": "${{ steps.check.output.ok }}",
        "steps": [
            py(
                "draft",
                n="${{ loop.iteration }}",
                before="${{ default(loop.previous.draft.output, steps.seed.output) }}",
            ),
            py("check", "draft", text="${{ steps.draft.output }}"),
        ],
        **extra,
    }


def flow(*steps: dict[str, Any], **budget: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": "loops", "steps": [py("seed"), *steps]}
    if budget:
        doc["budget"] = budget
    return doc


def iterate(sim: Sim, n: int, *, ok: bool) -> None:
    """Finish iteration `n` of `refine`: its draft, then its check saying `ok`."""
    sim.succeed(f"refine.{n}.draft", f"draft {n}")
    sim.turn()
    sim.succeed(f"refine.{n}.check", {"ok": ok})
    sim.turn()


def started_sim(doc: dict[str, Any]) -> Sim:
    sim = Sim(make_state(doc))
    sim.turn()
    sim.succeed("seed", "seed text")
    sim.turn()
    return sim


def test_a_loop_grows_its_body_and_repeats_until_the_condition_holds() -> None:
    sim = started_sim(flow(refine(), py("after", "refine")))
    assert sim.state.steps["refine"].status is StepStatus.WAITING
    assert sim.started == ["seed", "refine.1.draft"]  # the loop itself launches nothing
    assert sim.state.steps["refine.1.check"].spec.needs == ["refine.1.draft"]
    iterate(sim, 1, ok=False)
    iterate(sim, 2, ok=False)
    iterate(sim, 3, ok=True)
    assert [e.iteration for e in sim.log if isinstance(e, ev.LoopIterated)] == [2, 3]
    loop = sim.state.steps["refine"]
    assert loop.status is StepStatus.SUCCEEDED
    assert loop.output == {"draft": "draft 3", "check": {"ok": True}}
    assert loop.meta == {"iterations": 3, "stopped": "until"}
    assert sim.state.loop_iterations == 3
    assert "refine.4.draft" not in sim.state.steps
    assert sim.started[-1] == "after"


def test_body_templates_see_the_iteration_its_steps_and_the_previous_one() -> None:
    sim = started_sim(flow(refine()))
    first = sim.launched["refine.1.draft"].step
    assert isinstance(first, PythonStep)
    assert first.args == {"n": 1, "before": "seed text"}
    iterate(sim, 1, ok=False)
    second = sim.launched["refine.2.draft"].step
    assert isinstance(second, PythonStep)
    assert second.args == {"n": 2, "before": "draft 1"}
    sim.succeed("refine.2.draft", "draft 2")
    sim.turn()
    check = sim.launched["refine.2.check"].step
    assert isinstance(check, PythonStep)
    assert check.args == {"text": "draft 2"}  # steps.draft is this iteration's


def test_max_iterations_ends_the_loop_with_the_last_outputs() -> None:
    sim = started_sim(flow(refine(max_iterations=2)))
    iterate(sim, 1, ok=False)
    iterate(sim, 2, ok=False)
    loop = sim.state.steps["refine"]
    assert loop.status is StepStatus.SUCCEEDED
    assert loop.meta == {"iterations": 2, "stopped": "max_iterations"}
    assert sim.state.outcome == "succeeded"


def test_outside_steps_read_any_iteration() -> None:
    last = py("last", "refine", v="${{ steps.refine.iterations[-1].draft.output }}")
    first = py("first", "refine", v="${{ steps.refine.iterations[0].check.output.ok }}")
    sim = started_sim(flow(refine(), last, first))
    iterate(sim, 1, ok=False)
    iterate(sim, 2, ok=True)
    assert sim.launched["last"].step.args == {"v": "draft 2"}  # type: ignore[attr-defined]
    assert sim.launched["first"].step.args == {"v": False}  # type: ignore[attr-defined]


def test_a_failed_body_step_fails_the_loop_naming_the_iteration_and_step() -> None:
    sim = started_sim(flow(refine(), py("after", "refine")))
    iterate(sim, 1, ok=False)
    sim.fail("refine.2.draft", error="no ink")
    sim.turn()
    assert sim.state.steps["refine.2.check"].status is StepStatus.SKIPPED
    loop = sim.state.steps["refine"]
    assert loop.status is StepStatus.FAILED
    assert loop.error == "iteration 2: step draft failed: no ink"
    assert sim.state.steps["after"].status is StepStatus.CANCELLED  # fail_fast stops the run
    assert sim.state.outcome == "failed"
    assert sim.state.completed_error is not None
    assert sim.state.completed_error.startswith("refine: iteration 2: step draft failed")


def test_a_body_step_allowed_to_fail_does_not_fail_the_loop() -> None:
    body = [{**py("draft"), "allow_failure": True}, py("check", "draft")]
    loop = {"id": "l", "kind": "loop", "max_iterations": 2, "steps": body}
    sim = Sim(make_state({"name": "x", "steps": [loop]}))
    sim.turn()
    sim.fail("l.1.draft")
    sim.turn()
    sim.succeed("l.1.check", 1)
    sim.turn()
    assert sim.state.steps["l"].status is StepStatus.WAITING
    assert sim.state.steps["l.2.draft"].status is StepStatus.RUNNING  # iteration 2 began


def test_replay_regrows_exactly_the_recorded_iterations() -> None:
    sim = started_sim(flow(refine()))
    iterate(sim, 1, ok=False)
    iterate(sim, 2, ok=False)
    sim.succeed("refine.3.draft", "draft 3")
    sim.turn()  # iteration 3's check is running
    created = ev.RunCreated(
        at=T0,
        run_id="run_test",
        workflow=sim.state.workflow.model_dump(mode="json", exclude_unset=True),
        workspace="/tmp",
    )
    again = replay([created, *sim.log])
    assert {s: str(x.status) for s, x in again.steps.items()} == sim.statuses()
    assert again.loops["refine"].iterations == sim.state.loops["refine"].iterations
    assert again.loop_iterations == 3
    assert again.running == {"refine.3.check"}


def test_the_loop_iterations_budget_stops_the_run() -> None:
    sim = started_sim(flow(refine(), loop_iterations=2))
    iterate(sim, 1, ok=False)
    iterate(sim, 2, ok=False)
    [over] = [e for e in sim.log if isinstance(e, ev.BudgetExceeded)]
    assert (over.budget, over.limit, over.figure) == ("loop_iterations", 2, 3)
    assert over.message == "budget loop_iterations exceeded: 3 of 2"
    assert "refine.3.draft" not in sim.state.steps
    assert sim.state.steps["refine"].status is StepStatus.CANCELLED
    assert sim.state.outcome == "failed"
    assert sim.state.completed_error == over.message


def test_iterations_count_across_loops_and_starting_a_loop_counts_one() -> None:
    other = {"id": "again", "kind": "loop", "max_iterations": 3, "steps": [py("x")]}
    sim = started_sim(flow(refine(), other, loop_iterations=1))
    over = [e for e in sim.log if isinstance(e, ev.BudgetExceeded)]
    assert [(e.budget, e.figure) for e in over] == [("loop_iterations", 2)]
    assert sim.state.stopping == "budget"
    assert "refine.1.draft" not in sim.state.steps


def test_nested_loops_compose_their_ids_and_read_outward() -> None:
    inner = {
        "id": "inner",
        "kind": "loop",
        "max_iterations": 2,
        "steps": [py("x", outer="${{ steps.a.output }}", i="${{ loop.iteration }}")],
    }
    outer = {"id": "outer", "kind": "loop", "max_iterations": 2, "steps": [py("a"), inner]}
    outer["steps"][1]["needs"] = ["a"]
    sim = Sim(make_state({"name": "n", "steps": [outer]}))
    sim.turn()
    sim.succeed("outer.1.a", "A1")
    sim.turn()
    assert sim.launched["outer.1.inner.1.x"].step.args == {"outer": "A1", "i": 1}  # type: ignore[attr-defined]
    sim.succeed("outer.1.inner.1.x", "x")
    sim.turn()
    sim.succeed("outer.1.inner.2.x", "x")
    sim.turn()
    assert sim.state.steps["outer.1.inner"].meta == {"iterations": 2, "stopped": "max_iterations"}
    sim.succeed("outer.2.a", "A2")
    sim.turn()
    assert sim.launched["outer.2.inner.1.x"].step.args == {"outer": "A2", "i": 1}  # type: ignore[attr-defined]
    sim.run_all()
    assert sim.state.outcome == "succeeded"
    assert sim.state.loop_iterations == 2 + 2 * 2


def test_retrying_a_failed_loop_starts_over_at_iteration_one() -> None:
    sim = started_sim(flow(refine()))
    iterate(sim, 1, ok=False)
    sim.fail("refine.2.draft")
    sim.turn()
    assert sim.state.outcome == "failed"
    first = sim.state.steps["refine.1.draft"]
    sim.record(ev.StepRetryRequested(at=sim.now, step_id="refine"))
    sim.turn()
    assert sim.state.steps["refine"].status is StepStatus.WAITING
    assert sim.state.steps["refine"].generation == 1
    assert "refine.2.draft" not in sim.state.steps  # the earlier generation's, left the view
    again = sim.state.steps["refine.1.draft"]
    assert again is not first
    assert again.status is StepStatus.RUNNING
    assert again.generation == 1
    iterate(sim, 1, ok=True)
    assert sim.state.steps["refine"].meta == {"iterations": 1, "stopped": "until"}
    assert sim.state.outcome == "succeeded"


def test_cancelling_the_run_mid_iteration_cancels_the_loop_and_its_children() -> None:
    sim = started_sim(flow(refine()))
    sim.record(ev.RunCancelRequested(at=sim.now))
    sim.turn()
    assert sim.cancel_requests == ["refine.1.draft"]
    sim.cancelled("refine.1.draft", "run_cancelled")
    sim.turn()
    assert sim.state.steps["refine"].status is StepStatus.CANCELLED
    assert sim.state.steps["refine.1.check"].status is StepStatus.CANCELLED
    assert sim.state.outcome == "cancelled"


def test_retrying_another_step_after_a_cancel_does_not_run_stale_children() -> None:
    sim = started_sim(flow(refine(), py("side")))
    sim.record(ev.RunCancelRequested(at=sim.now))
    sim.turn()
    sim.cancelled("refine.1.draft", "run_cancelled")
    sim.cancelled("side", "run_cancelled")
    sim.turn()
    sim.record(ev.StepRetryRequested(at=sim.now, step_id="side"))
    started = sim.turn()
    assert "refine.1.check" not in started
    assert sorted(started) == ["refine.1.draft", "side"]  # the loop started over, once
    assert sim.state.loops["refine"].iterations == [["refine.1.draft", "refine.1.check"]]


def test_people_see_each_iteration_under_its_loop_nested_ones_deeper() -> None:
    inner = {"id": "inner", "kind": "loop", "max_iterations": 1, "steps": [py("x")]}
    outer = {"id": "outer", "kind": "loop", "max_iterations": 1, "steps": [py("a"), inner]}
    sim = Sim(make_state({"name": "n", "steps": [outer, py("last", "outer")]}))
    sim.run_all()
    shown = [(step.id, depth) for step, depth in display_order(sim.state)]
    assert shown == [
        ("outer", 0),
        ("outer.1.a", 1),
        ("outer.1.inner", 1),
        ("outer.1.inner.1.x", 2),
        ("last", 0),
    ]
    assert summary(sim.state)["outer.1.inner"] == {
        "iterations": [["outer.1.inner.1.x"]],
        "stopped": "max_iterations",
    }


def test_a_finished_loops_children_are_retried_through_the_loop_only() -> None:
    sim = started_sim(flow(refine()))
    sim.fail("refine.1.draft", error="no ink")
    sim.turn()
    assert sim.state.outcome == "failed"
    with pytest.raises(InvalidTransitionError, match="retry refine instead"):
        retry_event(sim.state, "refine.1.draft", sim.now)
    with pytest.raises(InvalidTransitionError, match="skip refine instead"):
        skip_event(sim.state, "refine.1.draft", sim.now)
    assert steps_in(sim.state, "retry", "failed", sim.now) == ["refine"]


def test_an_interrupted_body_step_is_retried_within_its_iteration() -> None:
    sim = started_sim(flow(refine()))
    iterate(sim, 1, ok=False)
    sim.record(ev.RunResumed(at=sim.now, interrupted=["refine.2.draft"]))
    sim.turn()
    assert sim.state.status == "waiting"  # a person decides what the crash left
    sim.record(retry_event(sim.state, "refine.2.draft", sim.now))
    assert sim.turn() == ["refine.2.draft"]
    iterate(sim, 2, ok=True)
    assert sim.state.steps["refine"].meta == {"iterations": 2, "stopped": "until"}
    assert sim.state.steps["refine.1.draft"].attempts == 1  # iteration 1 never ran again
