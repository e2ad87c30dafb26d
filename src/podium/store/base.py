"""The event store port: an append-only, per-run numbered log with leases and a control inbox."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from podium.core.events import DEFAULT_QUEUE, Event, RunCreated
from podium.errors import UsageError

RunStatus = Literal["pending", "running", "waiting", "dead", "succeeded", "failed", "cancelled"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
SignalKind = Literal["cancel", "retry", "skip", "approve", "reject", "feedback", "child"]
ClaimReason = Literal["pending", "due", "signalled", "orphaned"]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    run_id: str
    seq: int
    event: Event


@dataclass(frozen=True, slots=True)
class RunRecord:
    """The listing row of a run: a projection kept in step with its events."""

    run_id: str
    workflow_name: str
    status: RunStatus
    created_at: datetime
    updated_at: datetime
    last_seq: int
    owner: str | None
    epoch: int
    wake_at: datetime | None = None
    """The run's next timer (a parked retry's backoff, a budget's deadline), set by its driver."""
    lease_expires_at: datetime | None = None
    thread: str | None = None
    """The thread the run answers on (`run.created`'s `thread`), None for other runs."""
    queue: str = DEFAULT_QUEUE
    """Which workers may claim it (`run.created`'s `queue`)."""


@dataclass(frozen=True, slots=True)
class ThreadRecord:
    """A thread's listing row: how many runs it has and its newest run."""

    thread: str
    runs: int
    last_run: RunRecord


@dataclass(frozen=True, slots=True)
class Lease:
    """The right to append to one run. Appends carry `epoch`; a stale epoch is refused."""

    run_id: str
    owner: str
    epoch: int
    expires_at: datetime
    taken_from: str | None = None
    """The owner this lease was taken from without giving it back (its lease expired, or its
    process died): the run's last driver crashed. None for a free or released run."""


@dataclass(frozen=True, slots=True)
class Claim:
    """A run `claim` took the lease of, and why it was runnable.

    - `pending`: created and never driven;
    - `due`: its `wake_at` timer is due (and it has not finished);
    - `signalled`: a control signal waits for it (a retry may reopen a finished run);
    - `orphaned`: `running`, but its driver's lease expired, was released, or its process died.

    When several apply, the first in the order orphaned, signalled, due, pending is given.
    """

    lease: Lease
    reason: ClaimReason


@dataclass(frozen=True, slots=True)
class Signal:
    """A control request (cancel, retry, skip) from another process, consumed by the run driver."""

    id: int
    run_id: str
    kind: SignalKind
    payload: dict[str, Any]
    created_at: datetime


class EventStore(Protocol):
    """Implementations: memory, SQLite and Postgres. One contract suite tests them all.

    Every instant the store decides with (lease expiry, which timers are due) comes from the
    store's own clock, `now()`, never from the caller's.
    """

    async def create_run(
        self,
        created: RunCreated,
        *,
        workflow_name: str,
        lease_owner: str | None = None,
        ttl_seconds: float = 0.0,
        then: Sequence[Event] = (),
        exclusive: bool = False,
    ) -> Lease | None:
        """Store a new run whose first event (seq 1) is `created`, followed in the same commit
        by `then` (seq 2, 3, …: a run that must never be seen without them, such as a fork's
        `run.forked`). RunExistsError if taken. The run's listed `thread` is `created.thread`.

        With `exclusive` (a thread's run), the run is created only if no other run on its
        thread is live (pending, running or waiting), checked in the same transaction:
        ThreadBusyError naming the live run otherwise, and nothing is written.

        With `lease_owner`, the run is created already leased to that owner (epoch 1, expiring
        `ttl_seconds` from now on the store's clock) and the lease is returned: no claimer can
        take the run between its creation and its first turn.
        """
        ...

    async def append(
        self,
        run_id: str,
        events: Sequence[Event],
        *,
        expected_seq: int,
        epoch: int,
        status: RunStatus | None = None,
        consumed_signals: Sequence[int] = (),
        wake_at: datetime | None = None,
    ) -> int:
        """Append atomically after `expected_seq` under lease `epoch`; return the new last seq.

        In the same transaction: sets the run's listed `status` (None keeps it), marks
        `consumed_signals` consumed, and sets the run's `wake_at` to the given value (None clears
        it: only the driver appends, and it always knows its next wake-up).
        ConcurrencyError if the last seq or the epoch differs; RunNotFoundError if no such run.
        """
        ...

    async def read(self, run_id: str, *, after_seq: int = 0) -> list[StoredEvent]:
        """Events with seq > after_seq in order. RunNotFoundError if no such run."""
        ...

    async def read_all(self, *, after: int = 0, limit: int = 1000) -> list[tuple[int, StoredEvent]]:
        """Up to `limit` committed events of every run whose global position is > `after`, each
        with its position, in position order. Positions grow in commit order and are never
        reused (pruning a run removes its events, never lowers the next position), so a reader
        that has seen position P and reads again after P misses nothing committed since."""
        ...

    async def last_position(self) -> int:
        """The highest global position given so far (0 for a new store): a reader that starts
        after it gets only what commits from then on."""
        ...

    async def get_run(self, run_id: str) -> RunRecord: ...

    async def list_runs(
        self,
        *,
        statuses: Sequence[RunStatus] | None = None,
        workflow_name: str | None = None,
        limit: int = 100,
        after: str | None = None,
        thread: str | None = None,
    ) -> list[RunRecord]:
        """Newest first (created_at, then run_id, descending); the filters combine. `thread`
        keeps the runs of that thread only, from an index (no run's log is read).

        `after` is the run_id of the last record of the previous page: the page continues
        strictly after it (RunNotFoundError if there is no such run).
        """
        ...

    async def list_threads(self, *, limit: int = 100) -> list[ThreadRecord]:
        """Threads, the one with the newest run first (then by thread id, descending), each
        with its run count and newest run, read from the runs' index, never from their logs."""
        ...

    async def now(self) -> datetime:
        """The store's current time: what lease expiry and due timers are measured against."""
        ...

    async def acquire_lease(self, run_id: str, owner: str, *, ttl_seconds: float) -> Lease:
        """Take the run's lease (free, expired, ours, or held by a dead process on this host):
        epoch + 1, expiring `ttl_seconds` after the store's `now()`.

        LeaseHeldError if a live owner holds it.
        """
        ...

    async def renew_lease(self, lease: Lease, *, ttl_seconds: float) -> Lease:
        """Extend a held lease to `ttl_seconds` after the store's `now()`; ConcurrencyError if
        it was taken over."""
        ...

    async def release_lease(self, lease: Lease) -> None:
        """Free the lease if it is still this one (the epoch stays); otherwise do nothing."""
        ...

    async def claim(
        self,
        owner: str,
        *,
        limit: int,
        ttl_seconds: float,
        queues: Sequence[str] | None = None,
    ) -> list[Claim]:
        """Atomically take the leases of up to `limit` runnable runs nobody live drives, on one
        of `queues` (None: on any queue).

        Runnable: `pending`; a due `wake_at` on a run that has not finished; unconsumed signals
        (any status); or `running` with an expired, released or dead owner's lease. A `waiting`
        run with no due timer and no signal waits for a person and is not runnable. Runs whose
        lease `owner` itself holds live are skipped (it already drives them).
        Most overdue first: by the due `wake_at`, else `created_at`; then created_at, run_id.
        Two claimers never get the same run. `limit <= 0` returns [].
        """
        ...

    async def post_signal(self, run_id: str, kind: SignalKind, payload: dict[str, Any]) -> int: ...

    async def pending_signals(self, run_id: str) -> list[Signal]: ...

    async def prune(
        self,
        *,
        finished_before: datetime | None = None,
        statuses: Sequence[RunStatus] = ("succeeded", "failed", "cancelled"),
        dry_run: bool = False,
    ) -> list[RunRecord]:
        """Delete finished runs of `statuses` last updated before `finished_before` (None: any
        time), with their events and signals, in one transaction; return what was removed (with
        `dry_run`, what would be, removing nothing).

        A run with unconsumed signals or a live lease is kept: it is about to be reopened or is
        being driven. UsageError if `statuses` names an unfinished status.
        """
        ...

    async def wait_for_events(
        self, run_id: str, *, after_seq: int, timeout_seconds: float
    ) -> list[StoredEvent]:
        """The run's events after `after_seq`; if there are none yet, wait up to
        `timeout_seconds` for some to be committed by anyone, and return them ([] on timeout).
        RunNotFoundError if no such run."""
        ...

    async def wait_for_change(self, *, timeout_seconds: float) -> bool:
        """True soon after anything (a run, an append, a signal, a lease change) is committed to
        the store by anyone after the call began; False after `timeout_seconds` without one.
        It may also return True for a commit made just before the call: callers re-check."""
        ...

    async def check_writable(self) -> None:
        """StoreError, saying what to fix, if this process cannot write to the store (a
        read-only role, file or replica). Writes nothing."""
        ...

    async def close(self) -> None: ...


QUEUE_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def check_queue(name: str) -> str:
    """A queue name as given to `--queue`: letters, digits and `._-`, at most 64."""
    if not QUEUE_NAME.fullmatch(name):
        raise UsageError(
            f"queue name {name!r} is not valid: use 1 to 64 letters, digits, '.', '_' or '-'"
        )
    return name


def taken_from(holder: str | None, owner: str) -> str | None:
    """What a lease taken by `owner` from `holder` (the run's owner column) records as
    `Lease.taken_from`: a release clears the owner, so any other holder did not give it back."""
    return holder if holder is not None and holder != owner else None


def current_owner() -> str:
    """An owner name for leases: `host:pid:random`."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


def local_owner_prefix() -> str:
    """What every owner naming a process on this host starts with."""
    return f"{socket.gethostname()}:"


def owner_is_dead(owner: str) -> bool:
    """True when `owner` names a process on this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
