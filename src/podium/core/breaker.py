"""Circuit breakers per key (a `provider:model` string or an agent name) and fallback routing.

Pure: each transition takes the state, the policy and `now`, and returns the new state plus, when
the status changed, a `Transition` the runtime records as an event.

closed ──threshold consecutive failures──► open ──cooldown passed, a call asks──► half_open
half_open ──a trial fails──► open;  half_open ──success_threshold trial successes──► closed

Each opening starts a new `generation`. Pass the generation of the state that admitted a call to
`on_success`/`on_failure`: outcomes of calls admitted before the breaker last opened are stale
and ignored, so a slow call from an earlier episode can neither close the breaker nor free a
half-open trial slot it never held.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

from podium.spec.model import parse_duration


class BreakerStatus(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerPolicy(BaseModel):
    """When a breaker opens, how long it stays open, and how it tests the water again."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    failure_threshold: int = Field(5, ge=1)
    cooldown_seconds: float = Field(30.0, ge=0)
    half_open_max_calls: int = Field(1, ge=1)
    success_threshold: int = Field(1, ge=1)

    @field_validator("cooldown_seconds", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerState:
    key: str
    status: BreakerStatus = BreakerStatus.CLOSED
    consecutive_failures: int = 0
    opened_at: datetime | None = None
    half_open_in_flight: int = 0
    half_open_successes: int = 0
    generation: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Transition:
    """A breaker changed status; the runtime records it (breaker opened/half-opened/closed)."""

    key: str
    from_status: BreakerStatus
    to_status: BreakerStatus
    reason: str
    at: datetime


class Outcome(NamedTuple):
    state: BreakerState
    transition: Transition | None


class Admission(NamedTuple):
    allowed: bool
    state: BreakerState
    transition: Transition | None


def half_open_at(state: BreakerState, policy: BreakerPolicy) -> datetime | None:
    """When an open breaker lets a trial call through; None unless it is open."""
    if state.status is not BreakerStatus.OPEN or state.opened_at is None:
        return None
    return state.opened_at + timedelta(seconds=policy.cooldown_seconds)


def allow(state: BreakerState, policy: BreakerPolicy, now: datetime) -> Admission:
    """May a call go through now? Admitting a half-open trial takes one of its slots."""
    if state.status is BreakerStatus.CLOSED:
        return Admission(True, state, None)
    if state.status is BreakerStatus.OPEN:
        due = half_open_at(state, policy)
        if due is None or now < due:
            return Admission(False, state, None)
        reason = f"cooldown of {policy.cooldown_seconds:g}s passed"
        state, transition = _move(state, BreakerStatus.HALF_OPEN, reason, now)
    else:
        transition = None
    if state.half_open_in_flight >= policy.half_open_max_calls:
        return Admission(False, state, transition)
    return Admission(
        True, replace(state, half_open_in_flight=state.half_open_in_flight + 1), transition
    )


def on_success(
    state: BreakerState, policy: BreakerPolicy, now: datetime, generation: int | None = None
) -> Outcome:
    """A call admitted at `generation` (None: the current one) succeeded."""
    if _stale(state, generation) or state.status is BreakerStatus.OPEN:
        return Outcome(state, None)
    if state.status is BreakerStatus.CLOSED:
        return Outcome(replace(state, consecutive_failures=0), None)
    state = replace(
        state,
        half_open_in_flight=max(state.half_open_in_flight - 1, 0),
        half_open_successes=state.half_open_successes + 1,
    )
    if state.half_open_successes < policy.success_threshold:
        return Outcome(state, None)
    reason = f"{state.half_open_successes} trial call(s) succeeded"
    return Outcome(*_move(state, BreakerStatus.CLOSED, reason, now))


def on_failure(
    state: BreakerState, policy: BreakerPolicy, now: datetime, generation: int | None = None
) -> Outcome:
    """A call admitted at `generation` (None: the current one) failed."""
    if _stale(state, generation) or state.status is BreakerStatus.OPEN:
        return Outcome(state, None)
    if state.status is BreakerStatus.HALF_OPEN:
        return Outcome(*_move(state, BreakerStatus.OPEN, "a trial call failed", now))
    failures = state.consecutive_failures + 1
    state = replace(state, consecutive_failures=failures)
    if failures < policy.failure_threshold:
        return Outcome(state, None)
    return Outcome(*_move(state, BreakerStatus.OPEN, f"{failures} consecutive failures", now))


def _stale(state: BreakerState, generation: int | None) -> bool:
    return generation is not None and generation != state.generation


def _move(
    state: BreakerState, to: BreakerStatus, reason: str, now: datetime
) -> tuple[BreakerState, Transition]:
    if to is BreakerStatus.OPEN:
        new = replace(
            state,
            status=to,
            opened_at=now,
            half_open_in_flight=0,
            half_open_successes=0,
            generation=state.generation + 1,
        )
    elif to is BreakerStatus.HALF_OPEN:
        new = replace(state, status=to, half_open_in_flight=0, half_open_successes=0)
    else:
        new = BreakerState(key=state.key, generation=state.generation)
    transition = Transition(
        key=state.key, from_status=state.status, to_status=to, reason=reason, at=now
    )
    return new, transition


# Routing ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Skipped:
    """A candidate agent passed over because the breaker at `key` refused it."""

    agent: str
    key: str
    status: BreakerStatus
    half_open_at: datetime | None


class Routing(NamedTuple):
    """`agent` is the chosen candidate (None when every breaker refused); `breakers` holds the
    updated states to keep (the admitted keys took half-open trial slots); `skipped` lists the
    candidates passed over, in order, with the breaker that refused each."""

    agent: str | None
    breakers: Mapping[str, BreakerState]
    transitions: tuple[Transition, ...]
    skipped: tuple[Skipped, ...]


def route(
    agent: str,
    fallbacks: Sequence[str],
    breakers: Mapping[str, BreakerState],
    policy: BreakerPolicy,
    now: datetime,
    models: Mapping[str, str] | None = None,
) -> Routing:
    """The first of [agent, *fallbacks] whose own breaker and its model's breaker (from
    `models`, agent → `provider:model`) both allow a call. Missing breakers start closed."""
    states = dict(breakers)
    skipped: list[Skipped] = []
    for candidate in (agent, *fallbacks):
        keys = _keys(candidate, models)
        admissions = [allow(states.get(k) or BreakerState(key=k), policy, now) for k in keys]
        refused = [a.state for a in admissions if not a.allowed]
        if refused:
            skipped += [_skipped(candidate, s, policy) for s in refused]
            continue
        states.update((a.state.key, a.state) for a in admissions)
        moved = tuple(a.transition for a in admissions if a.transition is not None)
        return Routing(candidate, states, moved, tuple(skipped))
    return Routing(None, states, (), tuple(skipped))


def unavailable_message(routing: Routing) -> str:
    """Why no candidate could take the call: each refusing breaker and when it half-opens."""
    refusals = "; ".join(_refusal(s) for s in routing.skipped)
    return (
        f"every candidate's circuit breaker refused the call: {refusals}; "
        "retry after the cooldown, or give the agent fallbacks on other models"
    )


def _refusal(skipped: Skipped) -> str:
    when = skipped.half_open_at
    tail = f"until {when.isoformat()}" if when else "with its trial calls in flight"
    return f"{skipped.key} (for {skipped.agent}) is {skipped.status} {tail}"


def _keys(agent: str, models: Mapping[str, str] | None) -> tuple[str, ...]:
    model = (models or {}).get(agent)
    return (agent,) if model is None or model == agent else (agent, model)


def _skipped(agent: str, state: BreakerState, policy: BreakerPolicy) -> Skipped:
    return Skipped(
        agent=agent, key=state.key, status=state.status, half_open_at=half_open_at(state, policy)
    )
