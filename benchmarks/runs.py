"""Many runs in one process, and resuming a long run: the SPEC's concurrency and resume figures.

    python -m benchmarks.runs concurrent [--runs 1000] [--steps 10]
    python -m benchmarks.runs resume [--events 10000]

`concurrent` submits N runs of a 10-step workflow (pairs of chained 10 ms python steps) to one
engine on durable SQLite and waits for all; it reports completions, wall time and peak RSS.
`resume` records a finished chain with about `--events` events, then times what a resume does
before its first new step: open the store, read the log, replay it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from podium.core.fold import replay
from podium.runtime.engine import Engine
from podium.steps.python import register
from podium.store import open_store

CALL = "podium_bench_work"


@register(CALL)
async def work(latency_s: float = 0.0) -> str:
    if latency_s > 0:
        await asyncio.sleep(latency_s)
    return "x" * 64


def _step(i: int, latency_s: float, needs: list[str]) -> dict[str, Any]:
    args = {"latency_s": latency_s}
    return {
        "id": f"s{i}",
        "kind": "python",
        "call": CALL,
        "args": args,
        "needs": needs,
        "idempotent": True,
    }


def pairs_workflow(steps: int) -> dict[str, Any]:
    chained = [_step(i, 0.01, [f"s{i - 1}"] if i % 2 else []) for i in range(steps)]
    return {"name": "pairs", "steps": chained}


def chain_workflow(steps: int) -> dict[str, Any]:
    return {
        "name": "chain",
        "steps": [_step(i, 0.0, [f"s{i - 1}"] if i else []) for i in range(steps)],
    }


async def concurrent(runs: int, steps: int, folder: Path) -> dict[str, Any]:
    doc = pairs_workflow(steps)
    async with await Engine.open(folder / "runs.db", max_concurrent_runs=runs) as engine:
        started = time.perf_counter()
        ids = [await engine.submit(doc) for _ in range(runs)]
        states = await asyncio.gather(*(engine.wait(run_id) for run_id in ids))
        wall = time.perf_counter() - started
    done = sum(state.status == "succeeded" for state in states)
    return {
        "figure": "concurrent_runs",
        "runs": runs,
        "steps_per_run": steps,
        "succeeded": done,
        "wall_s": round(wall, 3),
        "peak_rss_mb": _peak_rss_mb(),
    }


async def resume(events: int, folder: Path) -> dict[str, Any]:
    db = folder / "resume.db"
    async with await Engine.open(db) as engine:
        state = await engine.run(chain_workflow(max(events // 2, 1)))
    started = time.perf_counter()
    store = await open_store(db)
    try:
        log = await store.read(state.run_id)
        replayed = replay(stored.event for stored in log)
    finally:
        await store.close()
    seconds = time.perf_counter() - started
    return {
        "figure": "resume",
        "events": len(log),
        "replayed_seq": replayed.seq,
        "open_read_replay_s": round(seconds, 4),
    }


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.runs")
    sub = parser.add_subparsers(dest="figure", required=True)
    conc = sub.add_parser("concurrent")
    conc.add_argument("--runs", type=int, default=1000)
    conc.add_argument("--steps", type=int, default=10)
    res = sub.add_parser("resume")
    res.add_argument("--events", type=int, default=10_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.figure == "concurrent":
            result = asyncio.run(concurrent(args.runs, args.steps, Path(tmp)))
        else:
            result = asyncio.run(resume(args.events, Path(tmp)))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
