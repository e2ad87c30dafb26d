"""Many runs on one Postgres store, driven by real `podium worker` processes.

    python -m benchmarks.scale [--runs 1000] [--steps 10] [--workers 1,2,3] [--concurrency 64]
        [--pg-url URL]

For each worker count W: a fresh schema in a database of the benchmark's own (see _pg.py); W
`podium worker --store URL --concurrency C` subprocesses, each started and ready (it said so on
stderr) before anything is submitted; then `--runs` runs of a chain of `--steps` python steps
(each returns 16 bytes at once: `benchmarks.scale:trivial`, imported by the workers) submitted
detached by a control-mode engine in this process, all at once. When every run has finished the
workers are stopped (SIGTERM) and the figures are read from the store's events:

- throughput: steps and runs over the span from the first `run.created` to the last
  `run.completed` (the events' `at`, one host's clock for all the processes);
- step start latency: a step's first `step.started` minus when it became ready, i.e. its needed
  step's `step.succeeded` or, for the first step, the run's `run.created`. The first steps'
  figure includes waiting for a free worker slot (up to W × C runs are driven at once); the later
  steps' is the engine's and the store's own hand-off from one step to the next.

One JSON line per worker count. Exits 1 if a run did not succeed or a worker failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import podium
from benchmarks import _pg
from podium.core.events import RunCompleted, RunCreated, StepStarted, StepSucceeded
from podium.runtime.engine import Engine
from podium.store import open_store

CALL = "benchmarks.scale:trivial"
ROOT = Path(__file__).resolve().parent.parent
READY_LINE = "worker driving up to"
FINISHED = ("succeeded", "failed", "cancelled")


def trivial() -> str:
    """A real python step that does nothing but return a little output."""
    return "x" * 16


def chain(steps: int, name: str = "scale-chain") -> dict[str, Any]:
    return {
        "name": name,
        "steps": [
            {
                "id": f"s{i}",
                "kind": "python",
                "call": CALL,
                "needs": [f"s{i - 1}"] if i else [],
                "idempotent": True,
            }
            for i in range(steps)
        ],
    }


# ------------------------------------------------------------------------------- workers


def worker_env() -> dict[str, str]:
    """This process's environment, with the podium it imported and this repository (for
    `benchmarks.…` calls) first on PYTHONPATH: the workers run exactly the code measured."""
    source = str(Path(podium.__file__).resolve().parent.parent)
    paths = [source, str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log: Path

    def said(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_worker(
    store: str, folder: Path, name: str, *options: str, hostname: str | None = None
) -> Worker:
    """`podium worker --store STORE OPTIONS…`; with `hostname`, in a UTS namespace of its own
    that has that host name (`unshare --uts`, root only), so its lease owner names another
    host, as a worker on another machine would: nobody here can see that its process died."""
    log = folder / f"{name}.log"
    argv = [sys.executable, "-m", "podium.cli", "worker", "--store", store, *options]
    if hostname is not None:
        script = f"hostname {shlex.quote(hostname)} && exec {shlex.join(argv)}"
        argv = ["unshare", "--uts", "sh", "-c", script]  # exec: the pid is the worker's
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=folder,
            env=worker_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C of the benchmark is not the worker's
        )
    return Worker(proc, log)


def wait_ready(workers: Sequence[Worker], timeout_s: float = 60.0) -> None:
    """Until every worker said it drives runs (its engine is open and claiming)."""
    deadline = time.monotonic() + timeout_s
    for worker in workers:
        while READY_LINE not in worker.said():
            if worker.proc.poll() is not None:
                raise RuntimeError(f"a worker exited {worker.proc.returncode}: {worker.said()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"a worker was not ready in {timeout_s:g} s: {worker.said()}")
            time.sleep(0.05)


def stop_workers(workers: Sequence[Worker], timeout_s: float = 30.0) -> list[int]:
    """SIGTERM each (it drains for its --drain), then wait; SIGKILL what is left. Exit codes."""
    for worker in workers:
        if worker.proc.poll() is None:
            worker.proc.send_signal(signal.SIGTERM)
    codes = []
    for worker in workers:
        try:
            codes.append(worker.proc.wait(timeout=timeout_s))
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            codes.append(worker.proc.wait())
    return codes


# ------------------------------------------------------------------------------- figures


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


@dataclass
class RunTimes:
    created: datetime | None = None
    completed: datetime | None = None
    outcome: str | None = None
    started: dict[str, datetime] = field(default_factory=dict)
    succeeded: dict[str, datetime] = field(default_factory=dict)


async def read_times(store_url: str) -> dict[str, RunTimes]:
    """Every run's creation, end, and each step's first start and success, from the events."""
    store = await open_store(store_url, create=False)
    runs: dict[str, RunTimes] = {}
    try:
        after = 0
        while page := await store.read_all(after=after, limit=5000):
            after = page[-1][0]
            for _, stored in page:
                t = runs.setdefault(stored.run_id, RunTimes())
                e = stored.event
                if isinstance(e, RunCreated):
                    t.created = e.at
                elif isinstance(e, RunCompleted):
                    t.completed, t.outcome = e.at, e.outcome
                elif isinstance(e, StepStarted):
                    t.started.setdefault(e.step_id, e.at)
                elif isinstance(e, StepSucceeded):
                    t.succeeded.setdefault(e.step_id, e.at)
    finally:
        await store.close()
    return runs


def latencies(runs: dict[str, RunTimes], steps: int) -> tuple[list[float], list[float]]:
    """(first steps, later steps): start minus ready, in seconds."""
    first, later = [], []
    for t in runs.values():
        for i in range(steps):
            started = t.started.get(f"s{i}")
            ready = t.created if i == 0 else t.succeeded.get(f"s{i - 1}")
            if started is None or ready is None:
                continue
            (first if i == 0 else later).append((started - ready).total_seconds())
    return first, later


def step_intervals(runs: dict[str, RunTimes], steps: int) -> list[float]:
    """A step's `step.succeeded` minus its needed step's, in seconds: one whole turn of the
    chain (commit the last result and the next start, launch, run, decide)."""
    found = []
    for t in runs.values():
        for i in range(1, steps):
            now, before = t.succeeded.get(f"s{i}"), t.succeeded.get(f"s{i - 1}")
            if now is not None and before is not None:
                found.append((now - before).total_seconds())
    return found


def summarise(runs: dict[str, RunTimes], steps: int) -> dict[str, Any]:
    created = [t.created for t in runs.values() if t.created is not None]
    completed = [t.completed for t in runs.values() if t.completed is not None]
    span = (max(completed) - min(created)).total_seconds() if created and completed else 0.0
    done_steps = sum(len(t.succeeded) for t in runs.values())
    first, later = latencies(runs, steps)
    every = first + later
    intervals = step_intervals(runs, steps)
    return {
        "succeeded": sum(t.outcome == "succeeded" for t in runs.values()),
        "steps_succeeded": done_steps,
        "span_s": round(span, 3),
        "steps_per_s": round(done_steps / span, 1) if span > 0 else None,
        "runs_per_s": round(len(completed) / span, 1) if span > 0 else None,
        "submit_span_s": round((max(created) - min(created)).total_seconds(), 3) if created else 0,
        "start_latency_ms": {"p50": ms(percentile(every, 0.5)), "p99": ms(percentile(every, 0.99))},
        "first_step_latency_ms": {
            "p50": ms(percentile(first, 0.5)),
            "p99": ms(percentile(first, 0.99)),
        },
        "later_step_latency_ms": {
            "p50": ms(percentile(later, 0.5)),
            "p99": ms(percentile(later, 0.99)),
        },
        "step_interval_ms": {
            "p50": ms(percentile(intervals, 0.5)),
            "p99": ms(percentile(intervals, 0.99)),
            "mean": ms(statistics.fmean(intervals)) if intervals else 0.0,
        },
    }


# ------------------------------------------------------------------------------- one round


async def count_finished(store_url: str) -> int:
    store = await open_store(store_url, create=False)
    try:
        done = 0
        for status in FINISHED:
            after = None
            while page := await store.list_runs(statuses=[status], limit=1000, after=after):
                done += len(page)
                after = page[-1].run_id
        return done
    finally:
        await store.close()


async def submit_all(store_url: str, runs: int, steps: int, workspace: Path) -> None:
    doc = chain(steps)
    async with await Engine.open(store_url, mode="control", workspace=workspace) as engine:
        await asyncio.gather(*(engine.submit(doc) for _ in range(runs)))


async def wait_finished(
    store_url: str, runs: int, workers: Sequence[Worker], timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while (done := await count_finished(store_url)) < runs:
        dead = [w for w in workers if w.proc.poll() is not None]
        if dead:
            raise RuntimeError(f"a worker exited {dead[0].proc.returncode}: {dead[0].said()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done} of {runs} runs finished in {timeout_s:g} s")
        await asyncio.sleep(0.5)


def one_round(
    database: str, count: int, runs: int, steps: int, concurrency: int, folder: Path
) -> dict[str, Any]:
    store = _pg.new_schema(database, f"w{count}")
    asyncio.run(open_and_close(store))  # migrated once, before the workers race to
    commit_s = _pg.commit_seconds(database)  # the server's own commit, just before the round
    options = ("--concurrency", str(concurrency), "--drain", "5")
    workers = [start_worker(store, folder, f"scale-w{count}-{i}", *options) for i in range(count)]
    try:
        wait_ready(workers)
        asyncio.run(submit_all(store, runs, steps, folder))
        asyncio.run(wait_finished(store, runs, workers, timeout_s=max(120.0, runs * steps * 0.1)))
    finally:
        codes = stop_workers(workers)
    times = asyncio.run(read_times(store))
    _pg.drop_schema(store)
    return {
        "figure": "scale",
        "workers": count,
        "concurrency": concurrency,
        "runs": runs,
        "steps_per_run": steps,
        "worker_exit_codes": codes,
        **summarise(times, steps),
        "pg_commit_ms": round(commit_s * 1000, 3),
        "loadavg": loadavg(),
    }


async def open_and_close(store_url: str) -> None:
    await (await open_store(store_url)).close()


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scale", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--workers", default="1,2,3", help="worker counts, one round each")
    parser.add_argument("--concurrency", type=int, default=64, help="each worker's --concurrency")
    parser.add_argument("--pg-url", help=f"the Postgres server (default ${_pg.URL_ENV})")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.workers.split(",") if c.strip()]
    if args.runs < 1 or args.steps < 1 or not counts or min(counts) < 1:
        parser.error("--runs, --steps and every worker count must be at least 1")
    failed = False
    with (
        _pg.bench_database(_pg.server_url(args.pg_url)) as database,
        tempfile.TemporaryDirectory(prefix="podium-scale-") as tmp,
    ):
        for count in counts:
            result = one_round(database, count, args.runs, args.steps, args.concurrency, Path(tmp))
            print(json.dumps(result), flush=True)
            failed |= result["succeeded"] != args.runs or any(result["worker_exit_codes"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
