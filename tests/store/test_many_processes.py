"""Many processes started at once on one SQLite file: every one finishes, every run exactly once.

Two shapes: 20 processes each drive a run through the store directly (create, lease, appends,
renew, release, with a side effect between); and 50 real `podium run` processes of a workflow
whose shell step appends a line to a shared file (`slow`: each process costs ~0.6 s of CPU, mostly
imports; benchmarks/processes.py measures the same at 200).
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from pathlib import Path

import pytest
from benchmarks.processes import launch, run_statuses

from podium.store.sqlite import SQLiteEventStore

DIRECT_COUNT = 20
PODIUM_RUN_COUNT = 50

CHILD = """
import asyncio, sys
from datetime import UTC, datetime
from podium.core.events import RunCompleted, RunCreated, StepStarted, StepSucceeded
from podium.store.base import current_owner
from podium.store.sqlite import SQLiteEventStore

async def main(path, run_id, marks):
    store = await SQLiteEventStore.open(path)
    try:
        now = lambda: datetime.now(UTC)
        workflow = {"name": "many", "steps": [{"id": "a", "kind": "shell", "run": "true"}]}
        created = RunCreated(at=now(), run_id=run_id, workflow=workflow, inputs={}, workspace=".")
        await store.create_run(created, workflow_name="many")
        lease = await store.acquire_lease(run_id, current_owner(), ttl_seconds=60)
        started = StepStarted(at=now(), step_id="a", attempt=1)
        seq = await store.append(run_id, [started], expected_seq=1, epoch=lease.epoch,
                                 status="running")
        with open(marks, "a") as file:  # the step's side effect
            file.write(run_id + "\\n")
        lease = await store.renew_lease(lease, ttl_seconds=60)
        done = [StepSucceeded(at=now(), step_id="a", output="ok"),
                RunCompleted(at=now(), outcome="succeeded")]
        await store.append(run_id, done, expected_seq=seq, epoch=lease.epoch, status="succeeded")
        await store.release_lease(lease)
    finally:
        await store.close()

asyncio.run(main(*sys.argv[1:]))
"""


async def test_many_processes_drive_runs_through_one_store(tmp_path: Path) -> None:
    db, marks = tmp_path / "podium.db", tmp_path / "marks.txt"
    run_ids = [f"run_{i:03}" for i in range(DIRECT_COUNT)]
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, str(db), run_id, str(marks), stderr=asyncio.subprocess.PIPE
        )
        for run_id in run_ids
    ]
    results = await asyncio.gather(*(child.communicate() for child in children))

    failures = [
        err.decode() for child, (_, err) in zip(children, results, strict=True) if child.returncode
    ]
    assert failures == []
    assert Counter(marks.read_text().split()) == dict.fromkeys(run_ids, 1)
    store = await SQLiteEventStore.open(db)
    try:
        records = await store.list_runs(limit=DIRECT_COUNT + 1)
        assert sorted(r.run_id for r in records) == run_ids
        assert {(r.status, r.last_seq, r.owner, r.epoch) for r in records} == {
            ("succeeded", 4, None, 1)
        }
    finally:
        await store.close()


@pytest.mark.slow
async def test_many_podium_run_processes_all_succeed_exactly_once(tmp_path: Path) -> None:
    db, workdir = tmp_path / "podium.db", tmp_path / "work"
    workdir.mkdir()

    finished = await launch(PODIUM_RUN_COUNT, db, workdir, "run_many_")

    assert [(f.n, f.code, f.stderr) for f in finished if f.code != 0] == []
    statuses = await run_statuses(db, [f"run_many_{n}" for n in range(PODIUM_RUN_COUNT)])
    assert Counter(statuses.values()) == {"succeeded": PODIUM_RUN_COUNT}
    marks = Counter((workdir / "marks.txt").read_text().split())
    assert marks == {str(n): 1 for n in range(PODIUM_RUN_COUNT)}
