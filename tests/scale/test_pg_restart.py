"""Issue 12 (F14): the Postgres server restarts under two busy workers (a clean restart, then a
crash: `pg_ctl stop -m immediate` and start), and every run still finishes, each step once.

The server is a private cluster of this test's own (tests/pg_cluster.py), never the machine's."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from tests.pg_cluster import Cluster, private_cluster

from .fleet import TERMINAL, Fleet, check_run, describe, run_rows, shell_case, submit, wait_until

pytestmark = pytest.mark.timeout(180)

RUNS = 40
SEED = 4242
FINISH_SECONDS = 90.0


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with private_cluster("this test restarts its server: it needs a private cluster") as private:
        yield private


def test_every_run_finishes_across_postgres_restarts(cluster: Cluster, tmp_path: Path) -> None:
    url = cluster.url
    cases = [shell_case(SEED + n, tmp_path, before=0.4, prefix="restart") for n in range(RUNS)]
    asyncio.run(submit(url, cases))
    fleet = Fleet(url, tmp_path, ttl_seconds=5.0, concurrency=8)
    started = time.monotonic()
    outages: list[float] = []
    try:
        for worker in [fleet.start(ready=False) for _ in range(2)]:
            fleet.wait_ready(worker)
        for share, mode in ((0.2, "fast"), (0.5, "immediate")):
            wait_until(lambda s=share: _finished(url) >= s * RUNS, f"{share:.0%} of the runs", 60)  # type: ignore[misc]
            down = time.monotonic()
            cluster.restart(mode)
            outages.append(time.monotonic() - down)
        wait_until(
            lambda: _finished(url) == RUNS,
            lambda: f"every run to finish: {run_rows(url)}",
            FINISH_SECONDS,
        )
        assert all(w.alive() for w in fleet.workers), "a worker died with the server"
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{describe(fleet)}\n{cluster.log_tail()}") from None
    finally:
        fleet.close()
    seconds = time.monotonic() - started
    tally: Counter[str] = Counter()
    for case in cases:
        tally.update(check_run(case, url).tally)
    print(
        f"\npostgres restarts: {RUNS} runs on 2 workers, {len(outages)} restarts (fast, "
        f"immediate; down {', '.join(f'{s:.2f}' for s in outages)} s), {seconds:.1f} s; "
        f"{tally['takeovers']} takeovers, {tally['executions']} executions"
    )
    assert tally["takeovers"] == 0  # nobody lost a lease over a short outage


def _finished(url: str) -> int:
    try:
        return sum(r.status in TERMINAL for r in run_rows(url).values())
    except psycopg.Error:  # the server is restarting
        return 0
