"""The in-process live bus: committed events fan out to subscribers (CLI view, followers)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence

from podium.store.base import StoredEvent

CLOSED: None = None


class EventBus:
    """Per-run subscriber queues. Publishing never blocks; a subscriber gets `None` at the end."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[StoredEvent | None]]] = defaultdict(set)
        self._delta_subscribers: dict[str, set[asyncio.Queue[tuple[str, str]]]] = defaultdict(set)

    def subscribe(self, run_id: str) -> asyncio.Queue[StoredEvent | None]:
        queue: asyncio.Queue[StoredEvent | None] = asyncio.Queue()
        self._subscribers[run_id].add(queue)
        return queue

    def unsubscribe(self, run_id: str, queue: asyncio.Queue[StoredEvent | None]) -> None:
        subscribers = self._subscribers.get(run_id)
        if subscribers is not None:
            subscribers.discard(queue)
            if not subscribers:
                del self._subscribers[run_id]

    def publish(self, run_id: str, events: Sequence[StoredEvent]) -> None:
        for queue in self._subscribers.get(run_id, ()):
            for event in events:
                queue.put_nowait(event)

    def subscribe_deltas(self, run_id: str) -> asyncio.Queue[tuple[str, str]]:
        """Live output fragments `(step_id, text)` of the run's steps (not stored)."""
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
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
            queue.put_nowait((step_id, text))

    def close_run(self, run_id: str) -> None:
        """Tell the run's subscribers that its driver stopped (finished, parked or lost)."""
        for queue in self._subscribers.get(run_id, ()):
            queue.put_nowait(CLOSED)
