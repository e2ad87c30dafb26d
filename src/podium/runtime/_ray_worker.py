"""The far side of the Ray backend (runtime/ray.py): the Ray task that runs one attempt on a Ray
worker, and the relay actor the two sides meet at.

The task runs the attempt with the built-in executors (`InProcessBackend` on the worker: the same
timeout, sandbox and redaction as in the driver's process) on an event loop of its own thread, and
yields, in order, what the attempt tells — `("report", Report)`, `("delta", text)`,
`("checkpoint", n, Report)` — then `("outcome", AttemptOutcome)`. A checkpoint's sender waits at
the relay until the driver acknowledges that the run committed it. The relay also settles
cancellation: a Ray cancel interrupts the task, which stops its attempt (process groups killed)
before it tells the relay it ended, so the driver knows when the attempt has really stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import ray

from podium.core.happenings import AttemptOutcome, Report
from podium.errors import UsageError
from podium.runtime.execution import AttemptRequest, InProcessBackend
from podium.steps import Executors
from podium.steps import python as python_steps

Item = tuple[Any, ...]
Settled = Literal["idle", "ended", "running"]
POLL_SECONDS = 0.05  # how soon the task's thread notices a Ray cancel


@dataclass
class _Slot:
    started: bool = False
    cancelled: bool = False
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    acked: int = 0
    acks: asyncio.Event = field(default_factory=asyncio.Event)


@ray.remote(num_cpus=0, max_restarts=-1)
class Relay:
    """Where an attempt's task and its driver meet, by the attempt's key: checkpoint
    acknowledgements and the start and end of the task (for cancellation)."""

    def __init__(self) -> None:
        self._slots: dict[str, _Slot] = {}

    async def start(self, key: str) -> bool:
        """The task begins: False if the driver cancelled it first (then it must not run)."""
        slot = self._slots.setdefault(key, _Slot())
        slot.started = True
        return not slot.cancelled

    async def end(self, key: str) -> None:
        slot = self._slots.pop(key, None)
        if slot is not None:
            slot.ended.set()

    async def wait(self, key: str, n: int) -> None:
        """Until the driver acknowledged checkpoint `n` of the attempt."""
        slot = self._slots.setdefault(key, _Slot())
        while slot.acked < n:
            slot.acks.clear()
            await slot.acks.wait()

    async def ack(self, key: str, n: int) -> None:
        slot = self._slots.get(key)
        if slot is not None:
            slot.acked = max(slot.acked, n)
            slot.acks.set()

    async def settle(self, key: str, grace_seconds: float) -> Settled:
        """The driver cancelled the attempt: `idle` if its task never began (and now never
        will), `ended` once it stopped, `running` if it is still going after the grace time."""
        slot = self._slots.get(key)
        if slot is None:  # not begun (and now it never will), or already ended
            self._slots[key] = _Slot(cancelled=True)
            return "idle"
        slot.cancelled = True
        if not slot.started:
            return "idle"
        try:
            await asyncio.wait_for(slot.ended.wait(), grace_seconds)
        except TimeoutError:
            return "running"
        return "ended"


class _RemoteSink:
    """The attempt's `AttemptSink` on the worker: everything goes to the task's queue."""

    def __init__(self, items: queue.SimpleQueue[Item], relay: Any, key: str) -> None:
        self._items, self._relay, self._key = items, relay, key
        self._checkpoints = 0

    def report(self, report: Report) -> None:
        self._items.put(("report", report))

    async def checkpoint(self, report: Report) -> None:
        self._checkpoints += 1
        self._items.put(("checkpoint", self._checkpoints, report))
        await self._relay.wait.remote(self._key, self._checkpoints)

    def delta(self, text: str) -> None:
        self._items.put(("delta", text))


class _Attempt:
    """One attempt on an event loop in a thread of its own, stoppable from the task's thread."""

    def __init__(self, request: AttemptRequest, relay: Any, key: str) -> None:
        self.items: queue.SimpleQueue[Item] = queue.SimpleQueue()
        self._request = request
        self._sink = _RemoteSink(self.items, relay, key)
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, name=f"podium-{key}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._task = self._loop.create_task(self._attempt())
            with contextlib.suppress(asyncio.CancelledError):
                self._loop.run_until_complete(self._task)
        finally:
            self._loop.close()

    async def _attempt(self) -> None:
        request = self._request
        if not request.workspace.is_dir():
            outcome = AttemptOutcome(request.step_id, request.attempt, error=_no_workspace(request))
        else:
            outcome = await InProcessBackend(Executors()).execute(request, self._sink)
        self.items.put(("outcome", outcome))

    def stop(self) -> None:
        """Cancel the attempt (its executor kills its processes) and wait until it stopped."""
        while self._thread.is_alive() and self._task is None:
            self._thread.join(POLL_SECONDS)
        task = self._task
        if task is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: it ended
                self._loop.call_soon_threadsafe(task.cancel)
        self._thread.join()


def _no_workspace(request: AttemptRequest) -> str:
    return (
        f"the run's workspace {request.workspace} does not exist on Ray node "
        f"{socket.gethostname()}: a step on Ray needs it at the same path on every node (a "
        "shared filesystem such as NFS mounted there); mount it, or run the step locally"
    )


def adopt(callables: Mapping[str, Callable[..., Any]]) -> None:
    """Register the python callables the driver registered by name for this attempt."""
    for name, fn in callables.items():
        python_steps.register(name)(fn)


@ray.remote(max_retries=0)
def run_attempt(
    request: AttemptRequest, relay: Any, key: str, callables: Mapping[str, Callable[..., Any]]
) -> Iterator[Item]:
    """The Ray task of one attempt: yields what the attempt tells, its outcome last."""
    try:
        if not ray.get(relay.start.remote(key)):
            return  # cancelled before it began
        try:
            adopt(callables)
        except UsageError as exc:
            yield ("outcome", AttemptOutcome(request.step_id, request.attempt, error=str(exc)))
            return
        attempt = _Attempt(request, relay, key)
        try:
            yield from _items(attempt)
        except BaseException:  # a Ray cancel (KeyboardInterrupt) or the generator closed
            attempt.stop()
            raise
    finally:
        relay.end.remote(key)


def _items(attempt: _Attempt) -> Iterator[Item]:
    while True:
        try:
            item = attempt.items.get(timeout=POLL_SECONDS)
        except queue.Empty:
            continue
        yield item
        if item[0] == "outcome":
            return


__all__ = ["Relay", "run_attempt"]
