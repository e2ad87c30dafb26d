"""Many `podium run` processes started at once against one SQLite file.

    python -m benchmarks.processes --count 200 --db /tmp/x.db

Each process runs a two-step workflow (a shell step appending its number to a shared file, then a
file step). The script waits for all, then reads the store: it reports exit codes, runs that are
missing or unfinished, side effects that ran other than exactly once, the wall time and the p50/p99
time per process, and exits 1 if any process failed or any run is not `succeeded` exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podium.errors import RunNotFoundError
from podium.store.sqlite import SQLiteEventStore

WORKFLOW = """\
name: many_processes
inputs:
  n: {type: string}
  marks: {type: string}
steps:
  - id: mark
    kind: shell
    shell: sh
    run: echo ${{ inputs.n }} >> ${{ inputs.marks }}
  - id: note
    kind: file
    needs: mark
    op: write
    path: out/note-${{ inputs.n }}.txt
    content: "run ${{ inputs.n }} done"
"""


@dataclass(frozen=True, slots=True)
class Finished:
    n: int
    code: int
    seconds: float
    stderr: str


def podium_command() -> list[str]:
    """`podium` next to this interpreter (the venv's), else `python -m podium.cli`."""
    beside = Path(sys.executable).with_name("podium")
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "podium.cli"]


async def run_one(n: int, argv: list[str], cwd: Path, go: asyncio.Event) -> Finished:
    await go.wait()
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    code = proc.returncode if proc.returncode is not None else -1
    return Finished(n, code, time.perf_counter() - started, err.decode(errors="replace"))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def run_statuses(db: Path, run_ids: list[str]) -> dict[str, str]:
    """Each run's listed status, or `missing` if the store has no such run."""
    store = await SQLiteEventStore.open(db)
    try:
        statuses: dict[str, str] = {}
        for run_id in run_ids:
            try:
                statuses[run_id] = (await store.get_run(run_id)).status
            except RunNotFoundError:
                statuses[run_id] = "missing"
        return statuses
    finally:
        await store.close()


async def launch(count: int, db: Path, workdir: Path, prefix: str) -> list[Finished]:
    (workdir / "wf.yaml").write_text(WORKFLOW)
    marks = workdir / "marks.txt"
    go = asyncio.Event()
    jobs = []
    for n in range(count):
        argv = [*podium_command(), "run", "wf.yaml", "--db", str(db), "--run-id", f"{prefix}{n}"]
        argv += ["-i", f"n={n}", "-i", f"marks={marks}"]
        jobs.append(asyncio.create_task(run_one(n, argv, workdir, go)))
    go.set()
    return await asyncio.gather(*jobs)


def summarise(
    finished: list[Finished], statuses: dict[str, str], marks: Counter[str], wall: float
) -> dict[str, Any]:
    seconds = [f.seconds for f in finished]
    wrong_marks = sorted(str(f.n) for f in finished if marks[str(f.n)] != 1)
    return {
        "count": len(finished),
        "exit_codes": dict(sorted(Counter(f.code for f in finished).items())),
        "statuses": dict(sorted(Counter(statuses.values()).items())),
        "unfinished": sum(s not in ("succeeded", "failed", "cancelled") for s in statuses.values()),
        "side_effect_not_once": len(wrong_marks),
        "wall_s": round(wall, 3),
        "p50_s": round(percentile(seconds, 0.5), 3),
        "p99_s": round(percentile(seconds, 0.99), 3),
        "max_s": round(max(seconds, default=0.0), 3),
        "cpu_s": round(children_cpu_seconds(), 1),
    }


def children_cpu_seconds() -> float:
    """User + system CPU of every process waited for (the `podium run`s and their steps)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def failed(summary: dict[str, Any]) -> bool:
    return bool(
        summary["exit_codes"] != {0: summary["count"]}
        or summary["statuses"] != {"succeeded": summary["count"]}
        or summary["side_effect_not_once"] > 0
    )


async def main(count: int, db: Path, keep: bool) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="podium-procs-"))
    prefix = f"procs_{os.getpid()}_{int(time.time())}_"
    try:
        started = time.perf_counter()
        finished = await launch(count, db, workdir, prefix)
        wall = time.perf_counter() - started
        statuses = await run_statuses(db, [f"{prefix}{n}" for n in range(count)])
        marks_file = workdir / "marks.txt"
        lines = marks_file.read_text().split() if marks_file.exists() else []
        summary = summarise(finished, statuses, Counter(lines), wall)
        print(json.dumps(summary))
        for sample in [f for f in finished if f.code != 0][:3]:
            tail = sample.stderr.strip().splitlines()[-1:] or ["(no stderr)"]
            print(f"process {sample.n} exited {sample.code}: {tail[0]}", file=sys.stderr)
        return 1 if failed(summary) else 0
    finally:
        if keep:
            print(f"workspace kept at {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.processes", description=__doc__)
    parser.add_argument("--count", type=int, default=200, help="processes to start at once")
    parser.add_argument("--db", type=Path, required=True, help="the SQLite store file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse()
    sys.exit(asyncio.run(main(args.count, args.db.resolve(), args.keep)))
