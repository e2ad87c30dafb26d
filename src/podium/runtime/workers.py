"""What a `worker` engine does beyond a local one: claim the store's runnable runs into its free
slots (its queues only), report drivers that stop with an error nobody awaits, and drain before
it stops (take nothing more, let the runs in hand finish or park)."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from podium.core.state import RunState
from podium.errors import ConcurrencyError
from podium.runtime.parking import Waker
from podium.runtime.reads import committed_state
from podium.runtime.runner import LeasePolicy
from podium.store.base import EventStore, Lease

_log = logging.getLogger("podium.engine")


class Engine(Protocol):
    """What claiming and draining need of the engine (runtime/engine.py): its store, lease
    policy, queues, run slots and drivers, and starting a driver."""

    store: EventStore
    queues: tuple[str, ...]
    _max_runs: int
    _owner: str
    _policy: LeasePolicy
    _tasks: dict[str, asyncio.Task[RunState]]
    _waker: Waker
    _resuming: asyncio.Lock

    def _adopt_run_defaults(self, state: RunState) -> None: ...

    def _spawn(self, state: RunState, lease: Lease, *, resumed: bool) -> None: ...


async def claim(engine: Engine) -> None:
    """Take the leases of as many runnable runs as the engine has free slots, and drive them."""
    free = engine._max_runs - len(engine._tasks)
    if free <= 0:
        return
    ttl, queues = engine._policy.ttl_seconds, engine.queues
    claims = await engine.store.claim(engine._owner, limit=free, ttl_seconds=ttl, queues=queues)
    for claimed in claims:
        run_id = claimed.lease.run_id
        engine._waker.forget(run_id)
        async with engine._resuming:  # a resume (an API call, a child's end) may race us
            if run_id in engine._tasks:  # it took the run meanwhile, under a newer epoch
                await engine.store.release_lease(claimed.lease)  # so this changes nothing
                continue
            state = await committed_state(engine.store, run_id)
            engine._adopt_run_defaults(state)
            engine._spawn(state, claimed.lease, resumed=True)


async def drain(engine: Engine, seconds: float) -> list[str]:
    """Take no more runs (no claims, no timed wake-ups) and give the runs the engine drives up
    to `seconds` to finish or park; return the ids of those still driven then. `close` gives
    those back: their drivers stop, their leases are released and their in-flight steps are
    left for whoever takes the runs over."""
    await engine._waker.stop()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(seconds, 0.0)
    while engine._tasks and (left := deadline - loop.time()) > 0:
        await asyncio.wait(list(engine._tasks.values()), timeout=left)
    return sorted(engine._tasks)


def report_stop(task: asyncio.Task[RunState]) -> None:
    """A driver that stopped with an error nobody awaits (a worker's) says so in the log."""
    if task.cancelled() or (error := task.exception()) is None:
        return
    level = logging.WARNING if isinstance(error, ConcurrencyError) else logging.ERROR
    _log.log(level, "the driver of run %s stopped: %s", task.get_name(), error, exc_info=error)
