"""Issue 12 (F14): a worker frozen (SIGSTOP) past its lease's TTL loses its runs to another
worker; thawed (SIGCONT), it gets none of its writes into their logs: the store refuses them as
stale (ConcurrencyError, fenced by the lease's epoch), and the worker logs and drops those runs
and goes on working."""

from __future__ import annotations

import asyncio
import re
import signal
import time
import uuid
from pathlib import Path

import pytest
from tests.crash.harness import SHELL_RECORD, Case

from .fleet import (
    Fleet,
    case_of,
    check_run,
    describe,
    event_rows,
    resumed_at,
    run_rows,
    shell_step,
    submit,
    takeovers,
    wait_until,
)

pytestmark = pytest.mark.timeout(180)

TTL_SECONDS = 5.0
RUNS = 3
STEP_SECONDS = 3.0  # the first step is still running when the worker is frozen
SUCCESSORS_WORK = [
    ("step.started", "s0"),  # s0 requeued (idempotent), then s1, and nothing else
    ("step.succeeded", "s0"),
    ("step.started", "s1"),
    ("step.succeeded", "s1"),
    ("run.completed", None),
]


def _case(root: Path, run_id: str) -> Case:
    """s0 (idempotent) records itself, then takes a while; s1 (not idempotent) follows it."""
    first = f"{SHELL_RECORD}\nsleep {STEP_SECONDS}\necho $tok"
    steps = [
        shell_step("s0", first, idempotent=True),
        shell_step("s1", f"{SHELL_RECORD}\necho $tok", idempotent=False, needs=("s0",)),
    ]
    return case_of(root, run_id, steps)


@pytest.mark.parametrize("thaw", ["while_the_successor_drives", "after_the_successor_is_done"])
def test_a_worker_thawed_after_its_lease_ran_out_gets_no_write_in(
    postgres_url: str, tmp_path: Path, thaw: str
) -> None:
    fleet = Fleet(postgres_url, tmp_path, ttl_seconds=TTL_SECONDS, concurrency=RUNS)
    cases = [_case(tmp_path, f"frozen-{n}-{uuid.uuid4().hex[:6]}") for n in range(RUNS)]
    ids = [case.run_id for case in cases]
    try:
        _freeze_and_thaw(fleet, cases, ids, early=thaw.startswith("while"))
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{describe(fleet)}") from None
    finally:
        fleet.close()
    for case in cases:
        check_run(case, postgres_url)


def _freeze_and_thaw(fleet: Fleet, cases: list[Case], ids: list[str], *, early: bool) -> None:
    url = fleet.url
    frozen = fleet.start()
    asyncio.run(submit(url, cases))
    wait_until(
        lambda: all(_running(url, rid, "s0") for rid in ids), "the first worker to start s0", 30
    )
    epochs = {rid: run_rows(url)[rid].epoch for rid in ids}
    assert all((run_rows(url)[rid].owner or "").startswith(frozen.owner_prefix) for rid in ids)
    frozen_at = fleet.kill(frozen, signal.SIGSTOP)
    successor = fleet.start()
    if early:  # thawed while the successor runs s0 again: both drive the runs for a while
        wait_until(
            lambda: all(takeovers(event_rows(url, rid)) for rid in ids),
            "the successor to take the runs over",
            30 + TTL_SECONDS,
        )
        assert all(run_rows(url)[rid].status == "running" for rid in ids)
        fleet.kill(frozen, signal.SIGCONT)
    wait_until(
        lambda: all(run_rows(url)[rid].status == "succeeded" for rid in ids),
        "the successor to finish the frozen worker's runs",
        30 + TTL_SECONDS,
    )
    logs = {rid: event_rows(url, rid) for rid in ids}
    for rid in ids:
        assert len(takeovers(logs[rid])) == 1, rid
        # not before the lease ran out: at least a TTL after its last renewal, a heartbeat
        # (TTL / 3) at most before the freeze
        assert resumed_at(url, rid)[0] - frozen_at >= TTL_SECONDS * 2 / 3 - 0.05, rid
        assert run_rows(url)[rid].epoch > epochs[rid], "the takeover did not bump the epoch"

    if not early:
        fleet.kill(frozen, signal.SIGCONT)
    refused = re.compile(r"the driver of run (\S+) stopped: .*(another driver|taken over)")
    wait_until(
        lambda: {m.group(1) for m in refused.finditer(frozen.output())} >= set(ids),
        lambda: f"the thawed worker to drop its {RUNS} runs; its log:\n{frozen.output()}",
        20,
    )
    time.sleep(1.0)  # anything still on its way from the thawed worker
    assert frozen.alive(), frozen.output()
    assert "Traceback" not in frozen.output().split("stopped:")[0]  # no crash before the refusals
    for rid in ids:
        rows = event_rows(url, rid)
        assert rows == logs[rid], f"the thawed worker wrote to {rid} after the successor's end"
        taken = rows.index(takeovers(rows)[0])
        after = [(row.kind, row.fields.get("step_id")) for row in rows[taken + 1 :]]
        assert after == SUCCESSORS_WORK, f"{rid}: not only the successor's work after the takeover"

    # The thawed worker still works: alone now, it drives a new run to its end.
    fleet.kill(successor, signal.SIGTERM)
    assert successor.proc.wait(timeout=30) == 0
    late = _case(fleet.folder, f"after-thaw-{uuid.uuid4().hex[:6]}")
    asyncio.run(submit(url, [late]))
    wait_until(lambda: run_rows(url)[late.run_id].status == "succeeded", "a new run", 30)
    check_run(late, url)


def _running(url: str, run_id: str, step_id: str) -> bool:
    return any(
        row.kind == "step.started" and row.fields.get("step_id") == step_id
        for row in event_rows(url, run_id)
    )
