"""How soon a live worker takes over the runs of one that died, on Postgres.

    python -m benchmarks.takeover [--runs 10] [--iterations 10] [--lease-ttl 5] [--pg-url URL]

Each iteration, on a fresh schema of a database of the benchmark's own (see _pg.py): worker A
(`podium worker --lease-ttl TTL`) drives `--runs` runs, each in a python step that sleeps for an
hour (`benchmarks.takeover:hold`); once every run's step has started, worker B (the same TTL) is
started and waits until it says it is ready; then A is SIGKILLed. A takeover time is a run's
`run.resumed` (B's first turn on it, stamped by B) minus the instant of the kill, both on this
host's clock. The figures are over every run of every iteration; B is stopped (SIGTERM) after.

By default A runs under a host name of its own (a UTS namespace: `unshare --uts`, root only), as
a worker on another machine: B cannot see that A's process died and must wait for the leases to
run out. A lease outlives A's last heartbeat (every TTL / 3) by the TTL, so a run can be taken
over between 2/3 TTL and TTL after the kill, plus however long B takes to notice and claim it.
With `--same-host` both share this host's name, and B takes A's runs over as soon as it next
claims and finds A's pid gone (store.base.owner_is_dead), whatever the TTL.
Exits 1 if a run was not taken over in time (60 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from benchmarks import _pg
from benchmarks.scale import Worker, loadavg, open_and_close, start_worker, stop_workers, wait_ready
from podium.runtime.engine import Engine

CALL = "benchmarks.takeover:hold"
GIVE_UP_SECONDS = 60.0


async def hold(seconds: float = 3600.0) -> str:
    """A step that is still running when its worker dies."""
    await asyncio.sleep(seconds)
    return "held"


def workflow() -> dict[str, Any]:
    return {
        "name": "takeover",
        "steps": [{"id": "hold", "kind": "python", "call": CALL, "idempotent": True}],
    }


def runs_with(store_url: str, kind: str) -> dict[str, float]:
    """run id -> the `at` (unix seconds) of its first event of `kind`."""
    with psycopg.connect(store_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT run_id, min(at) FROM events WHERE kind = %s GROUP BY run_id", (kind,)
        ).fetchall()
    return {run_id: float(at) for run_id, at in rows}


def owner_hosts(store_url: str) -> set[str]:
    """The host part of every lease owner in the store (owners are `host:pid:random`)."""
    with psycopg.connect(store_url, autocommit=True) as conn:
        rows = conn.execute("SELECT DISTINCT split_part(owner, ':', 1) FROM runs").fetchall()
    return {host for (host,) in rows}


def wait_for(store_url: str, kind: str, count: int, workers: list[Worker]) -> dict[str, float]:
    deadline = time.monotonic() + GIVE_UP_SECONDS
    while len(found := runs_with(store_url, kind)) < count:
        for w in workers:
            if w.proc.poll() is not None and w.proc.returncode != -signal.SIGKILL:
                raise RuntimeError(f"a worker exited {w.proc.returncode}: {w.said()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(found)} of {count} runs had {kind} in {GIVE_UP_SECONDS} s")
        time.sleep(0.05)
    return found


async def submit(store_url: str, runs: int, workspace: Path) -> None:
    async with await Engine.open(store_url, mode="control", workspace=workspace) as engine:
        await asyncio.gather(*(engine.submit(workflow()) for _ in range(runs)))


def iteration(
    database: str, runs: int, ttl: float, folder: Path, i: int, same_host: bool
) -> list[float]:
    store = _pg.new_schema(database, f"t{i}")
    asyncio.run(open_and_close(store))
    options = ("--lease-ttl", f"{ttl:g}", "--concurrency", str(max(runs, 1)), "--drain", "0")
    elsewhere = None if same_host else "podium-bench-worker-a"
    a = start_worker(store, folder, f"takeover-a{i}", *options, hostname=elsewhere)
    workers = [a]
    try:
        wait_ready([a])
        asyncio.run(submit(store, runs, folder))
        wait_for(store, "step.started", runs, workers)
        hosts = owner_hosts(store)
        if hosts != {elsewhere or socket.gethostname()}:
            raise RuntimeError(f"worker A's leases name host(s) {sorted(hosts)}, not its own")
        b = start_worker(store, folder, f"takeover-b{i}", *options)
        workers.append(b)
        wait_ready([b])
        killed_at = time.time()
        a.proc.kill()
        a.proc.wait()
        resumed = wait_for(store, "run.resumed", runs, workers)
    finally:
        stop_workers(workers)
    _pg.drop_schema(store)
    return [at - killed_at for at in resumed.values()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.takeover", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--runs", type=int, default=10, help="runs worker A holds when killed")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--lease-ttl", type=float, default=5.0, help="both workers' --lease-ttl")
    parser.add_argument(
        "--same-host",
        action="store_true",
        help="run A under this host's name: B sees its pid gone and need not wait for the TTL",
    )
    parser.add_argument("--pg-url", help=f"the Postgres server (default ${_pg.URL_ENV})")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.iterations < 1 or args.lease_ttl < 1:
        parser.error("--runs and --iterations must be at least 1, --lease-ttl at least 1 s")
    times: list[float] = []
    per_iteration: list[float] = []
    load = [loadavg()]
    try:
        with (
            _pg.bench_database(_pg.server_url(args.pg_url)) as database,
            tempfile.TemporaryDirectory(prefix="podium-takeover-") as tmp,
        ):
            for i in range(args.iterations):
                found = iteration(database, args.runs, args.lease_ttl, Path(tmp), i, args.same_host)
                times += found
                per_iteration.append(round(max(found), 3))
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    load.append(loadavg())
    print(
        json.dumps(
            {
                "figure": "takeover",
                "lease_ttl_s": args.lease_ttl,
                "worker_a": "same host" if args.same_host else "own host name",
                "runs_per_iteration": args.runs,
                "iterations": args.iterations,
                "taken_over": len(times),
                "kill_to_resumed_s": {
                    "min": round(min(times), 3),
                    "median": round(statistics.median(times), 3),
                    "max": round(max(times), 3),
                },
                "slowest_per_iteration_s": per_iteration,
                "loadavg_before_after": load,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
