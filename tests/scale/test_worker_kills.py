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
RUNS = 100
KILLS = 8
KILL_GAP_SECONDS = (0.3, 1.5)
FINISH_SECONDS = 150.0


def test_sigkilled_workers_lose_no_run_and_repeat_no_committed_step(
    postgres_url: str, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    cases = [shell_case(SEED + n, tmp_path) for n in range(RUNS)]
    asyncio.run(submit(postgres_url, cases))
    fleet = Fleet(postgres_url, tmp_path, concurrency=8, options=no_recovery_limit())
    started = time.monotonic()
    tally: Counter[str] = Counter()
    try:
        for worker in [fleet.start(ready=False) for _ in range(2)]:
            fleet.wait_ready(worker)
        _drive(fleet, rng, tally)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{describe(fleet)}") from None
    finally:
        fleet.close()
    seconds = time.monotonic() - started
    per_run = Counter[str]()
    for case in cases:
        verdict = check_run(case, postgres_url)
        tally.update(verdict.tally)
        per_run[case.run_id] = verdict.tally["takeovers"]
    most = max(per_run.values())
    print(
        f"\nworker kills: {RUNS} runs on 2 workers, {tally['kills']} SIGKILLs, {seconds:.1f} s; "
        f"{tally['takeovers']} takeovers (at most {most} of one run), {tally['requeued']} "
        f"steps requeued, {tally['interrupted']} interrupted ({tally['retry']} retried, "
        f"{tally['skip']} skipped), {tally['executions']} executions, {tally['re_executions']} "
        f"repeats of idempotent steps, {tally['cut_effects']} effects of attempts cut by a kill"
    )
    assert tally["kills"] >= KILLS // 2  # the runs may all finish before the last kills
    assert tally["takeovers"] > 0  # the kills hit runs in flight


def _drive(fleet: Fleet, rng: random.Random, tally: Counter[str]) -> None:
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
        if tally["kills"] < KILLS and time.monotonic() >= next_kill:
            victim = rng.choice(fleet.live())
            fleet.kill(victim)
            tally["kills"] += 1
            fleet.start(ready=False)  # a replacement, as a supervisor would start
            next_kill = time.monotonic() + rng.uniform(*KILL_GAP_SECONDS)
        time.sleep(0.1)
