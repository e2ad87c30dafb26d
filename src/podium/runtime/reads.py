"""The engine's read side: committed snapshots, and the event streams a follower reads — from
the live bus when this process drives the run, from the store (woken by its change
notification, never a fixed poll) when another process does, and from the store again when a
bus subscriber fell behind."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from podium.aio import cancel_and_wait
from podium.core.fold import apply, replay
from podium.core.state import RunState
from podium.runtime.bus import EventBus, Subscription
from podium.store.base import TERMINAL_STATUSES, EventStore, RunRecord, StoredEvent

FOLLOW_WAIT_SECONDS = 1.0


async def committed_state(store: EventStore, run_id: str) -> RunState:
    """The run as its committed events say: a replay of the store's log."""
    return replay(stored.event for stored in await store.read(run_id))


class StateCache:
    """Committed states kept for reading, each brought up to date with only the events
    committed since it was last read: a page that polls a 2,000-step run costs a short read
    instead of a 60 ms replay. The states are shared: render one before the next await and
    never change it (engine.state gives a state of one's own). Holds the `size` runs read last;
    a run pruned and created again under its id (a new `created_at`) is read afresh."""

    def __init__(self, store: EventStore, size: int = 64) -> None:
        self._store = store
        self._size = size
        self._states: OrderedDict[str, tuple[datetime, RunState]] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    async def latest(self, record: RunRecord) -> RunState:
        run_id = record.run_id
        lock = self._locks.setdefault(run_id, asyncio.Lock())
        async with lock:  # readers of one run share one replay, and fold each event once
            cached = self._states.get(run_id)
            if cached is None or cached[0] != record.created_at:
                state = await committed_state(self._store, run_id)
            else:
                state = cached[1]
                for stored in await self._store.read(run_id, after_seq=state.seq):
                    apply(state, stored.event)
            self._states[run_id] = (record.created_at, state)
            self._states.move_to_end(run_id)
            while len(self._states) > self._size:
                evicted, _ = self._states.popitem(last=False)
                self._locks.pop(evicted, None)
            return state


async def follow_run(
    store: EventStore,
    bus: EventBus,
    run_id: str,
    *,
    after_seq: int,
    driving: Callable[[str], bool],
) -> AsyncIterator[StoredEvent]:
    """Every committed event of the run after `after_seq`, until the run is finished and
    everything committed with its end has been yielded."""
    subscription = bus.subscribe(run_id)
    last = after_seq
    try:
        while True:
            for stored in await store.read(run_id, after_seq=last):
                last = stored.seq
                yield stored
            if (await store.get_run(run_id)).status in TERMINAL_STATUSES:
                for stored in await store.read(run_id, after_seq=last):
                    yield stored
                return
            if driving(run_id):
                async for stored in _from_bus(subscription, last):
                    last = stored.seq
                    yield stored
            else:
                for stored in await store.wait_for_events(
                    run_id, after_seq=last, timeout_seconds=FOLLOW_WAIT_SECONDS
                ):
                    last = stored.seq
                    yield stored
    finally:
        bus.unsubscribe(subscription)


async def _from_bus(subscription: Subscription, last: int) -> AsyncIterator[StoredEvent]:
    """Events from the bus until the driver stops or the subscriber lags (the caller then
    reads the store from `last`)."""
    while True:
        item = await subscription.queue.get()
        if item is None or subscription.lagged:
            subscription.caught_up()
            return
        if item.seq > last:
            last = item.seq
            yield item


async def follow_all(store: EventStore, bus: EventBus) -> AsyncIterator[StoredEvent]:
    """Committed events of every run this engine drives, as they commit. A subscriber that falls
    behind gets the events it missed from the store, run by run, before live ones again."""
    subscription = bus.subscribe(None)
    seen: dict[str, int] = {}
    try:
        while True:
            item = await subscription.queue.get()
            if item is not None and item.seq > seen.get(item.run_id, 0):
                seen[item.run_id] = item.seq
                yield item
            if not (subscription.lagged and subscription.queue.empty()):
                continue
            # everything queued before the overflow is delivered; the rest is in the store
            for run_id, first in subscription.caught_up().items():
                after = max(seen.get(run_id, 0), first - 1)
                for stored in await store.read(run_id, after_seq=after):
                    seen[run_id] = stored.seq
                    yield stored
    finally:
        bus.unsubscribe(subscription)


async def follow_positions(
    store: EventStore, *, after: int, page: int = 500
) -> AsyncIterator[tuple[int, StoredEvent]]:
    """Every run's committed events after global position `after`, each with its position, as
    they commit, whoever commits them: read from the store in pages, then woken by its change
    notification. Never ends; a follower resuming after the last position it saw misses nothing
    and sees nothing twice."""
    last = after
    while True:
        batch = await store.read_all(after=last, limit=page)
        for position, stored in batch:
            last = position
            yield position, stored
        if len(batch) < page:
            await store.wait_for_change(timeout_seconds=FOLLOW_WAIT_SECONDS)


async def follow_deltas(
    bus: EventBus, run_id: str, driver: Callable[[], asyncio.Task[RunState] | None]
) -> AsyncIterator[tuple[str, str]]:
    """Live text `(step_id, fragment)` of the run's running steps while this engine drives it;
    ends when its driver stops (the run finished or parked). Not stored, bounded: a consumer
    that falls far behind misses fragments, never events."""
    queue = bus.subscribe_deltas(run_id)
    try:
        while True:
            if not queue.empty():
                yield queue.get_nowait()
                continue
            task = driver()
            if task is None:
                return
            getter = asyncio.ensure_future(queue.get())
            try:
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            finally:  # cancelled too (the follower left): no getter is left pending
                await cancel_and_wait(getter)
            if not getter.cancelled():
                yield getter.result()
    finally:
        bus.unsubscribe_deltas(run_id, queue)
