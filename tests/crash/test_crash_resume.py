"""SIGKILL the real `podium` CLI at random moments and check SPEC F3: a committed step never runs
again, `podium resume` finishes the run, in-flight idempotent steps re-run with the same key and
in-flight side-effecting steps wait for `podium retry` / `podium skip`.

The full size (>= 200 seeded runs, `slow`) runs in `make test`; a 10-seed sample runs in the fast
set. `PODIUM_CRASH_RUNS` and `PODIUM_CRASH_WORKERS` change the size and the parallelism.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import (
    CALL,
    EXIT_OK,
    EXIT_WAITING,
    LEDGER,
    SHELL_RECORD,
    Case,
    Podium,
    Result,
    Row,
    StepPlan,
    Summary,
    Trace,
    check,
    idempotency_key,
    kill_group,
    read_rows,
    run_seeds,
    step_processes,
    write_case,
)

FULL_RUNS = int(os.environ.get("PODIUM_CRASH_RUNS", "200"))
WORKERS = int(os.environ.get("PODIUM_CRASH_WORKERS", "3"))
SHARDS = 8
FULL_SEEDS = list(range(1000, 1000 + max(FULL_RUNS, SHARDS)))
FAST_SEEDS = list(range(10))
READY_TIMEOUT_SECONDS = 30.0


@pytest.fixture(scope="module")
def crash_summary(request: pytest.FixtureRequest) -> Iterator[Summary]:
    """Adds up the shards and prints the figures once at the end."""
    total = Summary()
    yield total
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if total.runs and capture is not None:
        with capture.global_and_fixture_disabled():
            print(f"\n[crash TOTAL] {total.line()}")


def _report(summary: Summary, capsys: pytest.CaptureFixture[str], label: str) -> None:
    with capsys.disabled():
        print(f"\n[{label}] {summary.line()}")
    if summary.failures:
        shown = "\n\n".join(f[:6000] for f in summary.failures[:3])
        pytest.fail(f"{len(summary.failures)} of {summary.runs} runs broke the promise:\n\n{shown}")


def test_crash_resume_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Ten seeded runs, each with its own SQLite file: the fast set's cover of the whole path."""
    summary = run_seeds(FAST_SEEDS, tmp_path, workers=WORKERS, shared_db=False)
    _report(summary, capsys, "crash sample")
    assert summary.runs == len(FAST_SEEDS)
    assert summary.tally["kills"] > 0


@pytest.mark.chaos
@pytest.mark.parametrize("shard", range(SHARDS))
def test_crash_resume_full(
    shard: int, tmp_path: Path, capsys: pytest.CaptureFixture[str], crash_summary: Summary
) -> None:
    """One eighth of the full run; the seeds of a shard run 3 at a time against ONE shared
    SQLite file, so concurrent podium processes (and their SIGKILLs) contend for its locks."""
    seeds = FULL_SEEDS[shard::SHARDS]
    summary = run_seeds(seeds, tmp_path, workers=WORKERS, shared_db=True)
    crash_summary.merge(summary)
    _report(summary, capsys, f"crash shard {shard + 1}/{SHARDS}")
    assert summary.runs == len(seeds)


# ------------------------------------------------------------------------ deterministic kills


def _case(tmp_path: Path, steps: list[dict[str, Any]], plans: list[StepPlan]) -> Case:
    case = Case(
        seed=-1,
        run_id=f"crash-fixed-{uuid.uuid4().hex[:8]}",
        workdir=tmp_path / "work",
        workflow={"name": "crash-fixed", "steps": steps},
        plans={p.id: p for p in plans},
    )
    write_case(case)
    return case


def _record(sid: str, ledger: Path, **extra: Any) -> dict[str, Any]:
    return {
        "id": sid,
        "kind": "python",
        "call": f"{CALL}:record",
        "args": {"ledger": str(ledger)},
        **extra,
    }


def _kill_when_ready(podium: Podium, case: Case, ready: Path, trace: Trace) -> None:
    """Start `podium run`, wait for the step to signal it is mid-flight, SIGKILL the engine."""
    proc = podium.spawn(["run", str(case.workflow_path), "--run-id", case.run_id], case.workdir)
    started = time.monotonic()
    while not ready.exists() and proc.poll() is None:
        if time.monotonic() - started > READY_TIMEOUT_SECONDS:
            break
        time.sleep(0.01)
    kill_group(proc.pid)
    out, err = proc.communicate()
    assert ready.exists(), f"the step never got in flight (exit {proc.returncode}):\n{out}\n{err}"
    assert proc.returncode == -9, (proc.returncode, out, err)
    seconds = time.monotonic() - started
    trace.commands.append(Result(("run", case.run_id), proc.returncode, out, err, seconds, seconds))
    trace.snapshots.append(read_rows(podium.db, case.run_id))


def _ledger(case: Case, sid: str) -> list[dict[str, Any]]:
    lines = case.ledger.read_text().splitlines() if case.ledger.exists() else []
    return [e for e in map(json.loads, lines) if e["step"] == sid]


def _kinds(rows: list[Row], kind: str) -> list[dict[str, Any]]:
    return [r.fields for r in rows if r.kind == kind]


def _call(podium: Podium, trace: Trace, case: Case, *args: str) -> Result:
    result = podium.call(args, case.workdir)
    trace.commands.append(result)
    return result


def test_sigkill_mid_flight_side_effect_waits_for_retry(tmp_path: Path) -> None:
    """A non-idempotent shell step in flight at SIGKILL: resume exits 3 with it `interrupted`,
    it does not run again until `podium retry`, which runs it once more and finishes the run."""
    work = tmp_path / "work"
    ready = work / "ready"
    side = f'{SHELL_RECORD}\nif [ ! -e ready ]; then touch ready; sleep 60; fi\necho "$tok"'
    case = _case(
        tmp_path,
        [
            _record("prep", work / LEDGER),
            # unsandboxed: the orphan that resume has to stop exists only then (a sandboxed step
            # dies with the engine: tests/cli/test_sandbox_cli.py)
            {"id": "side", "kind": "shell", "shell": "sh", "run": side, "needs": ["prep"]}
            | {"sandbox": False},
            {
                "id": "note",
                "kind": "file",
                "op": "append",
                "path": LEDGER,
                "needs": ["side"],
                "content": '{"step": "note", "kind": "file"}\n',
            },
        ],
        [
            StepPlan("prep", "python", False),
            StepPlan("side", "shell", False, ("prep",)),
            StepPlan("note", "file", False, ("side",)),
        ],
    )
    podium, trace = Podium(tmp_path / "podium.db"), Trace()
    _kill_when_ready(podium, case, ready, trace)
    assert step_processes(case.run_id)  # the killed engine's step runs on as an orphan

    resumed = _call(podium, trace, case, "resume", case.run_id)
    assert resumed.code == EXIT_WAITING, resumed.stdout + resumed.stderr
    assert not step_processes(case.run_id)  # resume stopped it before deciding anything
    assert f"podium retry {case.run_id} side" in resumed.stdout
    document = podium.show(case.run_id, case.workdir)
    assert document["status"] == "waiting"
    assert {s["id"]: s["status"] for s in document["steps"]} == {
        "prep": "succeeded",
        "side": "interrupted",
        "note": "pending",
    }
    rows = read_rows(podium.db, case.run_id)
    assert _kinds(rows, "run.resumed")[-1].get("interrupted") == ["side"]
    assert _kinds(rows, "run.resumed")[-1].get("stopped") == ["side"]
    assert len(_ledger(case, "side")) == 1  # not re-run behind the person's back

    again = _call(podium, trace, case, "resume", case.run_id)  # still parked, still not re-run
    assert again.code == EXIT_WAITING
    assert len(_ledger(case, "side")) == 1
    assert read_rows(podium.db, case.run_id) == rows  # a parked run's resume records nothing

    retried = _call(podium, trace, case, "retry", case.run_id, "side")
    assert retried.code == EXIT_OK, retried.stdout + retried.stderr
    keys = [e["key"] for e in _ledger(case, "side")]
    assert keys == [
        idempotency_key(case.run_id, "side", 0),
        idempotency_key(case.run_id, "side", 1),
    ]
    assert len(_ledger(case, "prep")) == 1
    rows = read_rows(podium.db, case.run_id)
    assert [r.fields["step_id"] for r in rows if r.kind == "step.retry_requested"] == ["side"]
    verdict = check(case, podium, trace)
    assert verdict.tally["interrupted"] == 1
    assert verdict.tally["retry_requested"] == 1

    finished = _call(podium, trace, case, "resume", case.run_id)  # a finished run stays finished
    assert finished.code == EXIT_OK
    assert read_rows(podium.db, case.run_id) == rows
    assert len(_ledger(case, "side")) == 2


def test_sigkill_mid_flight_idempotent_step_reruns_with_same_key(tmp_path: Path) -> None:
    """An idempotent python step in flight at SIGKILL: resume re-runs it at once, with the same
    idempotency key and attempt, without asking anybody; steps committed before are not re-run."""
    work = tmp_path / "work"
    ready = work / "ready"
    case = _case(
        tmp_path,
        [
            _record("a", work / LEDGER),
            {
                "id": "b",
                "kind": "python",
                "call": f"{CALL}:block_once",
                "needs": ["a"],
                "idempotent": True,
                "args": {"ledger": str(work / LEDGER), "ready": str(ready)},
            },
            _record("c", work / LEDGER, needs=["b"], idempotent=False),
        ],
        [
            StepPlan("a", "python", False),
            StepPlan("b", "python", True, ("a",)),
            StepPlan("c", "python", False, ("b",)),
        ],
    )
    podium, trace = Podium(tmp_path / "podium.db"), Trace()
    _kill_when_ready(podium, case, ready, trace)
    assert [e["key"] for e in _ledger(case, "b")] == [idempotency_key(case.run_id, "b", 0)]

    resumed = _call(podium, trace, case, "resume", case.run_id)
    assert resumed.code == EXIT_OK, resumed.stdout + resumed.stderr
    runs = _ledger(case, "b")
    assert [(e["key"], e["attempt"]) for e in runs] == [
        (idempotency_key(case.run_id, "b", 0), 1)
    ] * 2
    assert len(_ledger(case, "a")) == 1
    assert len(_ledger(case, "c")) == 1
    rows = read_rows(podium.db, case.run_id)
    resumes = _kinds(rows, "run.resumed")
    assert [(r.get("requeued"), r.get("interrupted")) for r in resumes] == [(["b"], None)]
    assert not _kinds(rows, "step.retry_requested")
    starts = [
        (r["attempt"], r.get("generation", 0))
        for r in _kinds(rows, "step.started")
        if r["step_id"] == "b"
    ]
    assert starts == [(1, 0), (1, 0)]
    verdict = check(case, podium, trace)
    assert verdict.tally["requeued"] == 1
