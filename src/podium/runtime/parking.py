"""Parked runs: one timer serves every run an engine parked (a retry's backoff, a budget's
wall-time check) and, for a worker engine, every runnable run in the store. A parked run holds
no task, no lease and no heartbeat: only a (wake_at, run_id) entry here, and its store row."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from podium.aio import cancel_and_wait
from podium.errors import PodiumError

CLAIM_INTERVAL_SECONDS = 0.25  # a worker asks the store for runnable runs at most this often
# and at least this often, whatever the change notifications say: a lease that runs out makes
# no notification, so this bounds how long a dead worker's runs wait past their lease's end
# (SPEC: taken over within TTL + 2 s). At 5 s a 7 s lease was taken over after some 10 s.
IDLE_CHECK_SECONDS = 1.0
WAKE_RETRY_SECONDS = 1.0  # a run whose wake-up failed on a store fault is tried again then


class Waker:
    """Calls `wake(run_id)` for each parked run when it is due by the store's clock, and (for a
    worker) `claim()` whenever the store changed or a timer is due. One task for all of them."""

    def __init__(
        self,
        *,
        now: Callable[[], Awaitable[datetime]],
        wake: Callable[[str], Awaitable[None]],
        claim: Callable[[], Awaitable[None]] | None = None,
        changed: Callable[[float], Awaitable[bool]] | None = None,
    ) -> None:
        self._now = now
        self._wake = wake
        self._claim = claim
        self._changed = changed
        self._heap: list[tuple[datetime, str]] = []
        self._due: dict[str, datetime] = {}
        self._nudge = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def __len__(self) -> int:
        return len(self._due)

    def park(self, run_id: str, wake_at: datetime) -> None:
        """Wake `run_id` at `wake_at` (a later park of the same run replaces this one)."""
        self._due[run_id] = wake_at
        heapq.heappush(self._heap, (wake_at, run_id))
        self._start()
        if self._heap[0] == (wake_at, run_id):
            self._nudge.set()

    def forget(self, run_id: str) -> None:
        """The run is driven again (a signal arrived, or it was resumed): drop its timer."""
        self._due.pop(run_id, None)

    def is_parked(self, run_id: str) -> bool:
        return run_id in self._due

    def nudge(self) -> None:
        """Look again now (a worker: something may have become runnable)."""
        self._start()
        self._nudge.set()

    def start(self) -> None:
        self._start()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    async def stop(self) -> None:
        """Wake and claim nothing more, for good (a worker draining before it exits); parked
        runs stay parked in the store, for whoever drives them next."""
        self._stopped = True
        await self.aclose()

    def _start(self) -> None:
        if self._stopped:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="podium-waker")

    async def _run(self) -> None:
        while True:
            self._nudge.clear()
            now = await self._now()
            for run_id in self._pop_due(now):
                if not await self._guarded(self._wake(run_id)):
                    self.park(run_id, now + timedelta(seconds=WAKE_RETRY_SECONDS))
            if self._claim is not None:
                await self._guarded(self._claim())
            await self._sleep(self._seconds_to_next(now))

    def _pop_due(self, now: datetime) -> list[str]:
        due: list[str] = []
        while self._heap and self._heap[0][0] <= now:
            at, run_id = heapq.heappop(self._heap)
            if self._due.get(run_id) == at:
                del self._due[run_id]
                due.append(run_id)
        return due

    def _seconds_to_next(self, now: datetime) -> float | None:
        while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # a stale entry: the run was parked again or forgotten
        if not self._heap:
            return None
        return max((self._heap[0][0] - now).total_seconds(), 0.0)

    async def _sleep(self, seconds: float | None) -> None:
        if self._changed is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudge.wait(), seconds)
            return
        limit = IDLE_CHECK_SECONDS if seconds is None else min(seconds, IDLE_CHECK_SECONDS)
        # Listen from now: a change committed while we pause between claims still wakes us.
        changed = asyncio.ensure_future(self._changed(limit))
        try:
            await asyncio.sleep(min(CLAIM_INTERVAL_SECONDS, limit))
            if not changed.done() and not self._nudge.is_set():
                nudged = asyncio.ensure_future(self._nudge.wait())
                try:
                    await asyncio.wait({changed, nudged}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    await cancel_and_wait(nudged)
        finally:
            await cancel_and_wait(changed)

    async def _guarded(self, work: Awaitable[None]) -> bool:
        """A store fault while waking must not stop the timer: False, and the caller parks the
        run again a little later."""
        try:
            await work
        except PodiumError:
            return False
        return True
