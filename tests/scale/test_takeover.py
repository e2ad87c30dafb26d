"""Issue 12 (F14): a dead worker's runs are taken over by a live one within TTL + 2 s, and a
worker that comes back after its lease ran out (SIGSTOP, then SIGCONT) gets none of its writes
in: the store refuses them (ConcurrencyError) and the worker logs and drops those runs.

The workers of the takeover tests each have a host name of their own: to the store they are on
other machines, so a dead one's runs are freed by the lease's TTL, not by its dead pid."""

from __future__ import annotations

import asyncio
import random
import statistics
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.crash.harness import SHELL_RECORD, Case
from tests.pg_cluster import new_schema

from .fleet import (
    ELSEWHERE,
    Fleet,
    Worker,
    can_run_elsewhere,
    case_of,
    describe,
    event_rows,
    lease_expiry,
    resumed_at,
    run_rows,
    shell_step,
    submit,
    takeovers,
    wait_until,
)

pytestmark = pytest.mark.timeout(240)

TTL_SECONDS = 5.0
LANES = 4
ROUNDS = 5  # LANES x ROUNDS = 20 takeovers
SLACK_SECONDS = 2.0  # SPEC §4: takeover after a worker dies <= TTL + 2 s
elsewhere = pytest.mark.skipif(not can_run_elsewhere(), reason="needs root and unshare --uts")


def _hold(root: Path, run_id: str) -> Case:
    """One non-idempotent step that records itself and then sleeps: the run stays in flight."""
    text = f"{SHELL_RECORD}\nsleep 60\necho done"
    return case_of(root, run_id, [shell_step("hold", text, idempotent=False)])


def _started(url: str, run_id: str) -> bool:
    return any(row.kind == "step.started" for row in event_rows(url, run_id))


@dataclass(frozen=True)
class Plan:
    ttl_seconds: float
    lanes: int  # independent stores (schemas), each killing its victims one after another
    rounds: int
    after_renewal: bool = False  # kill right after a heartbeat renewed the lease, not at random


def _measure(database: str, root: Path, plan: Plan) -> list[float]:
    """Every lane's takeover times (seconds from the SIGKILL to the successor's run.resumed)."""
    results: list[float] = []
    errors: list[str] = []
    lanes = []
    for lane in range(plan.lanes):
        url = asyncio.run(new_schema(database))
        folder = root / f"lane-{lane}"
        folder.mkdir()
        lanes.append(
            threading.Thread(target=_lane, args=(url, folder, lane, plan, results, errors))
        )
    for thread in lanes:
        thread.start()
    for thread in lanes:
        thread.join()
    assert not errors, "\n".join(errors)
    assert len(results) == plan.lanes * plan.rounds
    return results


def _lane(
    url: str, root: Path, seed: int, plan: Plan, results: list[float], errors: list[str]
) -> None:
    """Rounds of: the victim holds a run, a successor starts, the victim is SIGKILLed, the
    successor takes the run over (and is the next round's victim)."""
    rng = random.Random(seed)
    fleet = Fleet(url, root, ttl_seconds=plan.ttl_seconds, concurrency=4)
    try:
        victim = fleet.start(host=f"{ELSEWHERE}-{seed}-0")
        for round_no in range(plan.rounds):
            run_id = f"hold-{seed}-{round_no}-{uuid.uuid4().hex[:6]}"
            successor = fleet.start(host=f"{ELSEWHERE}-{seed}-{round_no + 1}", ready=False)
            results.append(_takeover(fleet, rng, run_id, victim, successor, plan.after_renewal))
            victim = successor
    except Exception as exc:  # reported by the test, with the workers' logs
        errors.append(f"lane {seed}: {exc!r}\n{describe(fleet)}")
    finally:
        fleet.close()


def _takeover(
    fleet: Fleet,
    rng: random.Random,
    run_id: str,
    victim: Worker,
    successor: Worker,
    after_renewal: bool,
) -> float:
    """The victim takes a new run; SIGKILL it (at a random moment of its heartbeat period, or
    just after a renewal): the seconds until the successor's `run.resumed`."""
    url = fleet.url
    asyncio.run(submit(url, [_hold(fleet.folder, run_id)]))
    wait_until(lambda: _started(url, run_id), f"{victim.pid} to start {run_id}", 30)
    owner = run_rows(url)[run_id].owner or ""
    assert owner.startswith(victim.owner_prefix), owner
    fleet.wait_ready(successor)
    if after_renewal:
        expiry = lease_expiry(url, run_id)
        wait_until(lambda: lease_expiry(url, run_id) != expiry, "a renewal", fleet.ttl_seconds)
    else:
        time.sleep(rng.uniform(0.0, fleet.ttl_seconds / 3))  # anywhere between two heartbeats
    killed_at = fleet.kill(victim)
    wait_until(lambda: bool(takeovers(event_rows(url, run_id))), f"a takeover of {run_id}", 30)
    (resumed,) = takeovers(event_rows(url, run_id))
    seconds = resumed_at(url, run_id)[0] - killed_at
    row = run_rows(url)[run_id]
    assert resumed.fields.get("interrupted") == ["hold"], resumed.fields
    assert (row.owner or "").startswith(successor.owner_prefix) or row.status == "waiting", row
    return seconds


def _late(results: list[float], ttl_seconds: float) -> list[float]:
    return sorted(s for s in results if s > ttl_seconds + SLACK_SECONDS)


@elsewhere
def test_a_dead_workers_runs_are_taken_over_within_ttl_plus_2s(
    postgres_database: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    results = _measure(postgres_database, tmp_path, Plan(TTL_SECONDS, LANES, ROUNDS))
    print(
        f"\ntakeover after SIGKILL (TTL {TTL_SECONDS:g} s, {len(results)} kills, "
        f"{time.monotonic() - started:.1f} s): min {min(results):.2f} s, median "
        f"{statistics.median(results):.2f} s, max {max(results):.2f} s"
    )
    late = _late(results, TTL_SECONDS)
    assert not late, f"{len(late)} takeovers slower than TTL + 2 s: {late}"


@elsewhere
def test_a_lease_that_ran_out_is_taken_over_without_waiting_for_other_news(
    postgres_database: str, tmp_path: Path
) -> None:
    """A lease running out makes no notification. An idle successor looked for one every 5 s
    only, so with a 7 s TTL and the kill right after a renewal it took over after some 10 s."""
    results = _measure(postgres_database, tmp_path, Plan(7.0, 3, 1, after_renewal=True))
    print(f"\ntakeover with TTL 7 s, killed just after a renewal: {sorted(results)}")
    assert not _late(results, 7.0), results
