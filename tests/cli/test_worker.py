"""`podium worker` as a real process: it drives what `podium run --detach` left in the store;
on SIGTERM it takes nothing more, lets the runs in hand finish within --drain, and gives back
(lease released, step left in flight) what is still running after it."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3

from .conftest import Cli, wait_until

QUICK = """\
name: quick
steps:
  - {id: hello, kind: shell, run: [echo, hello]}
  - {id: bye, kind: file, op: write, path: bye.txt, content: bye, needs: [hello]}
"""
SLOW = """\
name: slow
steps:
  - {id: nap, kind: shell, run: [sleep, "30"]}
"""


def _status(cli: Cli, run_id: str) -> str:
    return str(cli.show(run_id)["status"])


def _owner(cli: Cli, run_id: str) -> str | None:
    with sqlite3.connect(cli.db) as db:
        (owner,) = db.execute("SELECT owner FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return owner if owner is None else str(owner)


def test_a_worker_drives_detached_runs_and_stops_on_sigterm(cli: Cli) -> None:
    cli.write("quick.yaml", QUICK)
    detached = cli("run", "quick.yaml", "--detach")
    assert detached.returncode == 0, detached.stderr
    run_id = detached.stdout.strip()
    worker = cli.start("worker", "--concurrency", "2")
    wait_until(lambda: _status(cli, run_id) == "succeeded", f"{run_id} to succeed")
    assert (cli.folder / "bye.txt").read_text() == "bye"
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert "worker driving up to 2 runs at once" in out
    assert "no more runs taken" in out
    assert "gave back" not in out


def test_a_draining_worker_gives_back_what_is_still_running(cli: Cli) -> None:
    cli.write("slow.yaml", SLOW)
    run_id = cli("run", "slow.yaml", "--detach").stdout.strip()
    worker = cli.start("worker", "--drain", "0.5")
    cli.wait_for_step(worker, run_id, "nap", "running")
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert f"gave back 1 runs for another worker: {run_id}" in out
    assert _owner(cli, run_id) is None  # the lease is free: the next worker takes it at once
    assert _status(cli, run_id) == "running"
    successor = cli.start("worker")  # takes it over at once, not after a lease's TTL
    cli.wait_for_step(successor, run_id, "nap", "interrupted")  # not idempotent: a person decides
    successor.send_signal(signal.SIGTERM)
    assert successor.wait(timeout=30) == 0


def test_a_worker_claims_only_the_runs_of_its_queues(cli: Cli) -> None:
    cli.write("quick.yaml", QUICK)
    on_gpu = cli("run", "quick.yaml", "--detach", "--queue", "gpu")
    assert on_gpu.returncode == 0, on_gpu.stderr
    assert "a worker of queue gpu runs it" in on_gpu.stderr
    gpu_run = on_gpu.stdout.strip()
    plain_run = cli("run", "quick.yaml", "--detach").stdout.strip()
    assert cli.show(gpu_run)["status"] == "pending"

    plain = cli.start("worker")  # the `default` queue only
    wait_until(lambda: _status(cli, plain_run) == "succeeded", f"{plain_run} to succeed")
    gpu_worker = cli.start("worker", "--queue", "io", "--queue", "gpu")
    wait_until(lambda: _status(cli, gpu_run) == "succeeded", f"{gpu_run} to succeed")
    for proc in (plain, gpu_worker):
        proc.send_signal(signal.SIGTERM)
    out, _ = gpu_worker.communicate(timeout=30)
    plain.communicate(timeout=30)
    assert "from queue io, gpu" in out
    listed = {r["run_id"]: r["queue"] for r in json.loads(cli("runs", "--json").stdout)}
    assert listed == {gpu_run: "gpu", plain_run: "default"}


def test_a_bad_queue_name_is_refused_before_anything_is_recorded(cli: Cli) -> None:
    cli.write("quick.yaml", QUICK)
    for args in (
        ["run", "quick.yaml", "--detach", "--queue", "no spaces"],
        ["worker", "--queue", ""],
    ):
        refused = cli(*args)
        assert refused.returncode == 2
        said = " ".join(refused.stderr.replace("│", " ").split())  # unwrap the error box
        assert "is not valid: use 1 to 64 letters, digits" in said
    assert not cli.db.exists() or json.loads(cli("runs", "--json").stdout) == []


def test_a_worker_given_a_ray_cluster_that_is_not_there_stops_at_start(cli: Cli) -> None:
    with socket.socket() as held:  # bound, not listening, and no other process's meanwhile
        held.bind(("127.0.0.1", 0))
        address = f"ray://127.0.0.1:{held.getsockname()[1]}"
        done = cli("worker", "--ray", address)
    assert done.returncode == 2
    assert f"cannot reach the Ray cluster at {address}" in done.stderr
    assert "podium worker --ray" in done.stderr
    bad = cli("worker", "--ray", "http://head:8265")
    assert bad.returncode == 2
    assert "write auto" in bad.stderr
