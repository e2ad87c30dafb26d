"""The scheduler's decisions: joins, conditions, priorities, limits, failures, retries."""

from __future__ import annotations

from typing import Any

from podium.core import events as ev
from podium.core.fold import replay
from podium.core.state import StepStatus

from .sim import Sim, make_state


def shell(step_id: str, *needs: str, **fields: Any) -> dict[str, Any]:
    return {"id": step_id, "kind": "shell", "run": "true", "needs": list(needs), **fields}


def wf(*steps: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": "t", "steps": list(steps), **fields}


def test_steps_start_the_moment_their_needs_are_done() -> None:
    sim = Sim(make_state(wf(shell("a"), shell("b"), shell("c", "a"), shell("d", "b"))))
    assert sorted(sim.turn()) == ["a", "b"]
    sim.succeed("a")
    assert sim.turn() == ["c"]  # no barrier: c starts while b still runs
    assert sim.state.running == {"b", "c"}


def test_run_succeeds_when_every_step_succeeds() -> None:
    sim = Sim(make_state(wf(shell("a"), shell("b", "a"), shell("c", "a", "b"))))
    sim.run_all()
    assert sim.state.outcome == "succeeded"
    assert isinstance(sim.log[-1], ev.RunCompleted)
    assert sim.started == ["a", "b", "c"]


def test_longest_remaining_path_goes_first_under_a_limit() -> None:
    doc = wf(
        shell("short", expected_seconds=1),
        shell("long", expected_seconds=5),
        shell("feeder", expected_seconds=1),
        shell("tail", "feeder", expected_seconds=10),
        max_concurrency=1,
    )
    sim = Sim(make_state(doc))
    assert sim.turn() == ["feeder"]  # 1 + 10 beats 5 beats 1
    sim.succeed("feeder")
    assert sim.turn() == ["tail"]


def test_max_concurrency_caps_starts() -> None:
    sim = Sim(make_state(wf(*(shell(f"s{i}") for i in range(10)), max_concurrency=3)))
    assert len(sim.turn()) == 3
    assert sim.turn() == []
    sim.succeed(sorted(sim.state.running)[0])
    assert len(sim.turn()) == 1


def test_any_join_fires_on_first_success_and_cancels_losers() -> None:
    doc = wf(shell("a"), shell("b"), shell("c"), shell("j", "a", "b", "c", join="any"))
    sim = Sim(make_state(doc))
    sim.turn()
    sim.succeed("b")
    assert sim.turn() == ["j"]
    assert sorted(sim.cancel_requests) == ["a", "c"]
    sim.cancelled("a")
    sim.cancelled("c")
    sim.succeed("j")
    sim.turn()
    assert sim.state.outcome == "succeeded"


def test_loser_with_another_dependent_is_not_cancelled() -> None:
    doc = wf(shell("a"), shell("b"), shell("j", "a", "b", join="any"), shell("k", "a"))
    sim = Sim(make_state(doc))
    sim.turn()
    sim.succeed("b")
    sim.turn()
    assert sim.cancel_requests == []


def test_quorum_join_and_impossible_quorum() -> None:
    doc = wf(
        shell("a"),
        shell("b"),
        shell("c"),
        shell("q", "a", "b", "c", join={"quorum": 2}),
        on_failure="collect",
    )
    sim = Sim(make_state(doc))
    sim.turn()
    sim.succeed("a")
    assert sim.turn() == []
    sim.fail("b")
    sim.turn()
    assert sim.state.steps["q"].status is StepStatus.PENDING
    sim.fail("c")
    sim.turn()
    assert sim.state.steps["q"].status is StepStatus.SKIPPED
    assert sim.state.steps["q"].reason == "upstream_failed"
    assert sim.state.outcome == "failed"


def test_fail_fast_cancels_everything_and_fails_the_run() -> None:
    sim = Sim(make_state(wf(shell("a"), shell("b"), shell("c", "a"))))
    sim.turn()
    sim.fail("a")
    sim.turn()
    assert sim.cancel_requests == ["b"]
    assert sim.state.steps["c"].status is StepStatus.CANCELLED
    assert sim.state.outcome is None  # b still running
    sim.cancelled("b", "fail_fast")
    sim.turn()
    assert sim.state.outcome == "failed"
    assert "a: boom" in (sim.state.completed_error or "")


def test_collect_keeps_independent_branches_running() -> None:
    doc = wf(shell("a"), shell("b"), shell("c", "a"), shell("d", "b"), on_failure="collect")
    sim = Sim(make_state(doc))
    sim.turn()
    sim.fail("a")
    sim.turn()
    assert sim.state.steps["c"].status is StepStatus.SKIPPED
    sim.succeed("b")
    assert sim.turn() == ["d"]
    sim.succeed("d")
    sim.turn()
    assert sim.state.outcome == "failed"


def test_allow_failure_lets_dependents_run_and_run_succeed() -> None:
    sim = Sim(make_state(wf(shell("a", allow_failure=True), shell("b", "a"))))
    sim.turn()
    sim.fail("a")
    assert sim.turn() == ["b"]
    sim.succeed("b")
    sim.turn()
    assert sim.state.outcome == "succeeded"


def test_when_false_skips_and_skip_propagates_unless_allowed() -> None:
    doc = wf(
        shell("a"),
        shell("b", "a", when="steps.a.output == 'go'"),
        shell("c", "b"),
        shell("d", "b", allow_skipped=True),
    )
    sim = Sim(make_state(doc))
    sim.turn()
    sim.succeed("a", "stop")
    assert sim.turn() == ["d"]
    assert sim.state.steps["b"].reason == "condition"
    assert sim.state.steps["c"].reason == "upstream_skipped"


def test_when_true_starts_and_bad_condition_fails_the_step() -> None:
    sim = Sim(make_state(wf(shell("a"), shell("b", "a", when="${{ steps.a.output == 'go' }}"))))
    sim.turn()
    sim.succeed("a", "go")
    assert sim.turn() == ["b"]
    sim2 = Sim(make_state(wf(shell("a", when="inputs.x > 'a'")), {"x": 3}))
    sim2.turn()
    assert sim2.state.steps["a"].status is StepStatus.FAILED
    assert sim2.state.steps["a"].error_type == "condition"


def test_retry_parks_a_timer_then_restarts_with_the_next_attempt() -> None:
    doc = wf(shell("a", retry={"max_attempts": 3, "initial_delay_seconds": 2, "jitter": 0}))
    sim = Sim(make_state(doc))
    sim.turn()
    event = sim.fail("a", retryable=True)
    assert isinstance(event, ev.StepRetrying)
    assert (event.retry_at - sim.now).total_seconds() == 2
    assert sim.turn() == []
    assert decide_wake(sim) == event.retry_at
    sim.advance(2)
    assert sim.turn() == ["a"]
    assert sim.state.steps["a"].attempts == 2
    second = sim.fail("a", retryable=True)
    assert isinstance(second, ev.StepRetrying)
    assert (second.retry_at - sim.now).total_seconds() == 4
    sim.advance(4)
    sim.turn()
    assert isinstance(sim.fail("a", retryable=True), ev.StepFailed)


def decide_wake(sim: Sim) -> object:
    from podium.core.scheduler import decide

    return decide(sim.state, sim.now).wake_at


def test_non_retryable_errors_fail_at_once() -> None:
    sim = Sim(make_state(wf(shell("a", retry=5))))
    sim.turn()
    assert isinstance(sim.fail("a", retryable=False), ev.StepFailed)


def test_jitter_is_deterministic_and_bounded() -> None:
    doc = wf(shell("a", retry={"max_attempts": 2, "initial_delay_seconds": 10, "jitter": 0.5}))
    delays = set()
    for _ in range(2):
        sim = Sim(make_state(doc))
        sim.turn()
        event = sim.fail("a", retryable=True)
        assert isinstance(event, ev.StepRetrying)
        delays.add((event.retry_at - sim.now).total_seconds())
    assert len(delays) == 1
    assert 5 <= delays.pop() <= 15


def test_manual_retry_reopens_a_failed_run() -> None:
    sim = Sim(make_state(wf(shell("a"), shell("b", "a"), shell("c"))))
    sim.turn()
    sim.succeed("c")
    sim.fail("a")
    sim.turn()
    assert sim.state.outcome == "failed"
    from podium.core.control import retry_event

    sim.record(retry_event(sim.state, "a", sim.now))
    assert sim.state.outcome is None
    assert sim.turn() == ["a"]
    assert sim.state.steps["a"].generation == 1
    assert sim.state.steps["a"].attempts == 1
    sim.succeed("a")
    assert sim.turn() == ["b"]
    sim.succeed("b")
    sim.turn()
    assert sim.state.outcome == "succeeded"
    assert sim.statuses() == {"a": "succeeded", "b": "succeeded", "c": "succeeded"}


def test_cancel_request_cancels_running_and_pending() -> None:
    sim = Sim(make_state(wf(shell("a"), shell("b", "a"))))
    sim.turn()
    sim.record(ev.RunCancelRequested(at=sim.now))
    sim.turn()
    assert sim.cancel_requests == ["a"]
    assert sim.state.steps["b"].status is StepStatus.CANCELLED
    sim.cancelled("a", "run_cancelled")
    sim.turn()
    assert sim.state.outcome == "cancelled"


def test_replay_of_the_log_gives_the_same_state() -> None:
    doc = wf(shell("a"), shell("b", "a"), shell("c", "a", when="steps.a.output == 'no'"))
    sim = Sim(make_state(doc))
    sim.run_all()
    first = ev.RunCreated(
        at=sim.state.created_at, run_id="run_test", workflow=doc, inputs={}, workspace="/tmp"
    )
    again = replay([first, *sim.log])
    assert again.status == sim.state.status == "succeeded"
    assert {k: s.status for k, s in again.steps.items()} == {
        k: s.status for k, s in sim.state.steps.items()
    }
    assert again.seq == len(sim.log) + 1


def test_resume_requeues_idempotent_and_interrupts_the_rest() -> None:
    from podium.core.happenings import TakenOver

    doc = wf(shell("side"), {"id": "get", "kind": "http", "url": "http://x"}, shell("z", "side"))
    sim = Sim(make_state(doc))
    sim.turn()
    (resumed,) = sim.happen(TakenOver(crashed=True))
    assert isinstance(resumed, ev.RunResumed)
    assert resumed.requeued == ["get"]
    assert resumed.interrupted == ["side"]
    assert resumed.recovery == 1
    assert sim.turn() == ["get"]
    assert sim.state.steps["get"].attempts == 1  # the same attempt, re-run
    sim.succeed("get")
    sim.turn()
    assert sim.state.status == "waiting"
    from podium.core.control import skip_event

    sim.record(skip_event(sim.state, "side", sim.now))
    sim.turn()
    assert sim.state.outcome == "succeeded"
    assert sim.state.steps["z"].reason == "upstream_skipped"
