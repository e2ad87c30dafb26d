"""Circuit breakers: closed → open → half-open → closed, stale outcomes, and fallback routing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from podium.core.breaker import (
    BreakerPolicy,
    BreakerState,
    BreakerStatus,
    allow,
    half_open_at,
    on_failure,
    on_success,
    route,
    unavailable_message,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
OPEN, HALF_OPEN, CLOSED = BreakerStatus.OPEN, BreakerStatus.HALF_OPEN, BreakerStatus.CLOSED
POLICY = BreakerPolicy(failure_threshold=3, cooldown_seconds=30)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def failed(state: BreakerState, times: int, now: datetime = T0) -> BreakerState:
    for _ in range(times):
        state = on_failure(state, POLICY, now).state
    return state


def opened(key: str = "openai:gpt-4o") -> BreakerState:
    return failed(BreakerState(key=key), POLICY.failure_threshold)


def test_policy_defaults_and_durations() -> None:
    policy = BreakerPolicy()
    assert (policy.failure_threshold, policy.cooldown_seconds) == (5, 30.0)
    assert (policy.half_open_max_calls, policy.success_threshold) == (1, 1)
    assert BreakerPolicy(cooldown_seconds="2m").cooldown_seconds == 120.0


def test_opens_after_threshold_consecutive_failures() -> None:
    state = failed(BreakerState(key="m"), 2)
    assert state.status is CLOSED
    state, transition = on_failure(state, POLICY, at(1))
    assert state.status is OPEN
    assert state.opened_at == at(1)
    assert transition is not None
    assert (transition.key, transition.from_status, transition.to_status) == ("m", CLOSED, OPEN)
    assert transition.reason == "3 consecutive failures"


def test_a_success_resets_the_failure_count() -> None:
    state = failed(BreakerState(key="m"), 2)
    state = on_success(state, POLICY, T0).state
    assert failed(state, 2).status is CLOSED


def test_open_refuses_until_the_cooldown_then_half_opens_for_one_trial() -> None:
    state = opened()
    assert half_open_at(state, POLICY) == at(30)
    assert allow(state, POLICY, at(29.9)) == (False, state, None)
    allowed, state, transition = allow(state, POLICY, at(30))
    assert allowed
    assert state.status is HALF_OPEN
    assert state.half_open_in_flight == 1
    assert transition is not None
    assert (transition.from_status, transition.to_status) == (OPEN, HALF_OPEN)
    assert not allow(state, POLICY, at(31)).allowed


def test_trial_success_closes() -> None:
    state = allow(opened(), POLICY, at(30)).state
    state, transition = on_success(state, POLICY, at(31))
    assert state == BreakerState(key="openai:gpt-4o", generation=1)
    assert transition is not None
    assert transition.to_status is CLOSED


def test_trial_failure_reopens_with_a_fresh_cooldown() -> None:
    state = allow(opened(), POLICY, at(30)).state
    state, transition = on_failure(state, POLICY, at(40))
    assert (state.status, state.opened_at, state.generation) == (OPEN, at(40), 2)
    assert transition is not None
    assert (transition.from_status, transition.reason) == (HALF_OPEN, "a trial call failed")
    assert not allow(state, POLICY, at(60)).allowed


def test_success_threshold_and_several_trials() -> None:
    policy = BreakerPolicy(failure_threshold=1, half_open_max_calls=2, success_threshold=2)
    state = on_failure(BreakerState(key="m"), policy, T0).state
    state = allow(state, policy, at(30)).state
    state = allow(state, policy, at(30)).state
    assert not allow(state, policy, at(30)).allowed
    state, transition = on_success(state, policy, at(31))
    assert (state.status, state.half_open_in_flight, transition) == (HALF_OPEN, 1, None)
    assert allow(state, policy, at(31)).allowed
    assert on_success(state, policy, at(32)).state.status is CLOSED


def test_outcomes_of_calls_admitted_before_the_last_opening_are_ignored() -> None:
    old = BreakerState(key="m").generation
    state = allow(opened("m"), POLICY, at(30)).state
    assert on_success(state, POLICY, at(31), generation=old) == (state, None)
    assert on_failure(state, POLICY, at(31), generation=old) == (state, None)
    assert on_success(state, POLICY, at(31), generation=state.generation).state.status is CLOSED


def test_outcomes_while_open_change_nothing() -> None:
    state = opened()
    assert on_failure(state, POLICY, at(1)) == (state, None)
    assert on_success(state, POLICY, at(1)) == (state, None)


# Routing ------------------------------------------------------------------------------------

MODELS = {"writer": "openai:gpt-4o", "backup": "anthropic:claude", "cheap": "openai:gpt-4o"}


def test_route_picks_the_agent_when_its_breakers_are_closed() -> None:
    routing = route("writer", ["backup"], {}, POLICY, T0, MODELS)
    assert routing.agent == "writer"
    assert routing.skipped == ()
    assert routing.transitions == ()


def test_route_falls_back_when_the_agents_model_is_open() -> None:
    breakers = {"openai:gpt-4o": opened()}
    routing = route("writer", ["cheap", "backup"], breakers, POLICY, at(5), MODELS)
    assert routing.agent == "backup"
    assert [(s.agent, s.key) for s in routing.skipped] == [
        ("writer", "openai:gpt-4o"),
        ("cheap", "openai:gpt-4o"),
    ]
    assert routing.skipped[0].half_open_at == at(30)


def test_route_checks_the_agent_breaker_too() -> None:
    routing = route("writer", ["backup"], {"writer": opened("writer")}, POLICY, T0, MODELS)
    assert routing.agent == "backup"


def test_route_takes_a_half_open_trial_slot_only_for_the_chosen_agent() -> None:
    breakers = {
        "writer": opened("writer"),
        "openai:gpt-4o": failed(BreakerState(key="openai:gpt-4o"), 3, at(20)),
    }
    routing = route("writer", ["backup"], breakers, POLICY, at(31), MODELS)
    assert routing.agent == "backup"
    assert routing.breakers["writer"] == breakers["writer"]  # not half-opened for nothing
    assert routing.transitions == ()
    routing = route("writer", [], {"writer": opened("writer")}, POLICY, at(31), MODELS)
    assert routing.agent == "writer"
    assert routing.breakers["writer"].half_open_in_flight == 1
    assert [t.to_status for t in routing.transitions] == [HALF_OPEN]


def test_route_returns_none_with_every_refusal_when_all_are_open() -> None:
    breakers = {"openai:gpt-4o": opened(), "anthropic:claude": opened("anthropic:claude")}
    routing = route("writer", ["backup"], breakers, POLICY, at(1), MODELS)
    assert routing.agent is None
    message = unavailable_message(routing)
    assert "openai:gpt-4o (for writer) is open until 2025-01-01T00:00:30+00:00" in message
    assert "anthropic:claude (for backup) is open" in message
    assert message.endswith("give the agent fallbacks on other models")


def test_route_without_models_uses_agent_keys_only() -> None:
    routing = route("a", ["b"], {"a": opened("a")}, POLICY, T0)
    assert routing.agent == "b"


# Properties ---------------------------------------------------------------------------------


@dataclass
class Call:
    generation: int
    trial: bool


@dataclass
class Model:
    """A driver that holds the calls in flight and a reference failure count."""

    policy: BreakerPolicy
    state: BreakerState = field(default_factory=lambda: BreakerState(key="m"))
    now: datetime = T0
    calls: list[Call] = field(default_factory=list)
    streak: int = 0

    def call(self) -> None:
        before = self.state.status
        allowed, self.state, _ = allow(self.state, self.policy, self.now)
        assert allowed or before is not CLOSED
        if allowed:
            self.calls.append(Call(self.state.generation, self.state.status is HALF_OPEN))

    def finish(self, index: int, ok: bool) -> None:
        if not self.calls:
            return
        call = self.calls.pop(index % len(self.calls))
        before = self.state
        outcome = on_success if ok else on_failure
        self.state, transition = outcome(before, self.policy, self.now, call.generation)
        self._check_streak(before, call, ok)
        assert (transition is None) == (before.status is self.state.status)

    def _check_streak(self, before: BreakerState, call: Call, ok: bool) -> None:
        if before.status is not CLOSED or call.generation != before.generation:
            return
        self.streak = 0 if ok else self.streak + 1
        opens = self.streak == self.policy.failure_threshold
        assert (self.state.status is OPEN) == opens
        if opens:
            self.streak = 0

    def trials_in_flight(self) -> int:
        current = self.state.generation
        return sum(c.trial and c.generation == current for c in self.calls)


Op = tuple[str, int, bool, float]
operations = st.tuples(
    st.sampled_from(["call", "finish", "advance"]),
    st.integers(0, 50),
    st.booleans(),
    st.floats(0, 40),
)


@settings(max_examples=400, deadline=None)
@given(
    threshold=st.integers(1, 4),
    max_calls=st.integers(1, 3),
    successes=st.integers(1, 3),
    ops=st.lists(operations, max_size=80),
)
def test_breaker_properties(threshold: int, max_calls: int, successes: int, ops: list[Op]) -> None:
    policy = BreakerPolicy(
        failure_threshold=threshold,
        cooldown_seconds=10,
        half_open_max_calls=max_calls,
        success_threshold=successes,
    )
    model = Model(policy)
    for name, index, ok, seconds in ops:
        if name == "call":
            model.call()
        elif name == "finish":
            model.finish(index, ok)
        else:
            model.now += timedelta(seconds=seconds)
        if model.state.status is HALF_OPEN:
            assert model.trials_in_flight() == model.state.half_open_in_flight <= max_calls
