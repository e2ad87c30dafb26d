"""A deterministic in-test driver for the pure core: it calls the same `take_turn` the runtime
does, and completes steps by choice instead of running them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from podium.core import events as ev
from podium.core.fold import apply, new_state
from podium.core.happenings import AttemptCancelled, AttemptOutcome, Happening, Launch
from podium.core.state import RunState
from podium.core.turn import absorb, take_turn
from podium.spec.model import Workflow

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_state(doc: dict[str, Any], inputs: dict[str, Any] | None = None) -> RunState:
    wf = Workflow.model_validate(doc)
    created = ev.RunCreated(
        at=T0,
        run_id="run_test",
        workflow=wf.model_dump(mode="json", exclude_unset=True),
        inputs=inputs or {},
        workspace="/tmp",
    )
    return new_state(created, wf)


class Sim:
    """Takes turns like the runtime does, recording every event; attempts finish when told."""

    def __init__(self, state: RunState, now: datetime = T0) -> None:
        self.state = state
        self.now = now
        self.log: list[ev.Event] = []
        self.started: list[str] = []
        self.launched: dict[str, Launch] = {}
        self.cancel_requests: list[str] = []

    def record(self, event: ev.Event) -> None:
        apply(self.state, event)
        self.log.append(event)

    def turn(self) -> list[str]:
        """One turn with nothing new reported: what it started."""
        turn = take_turn(self.state, (), self.now)
        self.log += turn.events
        self.cancel_requests += [c for c in turn.cancel if c not in self.cancel_requests]
        started = [launch.step_id for launch in turn.launch]
        self.launched |= {launch.step_id: launch for launch in turn.launch}
        self.started += started
        return started

    def happen(self, happening: Happening) -> list[ev.Event]:
        """Fold one happening the way a turn does (without deciding): the events it became."""
        events = absorb(self.state, happening, self.now)
        self.log += events
        return events

    def succeed(self, step_id: str, output: Any = None) -> None:
        attempt = self.state.steps[step_id].attempts
        self.happen(AttemptOutcome(step_id, attempt, output=output))

    def fail(self, step_id: str, *, retryable: bool = False, error: str = "boom") -> ev.Event:
        attempt = self.state.steps[step_id].attempts
        outcome = AttemptOutcome(
            step_id, attempt, error=error, retryable=retryable, error_type="exit"
        )
        (event,) = self.happen(outcome)
        return event

    def cancelled(self, step_id: str, reason: ev.CancelReason = "lost_race") -> None:
        self.happen(AttemptCancelled(step_id, reason))

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def run_all(self, choose: Callable[[list[str]], str] = min, output: Any = "ok") -> None:
        """Turn, complete one running step, repeat until nothing runs."""
        self.turn()
        while self.state.running:
            self.succeed(choose(sorted(self.state.running)), output)
            self.turn()

    def statuses(self) -> dict[str, str]:
        return {sid: str(s.status) for sid, s in self.state.steps.items()}
