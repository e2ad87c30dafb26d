"""Run a shared DAG workload (../shared/bench/*.json) through the real engine, durably.

    python -m benchmarks.dag --workload ../shared/bench/layered200.json [--k 8] [--repeat 3]
        [--store sqlite|postgres] [--pg-url URL]

Every node becomes a `python` step that sleeps its `latency_s` and returns `output_bytes` bytes.
The run goes through `Engine` with a fresh store: a SQLite file (WAL, synchronous=FULL), or with
`--store postgres` a fresh schema in a database of the benchmark's own on the Postgres server
(see benchmarks/_pg.py), and one JSON line of figures is printed (see benchmarks/README.md for
what each one means).
A malformed workload file exits with status 2 and a message saying what is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import re
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import _pg
from podium.runtime.engine import Engine
from podium.steps.python import register

CALL = "podium_bench_node"
REQUIRED = ("name", "seed", "schema_version", "output_bytes", "latency_model", "nodes")
_STEP_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")


@register(CALL)
async def bench_node(latency_s: float, size: int) -> str:
    """One simulated agent call: wait `latency_s`, return `size` bytes."""
    if latency_s > 0:
        await asyncio.sleep(latency_s)
    return "x" * size


class WorkloadError(ValueError):
    """The workload file is not a valid shared-format workload."""


# ------------------------------------------------------------------------------- workload


@dataclass(frozen=True)
class Workload:
    """A shared-format workload and its lower bounds (same definitions as workloads.py)."""

    raw: dict[str, Any]
    ids: list[str]
    deps: dict[str, list[str]]
    latency: dict[str, float]

    @property
    def name(self) -> str:
        return str(self.raw["name"])

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def output_bytes(self) -> int:
        return int(self.raw["output_bytes"])

    @property
    def total_work_s(self) -> float:
        return sum(self.latency.values())

    @property
    def critical_path_s(self) -> float:
        finish: dict[str, float] = {}
        for nid in self.ids:
            start = max((finish[d] for d in self.deps[nid]), default=0.0)
            finish[nid] = start + self.latency[nid]
        return max(finish.values(), default=0.0)

    def k_bound_s(self, k: int | None) -> float:
        """max(critical path, total work / k); the critical path alone when k is None."""
        cp = self.critical_path_s
        return cp if not k else max(cp, self.total_work_s / k)

    def digest(self) -> str:
        """sha256 of the canonical JSON, as `Workload.digest()` in workloads.py computes it."""
        raw = self.raw
        canonical = {
            "schema_version": raw["schema_version"],
            "name": raw["name"],
            "seed": raw["seed"],
            "description": raw.get("description", ""),
            "params": raw.get("params", {}),
            "output_bytes": raw["output_bytes"],
            "latency_model": raw["latency_model"],
            "nodes": [
                {"id": nid, "deps": list(self.deps[nid]), "latency_s": self.latency[nid]}
                for nid in self.ids
            ],
        }
        text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def load_workload(path: Path) -> Workload:
    """Read and validate a workload file; WorkloadError says what is wrong."""
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise WorkloadError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise WorkloadError(f"{path} is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise WorkloadError(f"{path}: the top level must be an object, not {type(raw).__name__}")
    missing = [f for f in REQUIRED if f not in raw]
    if missing:
        raise WorkloadError(f"{path}: missing field(s): {', '.join(missing)}")
    size = raw["output_bytes"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise WorkloadError(f"{path}: output_bytes must be a non-negative integer, got {size!r}")
    nodes = raw["nodes"]
    if not isinstance(nodes, list) or not nodes:
        raise WorkloadError(f"{path}: nodes must be a non-empty list")
    ids: list[str] = []
    deps: dict[str, list[str]] = {}
    latency: dict[str, float] = {}
    for i, node in enumerate(nodes):
        where = f"{path}: nodes[{i}]"
        if not isinstance(node, dict):
            raise WorkloadError(f"{where} must be an object")
        lacking = [f for f in ("id", "deps", "latency_s") if f not in node]
        if lacking:
            raise WorkloadError(f"{where}: missing field(s): {', '.join(lacking)}")
        nid, nd, lat = node["id"], node["deps"], node["latency_s"]
        if not isinstance(nid, str) or not nid:
            raise WorkloadError(f"{where}: id must be a non-empty string")
        if nid in deps:
            raise WorkloadError(f"{where}: duplicate node id {nid!r}")
        if not isinstance(nd, list) or not all(isinstance(d, str) for d in nd):
            raise WorkloadError(f"{where} ({nid}): deps must be a list of node ids")
        if len(set(nd)) != len(nd):
            raise WorkloadError(f"{where} ({nid}): duplicate dep")
        for d in nd:
            if d not in deps:
                known = any(isinstance(x, dict) and x.get("id") == d for x in nodes)
                problem = (
                    "comes later (a cycle, or nodes not in topological order)"
                    if known or d == nid
                    else "is not a node of this workload"
                )
                raise WorkloadError(f"{where} ({nid}): dep {d!r} {problem}")
        ok = isinstance(lat, int | float) and not isinstance(lat, bool) and math.isfinite(lat)
        if not ok or lat < 0:
            raise WorkloadError(f"{where} ({nid}): latency_s must be a number >= 0, got {lat!r}")
        ids.append(nid)
        deps[nid] = list(nd)
        latency[nid] = float(lat)
    return Workload(raw=raw, ids=ids, deps=deps, latency=latency)


def build_workflow(wl: Workload, k: int | None) -> dict[str, Any]:
    """One python step per node; ids kept when they are valid step ids, else `s<index>`."""
    keep = all(_STEP_ID.match(nid) for nid in wl.ids)
    step_id = {nid: (nid if keep else f"s{i}") for i, nid in enumerate(wl.ids)}
    steps = [
        {
            "id": step_id[nid],
            "kind": "python",
            "call": CALL,
            "args": {"latency_s": wl.latency[nid], "size": wl.output_bytes},
            "needs": [step_id[d] for d in wl.deps[nid]],
            "idempotent": True,
            "expected_seconds": wl.latency[nid],
        }
        for nid in wl.ids
    ]
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", f"bench-{wl.name}")[:200]
    return {"name": name, "steps": steps, "max_concurrency": k}


# ------------------------------------------------------------------------------ measuring


def _files(db: Path) -> list[Path]:
    return [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]


def store_bytes(db: Path) -> int:
    """Size on disk of the store (file, -wal, -shm) after a TRUNCATE checkpoint."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return sum(p.stat().st_size for p in _files(db) if p.exists())


def remove_store(db: Path) -> None:
    for p in _files(db):
        p.unlink(missing_ok=True)


async def empty_store_bytes(folder: Path) -> int:
    """Size of a store that was opened (created, migrated) and closed, with nothing in it."""
    db = folder / "empty-baseline.db"
    engine = await Engine.open(db)
    await engine.close()
    size = store_bytes(db)
    remove_store(db)
    return size


def disk_commit_seconds(folder: Path, commits: int = 30) -> float:
    """Median time of a bare durable commit (WAL, synchronous=FULL, one small row) on this disk:
    the floor under any step that must be durable before the next one starts."""
    db = folder / "disk-probe.db"
    conn = sqlite3.connect(db, isolation_level=None)
    times = []
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, data BLOB)")
        for _ in range(commits):
            start = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (data) VALUES (?)", (b"x" * 300,))
            conn.execute("COMMIT")
            times.append(time.perf_counter() - start)
    finally:
        conn.close()
        remove_store(db)
    return statistics.median(times)


@dataclass
class RunFigures:
    makespan_s: float
    db_bytes: int
    commits: int | None
    disk_commit_s: float = 0.0


async def run_once(
    wl: Workload, workflow: dict[str, Any], store: str | Path
) -> tuple[float, int | None]:
    """The run's makespan and the write transactions the store counted (None if it counts none)."""
    engine = await Engine.open(store)
    try:
        start = time.perf_counter()
        state = await engine.run(workflow, {})
        makespan = time.perf_counter() - start
    finally:
        await engine.close()
    if state.status != "succeeded":
        failed = [
            f"{sid}: {s.status} {s.error or ''}"
            for sid, s in state.steps.items()
            if s.status != "succeeded"
        ]
        raise RuntimeError(f"run {state.run_id} ended {state.status}; steps not done: {failed[:5]}")
    commits = getattr(engine.store, "commits", None)
    return makespan, None if commits is None else int(commits)


def figures(wl: Workload, k: int | None, runs: list[RunFigures]) -> dict[str, Any]:
    n = wl.n
    makespan = statistics.median(r.makespan_s for r in runs)
    cp = wl.critical_path_s
    bound = wl.k_bound_s(k)
    db_bytes = int(statistics.median(r.db_bytes for r in runs))
    if wl.total_work_s == 0:
        overhead = makespan / n * 1000
    else:
        overhead = (makespan - bound) / n * 1000
    return {
        "workload": wl.name,
        "digest": wl.digest(),
        "nodes": n,
        "k": k,
        "makespan_s": round(makespan, 6),
        "critical_path_s": round(cp, 6),
        "bound_s": round(bound, 6),
        "cp_ratio": round(makespan / cp, 4) if cp > 0 else None,
        "k_ratio": round(makespan / bound, 4) if k and bound > 0 else None,
        "overhead_ms_per_step": round(overhead, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "db_bytes": db_bytes,
        "db_bytes_per_step_beyond_output": round((db_bytes - n * wl.output_bytes) / n, 1),
        "commits": _median_or_none([r.commits for r in runs]),
        "disk_commit_ms": round(statistics.median(r.disk_commit_s for r in runs) * 1000, 4),
        "runs": len(runs),
    }


def _median_or_none(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return int(statistics.median(known)) if known else None


async def bench(wl: Workload, k: int | None, db: Path | None, repeat: int) -> dict[str, Any]:
    workflow = build_workflow(wl, k)
    scratch = Path(tempfile.mkdtemp(prefix="podium-bench-"))
    try:
        baseline = await empty_store_bytes(scratch)
        runs: list[RunFigures] = []
        for i in range(repeat):
            target = db if db is not None else scratch / f"run{i}.db"
            remove_store(target)  # fresh store for every run
            disk = disk_commit_seconds(scratch)
            makespan, commits = await run_once(wl, workflow, target)
            runs.append(RunFigures(makespan, store_bytes(target) - baseline, commits, disk))
            if db is None:
                remove_store(target)
        return {"store": "sqlite", **figures(wl, k, runs)}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


async def bench_postgres(wl: Workload, k: int | None, server: str, repeat: int) -> dict[str, Any]:
    """As `bench`, each run on a fresh schema of a database made for it (dropped at the end);
    `db_bytes` is the store's tables' `pg_total_relation_size` minus that of an empty store, and
    `disk_commit_ms` the server's own single-row INSERT + COMMIT."""
    workflow = build_workflow(wl, k)
    with _pg.bench_database(server) as database:
        empty = _pg.new_schema(database, "empty")
        await (await Engine.open(empty)).close()
        baseline = _pg.store_bytes(empty)
        _pg.drop_schema(empty)
        runs: list[RunFigures] = []
        for _ in range(repeat):
            store = _pg.new_schema(database, "run")
            disk = _pg.commit_seconds(database)
            makespan, commits = await run_once(wl, workflow, store)
            runs.append(RunFigures(makespan, _pg.store_bytes(store) - baseline, commits, disk))
            _pg.drop_schema(store)
        return {"store": "postgres", **figures(wl, k, runs)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.dag", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--workload", required=True, type=Path, help="workload JSON file")
    parser.add_argument("--k", type=int, help="max_concurrency (default: unlimited)")
    parser.add_argument("--db", type=Path, help="store file (default: a fresh temporary file)")
    parser.add_argument("--repeat", type=int, default=1, help="runs; timings are medians")
    parser.add_argument(
        "--store", choices=("sqlite", "postgres"), default="sqlite", help="default: sqlite"
    )
    parser.add_argument(
        "--pg-url",
        help=f"the Postgres server for --store postgres (default ${_pg.URL_ENV}, else "
        f"{_pg.DEFAULT_URL}); a database of the benchmark's own is made there and dropped",
    )
    args = parser.parse_args(argv)
    if args.k is not None and args.k < 1:
        parser.error("--k must be at least 1")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.db is not None and args.store == "postgres":
        parser.error("--db is the SQLite file; with --store postgres give --pg-url")
    if args.db is not None and any(p.exists() for p in _files(args.db)):
        parser.error(f"--db {args.db} exists; give a new path (each run needs a fresh store)")
    try:
        wl = load_workload(args.workload)
    except WorkloadError as exc:
        print(f"error: malformed workload: {exc}", file=sys.stderr)
        return 2
    try:
        if args.store == "postgres":
            server = _pg.server_url(args.pg_url)
            result = asyncio.run(bench_postgres(wl, args.k, server, args.repeat))
        else:
            result = asyncio.run(bench(wl, args.k, args.db, args.repeat))
    except (RuntimeError, _pg.psycopg.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
