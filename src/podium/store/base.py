"""The event store port: an append-only, per-run numbered log with leases and a control inbox."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from podium.core.events import Event, RunCreated

RunStatus = Literal["pending", "running", "waiting", "succeeded", "failed", "cancelled"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
SignalKind = Literal["cancel", "retry", "skip", "approve", "reject"]


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


@dataclass(frozen=True, slots=True)
class Lease:
    """The right to append to one run. Appends carry `epoch`; a stale epoch is refused."""

    run_id: str
    owner: str
    epoch: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Signal:
    """A control request (cancel, retry, skip) from another process, consumed by the run driver."""

    id: int
    run_id: str
    kind: SignalKind
    payload: dict[str, Any]
    created_at: datetime


class EventStore(Protocol):
    """Implementations: memory, SQLite (and Postgres later). One contract suite tests them all."""

    async def create_run(self, created: RunCreated, *, workflow_name: str) -> None:
        """Store a new run whose first event (seq 1) is `created`. RunExistsError if taken."""
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
    ) -> int:
        """Append atomically after `expected_seq` under lease `epoch`; return the new last seq.

        Also sets the run's listed `status` and marks `consumed_signals` in the same transaction.
        ConcurrencyError if the last seq or the epoch differs; RunNotFoundError if no such run.
        """
        ...

    async def read(self, run_id: str, *, after_seq: int = 0) -> list[StoredEvent]:
        """Events with seq > after_seq in order. RunNotFoundError if no such run."""
        ...

    async def get_run(self, run_id: str) -> RunRecord: ...

    async def list_runs(
        self, *, statuses: Sequence[RunStatus] | None = None, limit: int = 100
    ) -> list[RunRecord]:
        """Newest first."""
        ...

    async def acquire_lease(self, run_id: str, owner: str, *, ttl_seconds: float) -> Lease:
        """Take the run's lease (free, expired, or held by a dead process on this host): epoch + 1.

        LeaseHeldError if a live owner holds it.
        """
        ...

    async def renew_lease(self, lease: Lease, *, ttl_seconds: float) -> Lease:
        """Extend a held lease; ConcurrencyError if it was taken over."""
        ...

    async def release_lease(self, lease: Lease) -> None: ...

    async def post_signal(self, run_id: str, kind: SignalKind, payload: dict[str, Any]) -> int: ...

    async def pending_signals(self, run_id: str) -> list[Signal]: ...

    async def prune(self, *, finished_before: datetime) -> int:
        """Delete finished runs (and their events and signals) last updated before the instant."""
        ...

    async def close(self) -> None: ...


def current_owner() -> str:
    """An owner name for leases: `host:pid:random`."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


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
