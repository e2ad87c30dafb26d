"""Startup recovery with a limit, through real processes: a step that SIGKILLs every worker
that runs it is taken over `--max-recoveries` times, then the run is dead-lettered (the next
worker lives on), `podium runs --status dead` lists it with its reason, and `podium retry RUN`
brings it back once the cause is gone."""

from __future__ import annotations

import json
import signal
import subprocess

from .conftest import Cli, wait_until

POISON = """\
import os
import signal
from pathlib import Path


def swallow(cure: str) -> str:
    if not Path(cure).exists():
        os.kill(os.getpid(), signal.SIGKILL)  # the worker dies with the step in flight
    return "cured"
"""
WORKFLOW = """\
name: poisoned
steps:
  - id: swallow
    kind: python
    call: "poison:swallow"
    args: {{cure: "{cure}"}}
    idempotent: true
  - {{id: after, kind: file, op: write, path: after.txt, content: done, needs: [swallow]}}
"""
MAX_RECOVERIES = 2


def test_a_run_that_kills_its_workers_is_dead_lettered_listed_and_revived(cli: Cli) -> None:
    cure = cli.folder / "cured"
    cli.write("poison.py", POISON)
    cli.write("poisoned.yaml", WORKFLOW.format(cure=cure))
    cli.env["PYTHONPATH"] = str(cli.folder)
    detached = cli("run", "poisoned.yaml", "--detach")
    assert detached.returncode == 0, detached.stderr
    run_id = detached.stdout.strip()

    # The first worker starts the step (not a takeover), then MAX_RECOVERIES takeovers die too.
    for _ in range(1 + MAX_RECOVERIES):
        died = _worker(cli)
        assert died.wait(timeout=60) == -signal.SIGKILL
    survivor = _worker(cli)
    wait_until(lambda: cli.show(run_id)["status"] == "dead", "the run to be dead-lettered", 60)
    assert survivor.poll() is None  # the one that dead-lettered it did not run the step
    survivor.send_signal(signal.SIGTERM)
    assert survivor.wait(timeout=30) == 0

    shown = cli.show(run_id)
    assert shown["recoveries"] == MAX_RECOVERIES + 1
    assert f"taken over {MAX_RECOVERIES + 1} times in a row" in shown["dead_reason"]
    assert f"podium retry {run_id}" in shown["dead_reason"]
    steps = {s["id"]: s["status"] for s in shown["steps"]}
    assert steps == {"swallow": "interrupted", "after": "pending"}
    listed = cli("runs", "--status", "dead", "--json")
    assert [r["run_id"] for r in json.loads(listed.stdout)] == [run_id]
    events = cli("events", run_id, "--json")
    logged = [json.loads(line) for line in events.stdout.splitlines()]
    kinds = [e["kind"] for e in logged]
    assert kinds.count("run.resumed") == MAX_RECOVERIES
    assert kinds.count("run.dead_lettered") == 1
    starts = [e["attempt"] for e in logged if e["kind"] == "step.started"]
    assert starts == [1] * (1 + MAX_RECOVERIES)  # idempotent: re-run as the same attempt

    refused = cli("retry", run_id, "after")  # a pending step: nothing to retry
    assert refused.returncode != 0

    cure.touch()
    revived = cli("retry", run_id)
    assert revived.returncode == 0, revived.stderr
    assert cli.show(run_id)["status"] == "succeeded"
    assert cli("runs", "--status", "dead", "--json").stdout.strip() == "[]"


def test_retry_without_a_step_names_what_to_do_for_a_live_run(cli: Cli) -> None:
    cli.write("quick.yaml", "name: quick\nsteps:\n  - {id: a, kind: shell, run: [echo, hi]}\n")
    ran = cli("run", "quick.yaml", "--json")
    run_id = json.loads(ran.stdout)["run_id"]

    refused = cli("retry", run_id)

    assert refused.returncode == 2
    assert "alone revives a dead-lettered run" in refused.stderr
    assert "--all-interrupted" in refused.stderr


def _worker(cli: Cli) -> subprocess.Popen[str]:
    return cli.start("worker", "--max-recoveries", str(MAX_RECOVERIES), "--lease-ttl", "3")
