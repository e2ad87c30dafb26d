"""Many runs parked on timers in one engine: what they hold while they wait.

    python -m benchmarks.parked [--runs 10000] [--db PATH]

Each run has one python step that fails retryably on its first attempt and retries after an
hour: the run parks on that backoff. When every run is parked, the script reports how many
asyncio tasks the process holds, how many leases the store shows held, the resident set size,
and how long submitting and parking took; then it closes the engine (the runs stay parked in the
store). A parked run must hold no task, no lease and no heartbeat: the task count must not grow
with the number of runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from podium.runtime.engine import Engine
from podium.steps.python import register

CALL = "podium_bench_fail_once"
RETRY_AFTER_SECONDS = 3600.0
MAX_TASKS = 2  # the engine's one timer task and its wake-up wait, whatever the number of runs
SUBMIT_BATCH = 100  # submitted together, so their commits share transactions


@register(CALL)
async def fail_once() -> str:
    raise RuntimeError("the first attempt fails; the retry waits an hour")


def workflow() -> dict[str, Any]:
    retry = {"max_attempts": 2, "initial_delay_seconds": RETRY_AFTER_SECONDS, "jitter": False}
    return {
        "name": "parked",
        "steps": [{"id": "s", "kind": "python", "call": CALL, "retry": retry}],
    }


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


async def measure(runs: int, db: Path) -> dict[str, Any]:
    baseline_tasks = len(asyncio.all_tasks())
    rss_before = rss_mb()
    async with await Engine.open(db, workspace=db.parent) as engine:
        started = time.perf_counter()
        doc = workflow()
        for first in range(0, runs, SUBMIT_BATCH):
            count = min(SUBMIT_BATCH, runs - first)
            await asyncio.gather(*(engine.submit(doc) for _ in range(count)))
        while _driving(engine):
            await asyncio.sleep(0.05)
        parked_s = time.perf_counter() - started
        tasks = await _settled_tasks(baseline_tasks)
        rss = rss_mb()
    statuses, leases, wakes = _store_counts(db)
    return {
        "runs": runs,
        "submit_and_park_s": round(parked_s, 3),
        "tasks_held": tasks,
        "leases_held": leases,
        "status_waiting": statuses.get("waiting", 0),
        "with_wake_at": wakes,
        "rss_mb": round(rss, 1),
        "rss_growth_mb": round(rss - rss_before, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "bytes_per_parked_run": round((rss - rss_before) * 2**20 / runs) if runs else 0,
    }


async def _settled_tasks(baseline: int) -> int:
    """Tasks held once the last drivers' lease releases have finished (at most 5 s later)."""
    deadline = time.perf_counter() + 5.0
    while True:
        held = len(asyncio.all_tasks()) - baseline
        if held <= MAX_TASKS or time.perf_counter() > deadline:
            return held
        await asyncio.sleep(0.05)


def _driving(engine: Engine) -> bool:
    return bool(engine._tasks)  # the driver tasks still alive


def _store_counts(db: Path) -> tuple[dict[str, int], int, int]:
    conn = sqlite3.connect(db)
    try:
        statuses = dict(conn.execute("SELECT status, count(*) FROM runs GROUP BY status"))
        leases = conn.execute("SELECT count(*) FROM runs WHERE owner IS NOT NULL").fetchone()[0]
        wakes = conn.execute("SELECT count(*) FROM runs WHERE wake_at IS NOT NULL").fetchone()[0]
    finally:
        conn.close()
    return statuses, leases, wakes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--db", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "parked.db"
        figures = asyncio.run(measure(args.runs, db))
    print(json.dumps(figures))
    ok = figures["tasks_held"] <= MAX_TASKS and figures["leases_held"] == 0
    return 0 if ok and figures["status_waiting"] == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
