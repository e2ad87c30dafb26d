"""Drives one run while it holds the run's lease: gather what happened, take a turn (the core's
pure `take_turn`), commit the turn's events in one append, then launch and cancel attempts through
the execution backend. It returns when the run completes, waits for a person, or parks on a timer
far enough away that holding a task for it would be waste."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Protocol

from podium.clock import Clock
from podium.core import events as ev
from podium.core.happenings import (
    MAX_RECOVERIES,
    AttemptCancelled,
    AttemptOutcome,
    ControlSignal,
    Happening,
    Report,
    TakenOver,
)
from podium.core.redact import StreamRedactor
from podium.core.state import RunState
from podium.core.turn import Turn, take_turn
from podium.errors import ConcurrencyError, PodiumError, StepExecutionError, StoreError
from podium.runtime.bus import EventBus
from podium.runtime.execution import AttemptRequest, ExecutionBackend
from podium.runtime.secrets import RunSecrets, reveal
from podium.steps import procs
from podium.store.base import EventStore, Lease, StoredEvent

SIGNAL_POLL_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class LeasePolicy:
    """How long a lease lasts without a heartbeat, how often it is renewed, how long a run may
    wait on a timer in its driver before it is parked in the store instead, and how many
    takeovers in a row from drivers that died a run gets before it is dead-lettered."""

    ttl_seconds: float = 15.0
    heartbeat_seconds: float = 5.0
    park_after_seconds: float = 1.0
    max_recoveries: int = MAX_RECOVERIES

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_seconds < self.ttl_seconds:
            raise ValueError(
                f"heartbeat_seconds ({self.heartbeat_seconds}) must be above 0 and below "
                f"ttl_seconds ({self.ttl_seconds}), so a lease is renewed before it expires"
            )
        if self.max_recoveries < 0:
            raise ValueError(f"max_recoveries must be 0 or more, not {self.max_recoveries}")


class RunHooks(Protocol):
    """What the engine does around a driver's turns beyond committing them (child runs of
    `workflow` steps: runtime/children.py). Each returns happenings for the next turn."""

    async def on_start(self, state: RunState) -> list[Happening]: ...

    async def after_commit(
        self, state: RunState, events: Sequence[ev.Event]
    ) -> list[Happening]: ...


@dataclass(frozen=True, slots=True)
class _Checkpoint:
    """A report whose sender waits until the turn that records it is committed."""

    report: Report
    committed: asyncio.Future[None]


class _Sink:
    """Where one attempt's reports and live output go: the driver's inbox and the live bus.
    Live output is redacted on the way, a tail held back so that a secret split across two
    deltas is seen whole (`flush` lets the rest out when the attempt ends)."""

    __slots__ = ("_driver", "_step_id", "_stream")

    def __init__(self, driver: RunDriver, step_id: str) -> None:
        self._driver = driver
        self._step_id = step_id
        self._stream: StreamRedactor | None = None  # made at the first delta: most steps send none

    def report(self, report: Report) -> None:
        self._driver.post(report)

    async def checkpoint(self, report: Report) -> None:
        committed = asyncio.get_running_loop().create_future()
        self._driver.post(_Checkpoint(report, committed))
        await committed

    def delta(self, text: str) -> None:
        if self._stream is None:
            self._stream = self._driver.state.redactor.stream()
        self._publish(self._stream.feed(text))

    def flush(self) -> None:
        if self._stream is not None:
            self._publish(self._stream.flush())

    def _publish(self, text: str) -> None:
        if text:
            driver = self._driver
            driver.bus.publish_delta(driver.state.run_id, self._step_id, text)


class RunDriver:
    """The turn loop of one run. `drive()` returns the state when the run completes or parks."""

    def __init__(
        self,
        *,
        state: RunState,
        store: EventStore,
        lease: Lease,
        bus: EventBus,
        clock: Clock,
        backend: ExecutionBackend,
        policy: LeasePolicy | None = None,
        hooks: RunHooks | None = None,
        protected: tuple[Path, ...] = (),
        secrets: RunSecrets | None = None,
    ) -> None:
        self.state = state
        self._secrets = secrets or RunSecrets(state.redactor)
        self._protected = protected  # Podium's own files, refused to steps (runtime/protected.py)
        self._hooks = hooks
        self.lease = lease
        self.bus = bus
        self.parked_until: datetime | None = None
        self._store = store
        self._clock = clock
        self._backend = backend
        self._policy = policy or LeasePolicy()
        self._committed_seq = state.seq
        self._inbox: deque[Happening | _Checkpoint | None] = deque()
        self._checkpoints: list[asyncio.Future[None]] = []
        self._waiter: asyncio.Future[None] | None = None
        self._tasks: dict[str, asyncio.Task[AttemptOutcome]] = {}
        self._sinks: dict[str, _Sink] = {}
        self._cancelling: dict[str, ev.CancelReason] = {}
        self._signals_at = 0.0
        self._lost: PodiumError | None = None

    # -------------------------------------------------------------------------- public

    @property
    def committed(self) -> bool:
        """True when every event folded into `state` is committed (not mid-turn)."""
        return self.state.seq == self._committed_seq

    def poke(self) -> None:
        """Wake the loop now (a control signal was posted for this run)."""
        self.post(None)

    def post(self, item: Happening | _Checkpoint | None) -> None:
        self._inbox.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def drive(
        self, *, resumed: bool = False, slot: asyncio.Semaphore | None = None
    ) -> RunState:
        """Drive until the run completes or parks. With `slot`, wait for it first (an engine's
        run limit) while already heartbeating, so a queued run keeps its lease."""
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            async with slot if slot is not None else contextlib.nullcontext():
                await self._loop(await self._first_happenings(resumed))
        finally:
            heartbeat.cancel()
            await self._abandon_tasks()
            self.bus.close_run(self.state.run_id)
        return self.state

    # ---------------------------------------------------------------------------- loop

    async def _loop(self, happenings: list[Happening]) -> None:
        while True:
            turn = take_turn(self.state, happenings, self._clock.now())
            await self._commit(turn)
            self._release_checkpoints()
            if self._hooks is not None and turn.events:
                for happening in await self._hooks.after_commit(self.state, turn.events):
                    self.post(happening)
            self._launch(turn)
            if self._tasks or self._inbox:
                happenings = await self._wait(turn.wake_at)
                continue
            if self.state.outcome is not None or turn.wake_at is None:
                return  # finished, or waiting for a person
            if self._seconds_until(turn.wake_at) >= self._policy.park_after_seconds:
                self.parked_until = turn.wake_at
                return
            happenings = await self._wait(turn.wake_at)

    async def _first_happenings(self, resumed: bool) -> list[Happening]:
        first: list[Happening] = []
        if resumed and self.state.running:
            stopped = await self._stop_leftovers()
            limit = self._policy.max_recoveries
            crashed = self.lease.taken_from is not None  # its last driver died holding the run
            first.append(TakenOver(stopped, crashed=crashed, max_recoveries=limit))
        if self._hooks is not None:
            first += await self._hooks.on_start(self.state)
        return first + await self._signals()

    async def _commit(self, turn: Turn) -> None:
        if not turn.events:
            return
        state = self.state
        first = self._committed_seq + 1
        self._committed_seq = await self._store.append(
            state.run_id,
            turn.events,
            expected_seq=self._committed_seq,
            epoch=self.lease.epoch,
            status=state.status,  # type: ignore[arg-type]
            consumed_signals=turn.consumed,
            wake_at=turn.wake_at,
        )
        stored = [StoredEvent(state.run_id, first + i, e) for i, e in enumerate(turn.events)]
        self.bus.publish(state.run_id, stored)

    def _launch(self, turn: Turn) -> None:
        state = self.state
        for launch in turn.launch:
            try:  # a secret input's value in place of its placeholder, only now
                launch = replace(launch, step=reveal(launch.step, self._secrets))
            except StepExecutionError as exc:
                failed = AttemptOutcome(
                    launch.step_id, launch.attempt, error=str(exc), error_type=exc.error_type
                )
                self.post(failed)
                continue
            request = AttemptRequest.of(
                launch,
                run_id=state.run_id,
                epoch=self.lease.epoch,
                workspace=state.workspace_path,
                output_limit_bytes=state.workflow.output_limit_bytes,
                policy=state.policy,
                protected=self._protected,
                redactor=state.redactor,
            )
            step_id = launch.step_id
            sink = self._sinks[step_id] = _Sink(self, step_id)
            task = asyncio.create_task(self._backend.execute(request, sink))
            task.add_done_callback(functools.partial(self._on_done, step_id))
            self._tasks[step_id] = task
        for step_id, reason in turn.cancel.items():
            running = self._tasks.get(step_id)
            if running is not None and step_id not in self._cancelling:
                self._cancelling[step_id] = reason
                running.cancel()

    def _on_done(self, step_id: str, task: asyncio.Task[AttemptOutcome]) -> None:
        if self._tasks.get(step_id) is not task:
            return
        del self._tasks[step_id]
        sink = self._sinks.pop(step_id, None)
        if sink is not None:
            sink.flush()
        reason = self._cancelling.pop(step_id, None)
        if task.cancelled():
            self.post(AttemptCancelled(step_id, reason or "run_cancelled"))
        else:
            self.post(task.result())

    async def _wait(self, wake_at: datetime | None) -> list[Happening]:
        """Sleep until something reaches the inbox, a parked timer is due, or signals are due;
        return what arrived."""
        if not self._inbox:
            timeout = SIGNAL_POLL_SECONDS
            if wake_at is not None:
                timeout = min(timeout, max(self._seconds_until(wake_at), 0.0))
            await self._sleep(timeout)
        happenings: list[Happening] = []
        poked = False
        while self._inbox:
            item = self._inbox.popleft()
            if item is None:
                poked = True
            elif isinstance(item, _Checkpoint):
                happenings.append(item.report)
                self._checkpoints.append(item.committed)
            else:
                happenings.append(item)
        if self._lost is not None:
            raise self._lost
        if poked or self._clock.monotonic() - self._signals_at >= SIGNAL_POLL_SECONDS:
            happenings += await self._signals()
        return happenings

    def _release_checkpoints(self) -> None:
        """The turn that held these reports is committed: let their senders go on."""
        waiting, self._checkpoints = self._checkpoints, []
        for committed in waiting:
            if not committed.done():
                committed.set_result(None)

    async def _sleep(self, seconds: float) -> None:
        """Wait for `post` or the timeout, without a task per wait (this is the hot path)."""
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(seconds, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _seconds_until(self, at: datetime) -> float:
        return (at - self._clock.now()).total_seconds()

    async def _signals(self) -> list[Happening]:
        self._signals_at = self._clock.monotonic()
        pending = await self._store.pending_signals(self.state.run_id)
        return [ControlSignal(s.id, s.kind, s.payload) for s in pending]

    # ----------------------------------------------------------------------- lifecycle

    async def _stop_leftovers(self) -> tuple[str, ...]:
        """Kill the process groups a dead driver's shell steps left running."""
        state = self.state
        stopped = await asyncio.to_thread(
            procs.stop_leftovers, state.workspace_path, state.run_id, sorted(state.running)
        )
        return tuple(stopped)

    async def _heartbeat(self) -> None:
        """Renew the lease every heartbeat; a store error is retried until the lease would expire
        (a passing lock or network fault must not drop a healthy run); losing the lease to
        another driver stops this one at once."""
        policy = self._policy
        while True:
            await asyncio.sleep(policy.heartbeat_seconds)
            deadline = self._clock.monotonic() + policy.ttl_seconds - policy.heartbeat_seconds
            try:
                self.lease = await self._renew_until(deadline)
            except PodiumError as exc:
                self._lost = exc
                self.poke()
                return

    async def _renew_until(self, deadline: float) -> Lease:
        delay = 0.05
        while True:
            try:
                return await self._store.renew_lease(
                    self.lease, ttl_seconds=self._policy.ttl_seconds
                )
            except ConcurrencyError:
                raise
            except StoreError:
                if self._clock.monotonic() + delay >= deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _abandon_tasks(self) -> None:
        """On exit (normal or not) cancel leftover attempts without recording anything: a
        later resume sees them in flight and requeues or interrupts them."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


__all__ = ["LeasePolicy", "RunDriver"]
