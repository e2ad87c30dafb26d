"""Group commit for the SQLite store: queued `create_run`/`append` requests share a transaction,
and a batch refused because another process held the write lock is retried within its budget."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from podium.errors import StoreError
from podium.store._batch import CreateRun, Outcome, WriteRequest
from podium.store._sqlite_open import backoff_seconds


class Busy(Exception):
    """One attempt found the write lock taken for a whole slice; nothing was written."""


@dataclass(frozen=True, slots=True)
class Queued:
    request: WriteRequest
    future: asyncio.Future[int]
    deadline: float
    budget_seconds: float

    @property
    def creates(self) -> bool:
        return isinstance(self.request, CreateRun)


InlineCommit = Callable[[list[WriteRequest]], "list[Outcome] | None"]
WorkerCommit = Callable[[list[WriteRequest]], "asyncio.Future[list[Outcome]]"]


class GroupCommit:
    """Everything queued while a commit is in flight goes into the next one.

    `inline` commits on the loop's thread without waiting for locks (None: not now, use the
    worker); `on_worker` commits on the worker thread, raising Busy if the lock stayed taken for
    a slice. `busy_error` builds the error for a request whose budget ran out.
    """

    def __init__(
        self,
        inline: InlineCommit,
        on_worker: WorkerCommit,
        busy_error: Callable[[Queued], BaseException],
    ) -> None:
        self._inline = inline
        self._on_worker = on_worker
        self._busy_error = busy_error
        self._queue: list[Queued] = []
        self._writing = False
        self._busy_attempts = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def submit(self, request: WriteRequest, budget_seconds: float) -> asyncio.Future[int]:
        # A caller cancelled while waiting does not stop the write: it may still commit, and the
        # next append with a stale expected_seq then tells the driver to re-read the run.
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        deadline = time.monotonic() + budget_seconds
        self._queue.append(Queued(request, future, deadline, budget_seconds))
        if not self._writing:
            self._writing = True
            self.idle.clear()
            loop.call_soon(self._write_queued, loop)
        return future

    def _write_queued(self, loop: asyncio.AbstractEventLoop) -> None:
        queued, self._queue = self._queue, []
        requests = [q.request for q in queued]
        outcomes = self._inline(requests)
        if outcomes is not None:
            self._settle(loop, queued, outcomes)
            return
        done = self._on_worker(requests)
        done.add_done_callback(partial(self._resolve, loop, queued))

    def _resolve(
        self,
        loop: asyncio.AbstractEventLoop,
        queued: list[Queued],
        done: asyncio.Future[list[Outcome]],
    ) -> None:
        error = StoreError("the write was cancelled") if done.cancelled() else done.exception()
        if isinstance(error, Busy):
            self._retry_later(loop, queued)
            return
        outcomes = [error] * len(queued) if error is not None else done.result()
        self._settle(loop, queued, outcomes)

    def _retry_later(self, loop: asyncio.AbstractEventLoop, queued: list[Queued]) -> None:
        """Fail what is past its budget, put the rest back in front of the queue (nothing of the
        batch was written) and try again after a jittered pause."""
        now, kept = time.monotonic(), []
        for item in queued:
            if item.deadline > now:
                kept.append(item)
            elif not item.future.done():
                item.future.set_exception(self._busy_error(item))
        self._queue[:0] = kept
        if not self._queue:
            self._stop_writing()
            return
        self._busy_attempts += 1
        loop.call_later(backoff_seconds(self._busy_attempts), self._write_queued, loop)

    def _settle(
        self,
        loop: asyncio.AbstractEventLoop,
        queued: list[Queued],
        outcomes: Sequence[Outcome | BaseException],
    ) -> None:
        self._busy_attempts = 0
        for item, outcome in zip(queued, outcomes, strict=True):
            if item.future.done():
                continue
            if isinstance(outcome, BaseException):
                item.future.set_exception(outcome)
            else:
                item.future.set_result(outcome)
        if self._queue:
            loop.call_soon(self._write_queued, loop)
        else:
            self._stop_writing()

    def _stop_writing(self) -> None:
        self._writing = False
        self.idle.set()
