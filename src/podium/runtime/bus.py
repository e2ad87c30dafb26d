"""The in-process live bus: committed events fan out to subscribers of one run or of every run,
and live output fragments to subscribers of a run. Queues are bounded: publishing never blocks
and never grows memory without limit; a subscriber that falls behind is told so (`lagged`) and
reads what it missed from the store instead."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence

from podium.store.base import StoredEvent

CLOSED: None = None
QUEUE_LIMIT = 10_000
DELTA_LIMIT = 1_000


class Subscription:
    """A bounded queue of committed events. When it overflows, further events are dropped and
    `lagged` is set, with `missed` holding, per run, the first seq it dropped: the subscriber then
    reads those runs from the store from there on and calls `caught_up()`."""

    __slots__ = ("lagged", "missed", "queue", "run_id")

    def __init__(self, run_id: str | None, limit: int) -> None:
        self.run_id = run_id
        self.queue: asyncio.Queue[StoredEvent | None] = asyncio.Queue(limit)
        self.lagged = False
        self.missed: dict[str, int] = {}

    def offer(self, stored: StoredEvent) -> None:
        if not self._put(stored):
            self.missed.setdefault(stored.run_id, stored.seq)

    def close(self) -> None:
        """The run's driver stopped (finished, parked or lost): a `None` tells the subscriber."""
        self._put(CLOSED)

    def _put(self, item: StoredEvent | None) -> bool:
        """Queue `item`; False when the subscriber lags (then it is woken to notice)."""
        if not self.lagged:
            try:
                self.queue.put_nowait(item)
                return True
            except asyncio.QueueFull:
                self.lagged = True
        if self.queue.empty():  # make sure a waiting `get()` returns, to notice `lagged`
            self.queue.put_nowait(CLOSED)
        return False

    def caught_up(self) -> dict[str, int]:
        """Take the runs (and first seqs) missed while lagging, and take events again."""
        missed, self.missed, self.lagged = self.missed, {}, False
        return missed


class EventBus:
    """Per-run and all-run subscriptions; publishing never blocks."""

    def __init__(self, *, limit: int = QUEUE_LIMIT, delta_limit: int = DELTA_LIMIT) -> None:
        self._limit = limit
        self._delta_limit = delta_limit
        self._subscribers: dict[str | None, set[Subscription]] = defaultdict(set)
        self._delta_subscribers: dict[str, set[asyncio.Queue[tuple[str, str]]]] = defaultdict(set)

    def subscribe(self, run_id: str | None = None) -> Subscription:
        """Committed events of `run_id`, or of every run when it is None."""
        subscription = Subscription(run_id, self._limit)
        self._subscribers[run_id].add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscribers = self._subscribers.get(subscription.run_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[subscription.run_id]

    def publish(self, run_id: str, events: Sequence[StoredEvent]) -> None:
        for key in (run_id, None):
            for subscription in self._subscribers.get(key, ()):
                for event in events:
                    subscription.offer(event)

    def subscribe_deltas(self, run_id: str) -> asyncio.Queue[tuple[str, str]]:
        """Live output fragments `(step_id, text)` of the run's steps (not stored; a subscriber
        that falls more than `delta_limit` fragments behind misses some)."""
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(self._delta_limit)
        self._delta_subscribers[run_id].add(queue)
        return queue

    def unsubscribe_deltas(self, run_id: str, queue: asyncio.Queue[tuple[str, str]]) -> None:
        subscribers = self._delta_subscribers.get(run_id)
        if subscribers is not None:
            subscribers.discard(queue)
            if not subscribers:
                del self._delta_subscribers[run_id]

    def publish_delta(self, run_id: str, step_id: str, text: str) -> None:
        for queue in self._delta_subscribers.get(run_id, ()):
            if not queue.full():
                queue.put_nowait((step_id, text))

    def close_run(self, run_id: str) -> None:
        """Tell the run's subscribers that its driver stopped (finished, parked or lost)."""
        for subscription in self._subscribers.get(run_id, ()):
            subscription.close()
