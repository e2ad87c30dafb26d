"""Drives one run: fold outcomes into the state, decide, commit the turn's events in one append,
then launch what was started. Exactly one driver per run, holding the run's lease."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from podium.clock import Clock
from podium.core import events as ev
from podium.core.control import (
    approve_event,
    cancel_event,
    reject_event,
    retry_event,
    skip_event,
)
from podium.core.fold import apply
from podium.core.outputs import cap_output
from podium.core.scheduler import Decision, decide, failure_event, recover, stop_reason
from podium.core.state import RunState, StepStatus
from podium.errors import InvalidTransitionError, PodiumError
from podium.runtime.attempt import Channels, Outcome, run_attempt
from podium.runtime.bus import EventBus
from podium.spec.model import PlanStep
from podium.steps import procs
from podium.store.base import EventStore, Lease, Signal, StoredEvent

SIGNAL_POLL_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class _Report:
    step_id: str
    kind: str
    data: dict[str, Any]


_Item = Outcome | _Report | tuple[str, str] | None
LEASE_TTL_SECONDS = 15.0


class RunDriver:
    """The turn loop of one run. `drive()` returns when the run completes or parks."""

    def __init__(
        self,
        *,
        state: RunState,
        store: EventStore,
        lease: Lease,
        bus: EventBus,
        clock: Clock,
        slots: Callable[[], int | None] = lambda: None,
        services: Any = None,
    ) -> None:
        self.state = state
        self._store = store
        self.lease = lease
        self._bus = bus
        self._clock = clock
        self._slots = slots
        self._services = services
        self._committed_seq = state.seq
        self._buffer: list[ev.Event] = []
        self._consumed: list[int] = []
        self._inbox: deque[_Item] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._tasks: dict[str, asyncio.Task[Outcome]] = {}
        self._cancelling: dict[str, ev.CancelReason] = {}
        self._signals_at = 0.0
        self._lost: PodiumError | None = None

    # -------------------------------------------------------------------------- public

    def poke(self) -> None:
        """Wake the loop now (a control signal was posted for this run)."""
        self._post(None)

    async def drive(self, *, resumed: bool = False) -> RunState:
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            if resumed:
                await self._take_over()
            await self._loop()
        finally:
            heartbeat.cancel()
            await self._abandon_tasks()
            self._bus.close_run(self.state.run_id)
        return self.state

    # ---------------------------------------------------------------------------- loop

    async def _loop(self) -> None:
        await self._take_signals()
        while True:
            decision = self._decide_until_stable()
            await self._commit()
            self._launch(decision)
            if self._finished():
                return
            await self._wait(decision.wake_at)

    def _finished(self) -> bool:
        if self._tasks:
            return False
        state = self.state
        return state.outcome is not None or (not state.retrying and state.status == "waiting")

    def _decide_until_stable(self) -> Decision:
        """Apply decisions until the core has nothing more to say this turn."""
        starts: list[str] = []
        while True:
            decision = decide(self.state, self._clock.now(), slots=self._slots())
            for event in decision.events:
                self._record(event)
            starts += decision.start
            if not decision.events:
                return Decision(start=starts, cancel=decision.cancel, wake_at=decision.wake_at)

    def _record(self, event: ev.Event) -> None:
        apply(self.state, event)
        self._buffer.append(event)

    async def _commit(self) -> None:
        if not self._buffer:
            return
        events, self._buffer = self._buffer, []
        consumed, self._consumed = self._consumed, []
        first = self._committed_seq + 1
        self._committed_seq = await self._store.append(
            self.state.run_id,
            events,
            expected_seq=self._committed_seq,
            epoch=self.lease.epoch,
            status=self.state.status,  # type: ignore[arg-type]
            consumed_signals=consumed,
        )
        stored = [StoredEvent(self.state.run_id, first + i, e) for i, e in enumerate(events)]
        self._bus.publish(self.state.run_id, stored)

    def _launch(self, decision: Decision) -> None:
        state = self.state
        for step_id in decision.start:
            task = asyncio.create_task(
                run_attempt(state, state.steps[step_id], self._channels(step_id))
            )
            task.add_done_callback(functools.partial(self._on_done, step_id))
            self._tasks[step_id] = task
        for step_id in decision.cancel:
            running = self._tasks.get(step_id)
            if running is not None and step_id not in self._cancelling:
                self._cancelling[step_id] = self._cancel_reason()
                running.cancel()

    def _channels(self, step_id: str) -> Channels:
        return Channels(
            report=functools.partial(self._report, step_id),
            on_delta=functools.partial(self._bus.publish_delta, self.state.run_id, step_id),
            services=self._services,
        )

    def _report(self, step_id: str, kind: str, data: dict[str, Any]) -> None:
        self._post(_Report(step_id, kind, data))

    def _cancel_reason(self) -> ev.CancelReason:
        return stop_reason(self.state.stopping)

    def _on_done(self, step_id: str, task: asyncio.Task[Outcome]) -> None:
        if self._tasks.get(step_id) is not task:
            return
        if task.cancelled():
            self._post(("cancelled", step_id))
        else:
            self._post(task.result())

    def _post(self, item: _Item) -> None:
        self._inbox.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self, wake_at: datetime | None) -> None:
        """Sleep until an outcome or a poke arrives, a parked timer is due, or signals are due."""
        if not self._inbox:
            timeout = SIGNAL_POLL_SECONDS
            if wake_at is not None:
                timeout = min(timeout, max((wake_at - self._clock.now()).total_seconds(), 0.0))
            await self._sleep(timeout)
        poked = False
        while self._inbox:
            item = self._inbox.popleft()
            poked = poked or item is None
            self._absorb(item)
        if self._lost is not None:
            raise self._lost
        if poked or self._clock.monotonic() - self._signals_at >= SIGNAL_POLL_SECONDS:
            await self._take_signals()

    async def _sleep(self, seconds: float) -> None:
        """Wait for `_post` or the timeout, without a task per wait (this is the hot path)."""
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(seconds, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _absorb(self, item: _Item) -> None:
        if item is None:
            return
        if isinstance(item, _Report):
            self._record_report(item.step_id, item.kind, item.data)
            return
        if isinstance(item, tuple):
            step_id = item[1]
            self._tasks.pop(step_id, None)
            reason = self._cancelling.pop(step_id, "run_cancelled")
            self._record(ev.StepCancelled(at=self._clock.now(), step_id=step_id, reason=reason))
            return
        self._tasks.pop(item.step_id, None)
        self._cancelling.pop(item.step_id, None)
        if self.state.steps[item.step_id].status is not StepStatus.RUNNING:
            return
        self._record(self._outcome_event(item))

    def _record_report(self, step_id: str, kind: str, data: dict[str, Any]) -> None:
        """Record what an attempt reported (a model call and its usage). A malformed report is an
        executor bug; it is dropped rather than allowed to stop the run."""
        payload = {**data, "kind": kind, "at": self._clock.now(), "step_id": step_id}
        try:
            event = ev.EVENT_ADAPTER.validate_python(payload)
        except ValueError:
            return
        self._record(event)

    def _outcome_event(self, outcome: Outcome) -> ev.Event:
        now = self._clock.now()
        step = self.state.steps[outcome.step_id]
        if outcome.error is None and isinstance(step.spec, PlanStep):
            record = self.state.plans.get(step.id)
            version = len(record.versions) + 1 if record is not None else 1
            return ev.PlanGenerated(at=now, step_id=step.id, version=version, plan=outcome.output)
        if outcome.error is None:
            output, truncated = cap_output(outcome.output, self.state.workflow.output_limit_bytes)
            return ev.StepSucceeded(
                at=now,
                step_id=outcome.step_id,
                output=output,
                truncated=truncated,
                meta=outcome.meta,
            )
        return failure_event(
            self.state,
            outcome.step_id,
            attempt=outcome.attempt,
            error=outcome.error,
            retryable=outcome.retryable,
            error_type=outcome.error_type,
            now=now,
        )

    # ------------------------------------------------------------------------- signals

    async def _take_signals(self) -> None:
        self._signals_at = self._clock.monotonic()
        for signal in await self._store.pending_signals(self.state.run_id):
            self._consumed.append(signal.id)
            with contextlib.suppress(InvalidTransitionError):
                self._record(self._signal_event(signal))

    def _signal_event(self, signal: Signal) -> ev.Event:
        now = self._clock.now()
        step_id = str(signal.payload.get("step_id", ""))
        if signal.kind == "cancel":
            return cancel_event(self.state, now, str(signal.payload.get("reason", "")))
        if signal.kind == "retry":
            return retry_event(self.state, step_id, now)
        if signal.kind == "approve":
            plan = signal.payload.get("plan")
            return approve_event(self.state, step_id or None, now, plan)
        if signal.kind == "reject":
            reason = str(signal.payload.get("reason", ""))
            return reject_event(self.state, step_id or None, now, reason)
        return skip_event(self.state, step_id, now)

    # ----------------------------------------------------------------------- lifecycle

    async def _take_over(self) -> None:
        """Stop process groups a dead driver left running, then requeue or interrupt its steps."""
        in_flight = sorted(self.state.running)
        if not in_flight:
            return
        state = self.state
        stopped = await asyncio.to_thread(
            procs.stop_leftovers, state.workspace_path, state.run_id, in_flight
        )
        resumed = recover(state, self._clock.now())
        self._record(resumed.model_copy(update={"stopped": stopped}))

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(LEASE_TTL_SECONDS / 3)
            try:
                self.lease = await self._store.renew_lease(
                    self.lease, ttl_seconds=LEASE_TTL_SECONDS
                )
            except PodiumError as exc:  # taken over: stop driving, commit nothing more
                self._lost = exc
                self.poke()
                return

    async def _abandon_tasks(self) -> None:
        """On exit (normal or not) cancel leftover attempts without recording anything: a
        later resume sees them in flight and requeues or interrupts them."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


__all__ = ["LEASE_TTL_SECONDS", "PodiumError", "RunDriver"]
