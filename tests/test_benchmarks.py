"""`python -m benchmarks.dag`: the JSON line is complete and self-consistent; bad workloads exit 2.

Never asserts on speed: timings depend on the machine.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIELDS = {
    "store", "workload", "digest", "nodes", "k", "makespan_s", "critical_path_s", "bound_s",
    "cp_ratio", "k_ratio", "overhead_ms_per_step", "peak_rss_mb", "db_bytes",
    "db_bytes_per_step_beyond_output", "commits", "disk_commit_ms", "runs",
}  # fmt: skip


POSTGRES = (
    os.environ.get("PODIUM_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
)


def postgres_server() -> str:
    """The test server's URL; the test is skipped without one (failed under
    PODIUM_REQUIRE_POSTGRES=1, as in tests/store/conftest.py)."""
    psycopg = pytest.importorskip("psycopg")
    try:
        psycopg.connect(POSTGRES, connect_timeout=5).close()
    except psycopg.Error as exc:
        reason = f"no Postgres server at {POSTGRES} ({exc})"
        if os.environ.get("PODIUM_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return POSTGRES


def small_workload(n: int = 20, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    nodes = []
    for i in range(n):
        earlier = [f"n{j:02d}" for j in range(i)]
        deps = sorted(rng.sample(earlier, min(len(earlier), rng.randint(0, 2))))
        nodes.append({"id": f"n{i:02d}", "deps": deps, "latency_s": round(rng.uniform(0, 0.01), 6)})
    return {
        "schema_version": 1,
        "name": "tiny20",
        "seed": seed,
        "description": "test workload",
        "params": {"n": n},
        "output_bytes": 32,
        "latency_model": {"kind": "uniform", "max_s": 0.01},
        "nodes": nodes,
    }


def bounds(w: dict[str, Any], k: int) -> tuple[float, float]:
    finish: dict[str, float] = {}
    for node in w["nodes"]:
        start = max((finish[d] for d in node["deps"]), default=0.0)
        finish[node["id"]] = start + node["latency_s"]
    cp = max(finish.values())
    return cp, max(cp, sum(x["latency_s"] for x in w["nodes"]) / k)


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.dag", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_figures_are_complete_and_consistent(tmp_path: Path) -> None:
    workload = small_workload()
    path = tmp_path / "tiny20.json"
    path.write_text(json.dumps(workload))

    done = run_bench("--workload", str(path), "--k", "3", "--repeat", "2")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    fig = json.loads(lines[0])
    assert set(fig) == FIELDS
    cp, bound = bounds(workload, 3)
    n = len(workload["nodes"])
    assert (fig["store"], fig["workload"], fig["nodes"]) == ("sqlite", "tiny20", n)
    assert (fig["k"], fig["runs"]) == (3, 2)
    assert len(fig["digest"]) == 64
    assert fig["critical_path_s"] == pytest.approx(cp, abs=1e-6)
    assert fig["bound_s"] == pytest.approx(bound, abs=1e-6)
    assert fig["makespan_s"] >= fig["critical_path_s"]
    assert fig["makespan_s"] >= fig["bound_s"]
    assert fig["cp_ratio"] == pytest.approx(fig["makespan_s"] / cp, abs=1e-3)
    assert fig["k_ratio"] == pytest.approx(fig["makespan_s"] / bound, abs=1e-3)
    overhead = (fig["makespan_s"] - bound) / n * 1000
    assert fig["overhead_ms_per_step"] == pytest.approx(overhead, abs=1e-3)
    assert fig["db_bytes"] > 0
    beyond = (fig["db_bytes"] - n * workload["output_bytes"]) / n
    assert fig["db_bytes_per_step_beyond_output"] == pytest.approx(beyond, abs=0.1)
    assert fig["commits"] > 0
    assert fig["peak_rss_mb"] > 0
    assert fig["disk_commit_ms"] > 0


def test_the_dag_benchmark_runs_on_postgres(tmp_path: Path) -> None:
    server = postgres_server()
    path = tmp_path / "tiny20.json"
    path.write_text(json.dumps(small_workload()))

    done = run_bench("--workload", str(path), "--store", "postgres", "--pg-url", server)

    assert done.returncode == 0, done.stderr
    fig = json.loads(done.stdout)
    assert set(fig) == FIELDS
    assert (fig["store"], fig["nodes"], fig["runs"]) == ("postgres", 20, 1)
    assert fig["db_bytes"] > 0  # the tables grew beyond an empty store's
    assert fig["commits"] is None  # Postgres counts no commits of its own
    assert fig["disk_commit_ms"] > 0


def _break(workload: dict[str, Any], how: str) -> dict[str, Any]:
    nodes = workload["nodes"]
    if how == "missing field":
        del workload["output_bytes"]
    elif how == "unknown dep":
        nodes[5]["deps"] = ["ghost"]
    elif how == "not topological":
        nodes[2]["deps"] = [nodes[9]["id"]]
    elif how == "negative latency":
        nodes[3]["latency_s"] = -0.5
    return workload


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("missing field", "missing field(s): output_bytes"),
        ("unknown dep", "dep 'ghost' is not a node of this workload"),
        ("not topological", "comes later (a cycle, or nodes not in topological order)"),
        ("negative latency", "latency_s must be a number >= 0"),
    ],
)
def test_malformed_workload_exits_2(tmp_path: Path, how: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_break(small_workload(), how)))

    done = run_bench("--workload", str(path))

    assert done.returncode == 2
    assert "malformed workload" in done.stderr
    assert message in done.stderr
    assert done.stdout == ""


def test_runs_benchmarks_report_their_figures() -> None:
    import json
    import subprocess
    import sys

    conc = subprocess.run(
        [sys.executable, "-m", "benchmarks.runs", "concurrent", "--runs", "20", "--steps", "4"],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(conc.stdout)
    assert figures["succeeded"] == figures["runs"] == 20
    assert figures["peak_rss_mb"] > 0
    res = subprocess.run(
        [sys.executable, "-m", "benchmarks.runs", "resume", "--events", "200"],
        capture_output=True,
        text=True,
        check=True,
    )
    resumed = json.loads(res.stdout)
    assert resumed["events"] == resumed["replayed_seq"] >= 200


def test_the_parked_benchmark_holds_no_task_per_run() -> None:
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.parked", "--runs", "300"],
        capture_output=True,
        text=True,
        check=True,  # it exits 1 when parked runs hold tasks or leases
    )
    figures = json.loads(done.stdout)
    assert figures["status_waiting"] == figures["with_wake_at"] == 300
    assert figures["tasks_held"] <= 2
    assert figures["leases_held"] == 0


def test_the_scale_benchmark_drives_runs_with_worker_processes() -> None:
    server = postgres_server()
    size = ["--runs", "6", "--steps", "3", "--workers", "1,2", "--concurrency", "4"]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", *size, "--pg-url", server],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stderr  # it exits 1 when a run or a worker failed
    rounds = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["workers"] for r in rounds] == [1, 2]
    for r in rounds:
        assert (r["runs"], r["succeeded"], r["steps_succeeded"]) == (6, 6, 18)
        assert r["worker_exit_codes"] == [0] * r["workers"]
        assert r["steps_per_s"] > 0
        assert r["runs_per_s"] > 0
        assert r["first_step_latency_ms"]["p99"] >= r["first_step_latency_ms"]["p50"] >= 0
        assert r["step_interval_ms"]["p50"] > 0
        assert r["pg_commit_ms"] > 0


def test_the_takeover_benchmark_times_a_killed_workers_runs() -> None:
    server = postgres_server()
    size = ["--runs", "2", "--iterations", "1", "--lease-ttl", "2"]
    if os.geteuid() != 0:  # a host name of A's own needs `unshare --uts`
        size.append("--same-host")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.takeover", *size, "--pg-url", server],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stderr  # it exits 1 when a run is not taken over
    fig = json.loads(done.stdout)
    assert (fig["taken_over"], fig["iterations"], fig["lease_ttl_s"]) == (2, 1, 2.0)
    took = fig["kill_to_resumed_s"]
    assert 0 < took["min"] <= took["median"] <= took["max"]
