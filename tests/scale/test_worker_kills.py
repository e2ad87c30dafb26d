"""Issue 12 (F3, F14): 100 runs on Postgres driven by two `podium worker` processes that are
SIGKILLed at seeded random moments and replaced, until every run finishes. No run is lost, no
step whose completion was committed runs again, and an idempotent step re-run after a kill reuses
its idempotency key; a non-idempotent step cut by a kill is interrupted, and retried or skipped
as a person would (seeded), like the SQLite crash harness does. A run may be taken over several
times, so the workers lift the recovery limit where they have one (`--max-recoveries 1000`)."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from .fleet import (
    TERMINAL,
    Fleet,
    check_run,
    describe,
    event_rows,
    interrupted_steps,
    no_recovery_limit,
    run_rows,
    settle,
    shell_case,
    submit,
)

pytestmark = pytest.mark.timeout(240)

SEED = 20261203
KILL_GAP_SECONDS = (0.3, 1.5)
FINISH_SECONDS = 150.0


@dataclass(frozen=True)
class Size:
    runs: int
    workers: int
    kills: int


def test_sigkilled_workers_lose_no_run_and_repeat_no_committed_step(
    postgres_url: str, tmp_path: Path
) -> None:
    _kill_workers(postgres_url, tmp_path, Size(runs=100, workers=2, kills=8))


@pytest.mark.chaos
@pytest.mark.timeout(600)
def test_sigkilled_workers_at_full_size(postgres_url: str, tmp_path: Path) -> None:
    _kill_workers(postgres_url, tmp_path, Size(runs=400, workers=3, kills=30))


def _kill_workers(url: str, root: Path, size: Size) -> None:
    rng = random.Random(SEED)
    cases = [shell_case(SEED + n, root) for n in range(size.runs)]
    asyncio.run(submit(url, cases))
    fleet = Fleet(url, root, concurrency=8, options=no_recovery_limit())
    started = time.monotonic()
    tally: Counter[str] = Counter()
    try:
        for worker in [fleet.start(ready=False) for _ in range(size.workers)]:
            fleet.wait_ready(worker)
        _drive(fleet, rng, tally, size.kills)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{describe(fleet)}") from None
    finally:
        fleet.close()
    seconds = time.monotonic() - started
    per_run = Counter[str]()
    for case in cases:
        verdict = check_run(case, url)
        tally.update(verdict.tally)
        per_run[case.run_id] = verdict.tally["takeovers"]
    print(
        f"\nworker kills: {size.runs} runs on {size.workers} workers, {tally['kills']} SIGKILLs, "
        f"{seconds:.1f} s; {tally['takeovers']} takeovers (at most {max(per_run.values())} of "
        f"one run), {tally['requeued']} steps requeued, {tally['interrupted']} interrupted "
        f"({tally['retry']} retried, {tally['skip']} skipped), {tally['executions']} executions, "
        f"{tally['re_executions']} repeats of idempotent steps, {tally['cut_effects']} effects of "
        "attempts cut by a kill"
    )
    assert tally["kills"] >= size.kills // 2  # the runs may all finish before the last kills
    assert tally["takeovers"] > 0  # the kills hit runs in flight


def _drive(fleet: Fleet, rng: random.Random, tally: Counter[str], kills: int) -> None:
    """Kill and replace workers at seeded moments; settle interrupted steps; until all finish."""
    url = fleet.url
    deadline = time.monotonic() + FINISH_SECONDS
    next_kill = time.monotonic() + rng.uniform(*KILL_GAP_SECONDS)
    settled: set[tuple[str, int]] = set()
    while True:
        runs = run_rows(url)
        if all(r.status in TERMINAL for r in runs.values()):
            return
        if time.monotonic() > deadline:
            left = {rid: r for rid, r in runs.items() if r.status not in TERMINAL}
            raise AssertionError(f"{len(left)} runs did not finish in {FINISH_SECONDS:g} s: {left}")
        decisions: dict[str, tuple[str, str]] = {}
        for rid, row in sorted(runs.items()):
            if row.status != "waiting" or (rid, row.last_seq) in settled:
                continue
            steps = interrupted_steps(event_rows(url, rid))
            if steps:
                verb = rng.choice(("retry", "skip"))
                decisions[rid] = (verb, steps[0])
                settled.add((rid, row.last_seq))
                tally[verb] += 1
        if decisions:
            asyncio.run(settle(url, decisions))
        if tally["kills"] < kills and time.monotonic() >= next_kill:
            victim = rng.choice(fleet.live())
            fleet.kill(victim)
            tally["kills"] += 1
            fleet.start(ready=False)  # a replacement, as a supervisor would start
            next_kill = time.monotonic() + rng.uniform(*KILL_GAP_SECONDS)
        time.sleep(0.1)
