"""A deterministic in-test driver for the pure core: decide, apply, complete steps by choice."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from podium.core import events as ev
from podium.core.fold import apply, new_state
from podium.core.scheduler import decide, failure_event
from podium.core.state import RunState
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
    """Applies decisions to a fixpoint like the runtime does, recording every event."""

    def __init__(self, state: RunState, now: datetime = T0) -> None:
        self.state = state
        self.now = now
        self.log: list[ev.Event] = []
        self.started: list[str] = []
        self.cancel_requests: list[str] = []

    def record(self, event: ev.Event) -> None:
        apply(self.state, event)
        self.log.append(event)

    def turn(self, slots: int | None = None) -> list[str]:
        started: list[str] = []
        while True:
            decision = decide(self.state, self.now, slots=slots)
            for event in decision.events:
                self.record(event)
            started += decision.start
            slots = None if slots is None else slots - len(decision.start)
            if not decision.events:
                self.cancel_requests += [
                    c for c in decision.cancel if c not in self.cancel_requests
                ]
                self.started += started
                return started

    def succeed(self, step_id: str, output: Any = None) -> None:
        self.record(ev.StepSucceeded(at=self.now, step_id=step_id, output=output))

    def fail(self, step_id: str, *, retryable: bool = False, error: str = "boom") -> ev.Event:
        attempt = self.state.steps[step_id].attempts
        event = failure_event(
            self.state,
            step_id,
            attempt=attempt,
            error=error,
            retryable=retryable,
            error_type="exit",
            now=self.now,
        )
        self.record(event)
        return event

    def cancelled(self, step_id: str, reason: ev.CancelReason = "lost_race") -> None:
        self.record(ev.StepCancelled(at=self.now, step_id=step_id, reason=reason))

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
