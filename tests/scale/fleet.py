"""`podium worker` processes on one Postgres store, for the scale-out chaos tests: start, SIGKILL,
SIGSTOP/SIGCONT them; submit runs and signal them through a control engine; read the store's
tables directly (the checker trusts nothing the workers say about themselves).

The runs are small DAGs of shell steps that append each execution to a ledger in the run's
workspace (the crash harness's `SHELL_RECORD`), so `tests.crash.harness.walk_events` and
`check_ledger` check them exactly as they check the SQLite crash runs.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from tests.crash.harness import (
    PODIUM,
    REPO_ROOT,
    Case,
    Row,
    StepPlan,
    Verdict,
    check_ledger,
    read_ledger,
    render_rows,
    shell_command,
    wait_for_step_processes,
    walk_events,
    write_case,
)

from podium.runtime.engine import Engine

ELSEWHERE = "podium-elsewhere"
"""The start of host names given to workers (`start(host=…)`, in a UTS namespace of their own):
other machines to the store, whose runs are taken over when their leases run out, never because
their pid is gone."""
READY_TEXT = "worker driving up to"
TERMINAL = ("succeeded", "failed", "cancelled")
START_SECONDS = 30.0
POLL_SECONDS = 0.05


def can_run_elsewhere() -> bool:
    """Whether `unshare --uts` works here (root, util-linux)."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    probe = ["unshare", "--uts", "sh", "-c", f"hostname {ELSEWHERE}"]
    return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0


@functools.cache
def no_recovery_limit() -> tuple[str, ...]:
    """`--max-recoveries 1000` where `podium worker` has it (a run taken over that many times is
    dead-lettered): a test that kills workers again and again must not run into it."""
    usage = subprocess.run(
        [*PODIUM, "worker", "--help"], capture_output=True, text=True, timeout=60, env=_env()
    )
    return ("--max-recoveries", "1000") if "--max-recoveries" in usage.stdout else ()


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PODIUM_DB", "COLUMNS")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait_until(
    condition: Callable[[], bool], what: str | Callable[[], str], seconds: float
) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"waited {seconds:g} s for {what if isinstance(what, str) else what()}"
            )
        time.sleep(POLL_SECONDS)


# -------------------------------------------------------------------------------- workers


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log: Path
    host: str | None  # its own host name, or None: this machine's

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def owner_prefix(self) -> str:
        """What the owner of this worker's leases starts with (`host:pid:`)."""
        return f"{self.host or os.uname().nodename}:{self.pid}:"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Fleet:
    """The workers of one test on the store at `url`; `close()` kills whatever is left."""

    url: str
    folder: Path
    ttl_seconds: float = 5.0
    concurrency: int = 8
    options: tuple[str, ...] = ()  # more `podium worker` options
    workers: list[Worker] = field(default_factory=list)

    def start(self, *, host: str | None = None, ready: bool = True) -> Worker:
        argv = [
            *PODIUM,
            "worker",
            "--store",
            self.url,
            "--lease-ttl",
            f"{self.ttl_seconds:g}",
            "--concurrency",
            str(self.concurrency),
            "--drain",
            "1",
            *self.options,
        ]
        if host is not None:  # `exec`: the worker keeps the pid we know
            argv = ["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$@"', "sh", *argv]
        env = _env()
        log = self.folder / f"worker-{len(self.workers):03d}.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                argv,
                cwd=self.folder,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(proc, log, host)
        self.workers.append(worker)
        if ready:
            self.wait_ready(worker)
        return worker

    def wait_ready(self, worker: Worker) -> None:
        def up() -> bool:
            if not worker.alive():
                raise AssertionError(f"worker {worker.pid} exited:\n{worker.output()}")
            return READY_TEXT in worker.output()

        wait_until(up, f"worker {worker.pid} to start", START_SECONDS)

    def kill(self, worker: Worker, sig: int = signal.SIGKILL) -> float:
        """Send `sig`; return the wall-clock instant it was sent (the events' clock)."""
        sent = time.time()
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, sig)
        if sig == signal.SIGKILL:
            worker.proc.wait(timeout=30)
        return sent

    def live(self) -> list[Worker]:
        return [w for w in self.workers if w.alive()]

    def close(self) -> None:
        for worker in self.workers:
            if worker.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGCONT)
                    os.kill(worker.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.proc.wait(timeout=30)


# ------------------------------------------------------------------------ the store's tables


def event_rows(url: str, run_id: str) -> list[Row]:
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT seq, kind, data FROM events WHERE run_id = %s ORDER BY seq", (run_id,)
        ).fetchall()
    return [Row(seq, kind, bytes(data)) for seq, kind, data in found]


def resumed_at(url: str, run_id: str) -> list[float]:
    """When each `run.resumed` of the run was recorded (unix seconds, the driver's clock)."""
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT at FROM events WHERE run_id = %s AND kind = 'run.resumed' ORDER BY seq",
            (run_id,),
        ).fetchall()
    return [float(at) for (at,) in found]


def lease_expiry(url: str, run_id: str) -> float | None:
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT lease_expires_at FROM runs WHERE run_id = %s", (run_id,)
        ).fetchone()
    return None if found is None or found[0] is None else float(found[0])


@dataclass(frozen=True, slots=True)
class RunRow:
    status: str
    owner: str | None
    epoch: int
    last_seq: int


def run_rows(url: str) -> dict[str, RunRow]:
    with psycopg.connect(url) as conn:
        found = conn.execute("SELECT run_id, status, owner, epoch, last_seq FROM runs").fetchall()
    return {rid: RunRow(status, owner, epoch, seq) for rid, status, owner, epoch, seq in found}


def takeovers(rows: Iterable[Row]) -> list[Row]:
    """The run's `run.resumed` events: each is one takeover (or resume) of the run."""
    return [row for row in rows if row.kind == "run.resumed"]


# -------------------------------------------------------------------------------- the runs


def shell_case(seed: int, root: Path, *, before: float = 0.3, prefix: str = "scale") -> Case:
    """A seeded run of 3-5 shell steps (a chain with a fan-out), each recording its execution in
    the run's ledger; about half declared idempotent (the rest are interrupted by a crash)."""
    rng = random.Random(seed)
    steps = []
    for index in range(rng.randint(3, 5)):
        needs = (f"s{rng.randrange(index)}",) if index else ()
        idempotent = rng.random() < 0.5
        text = shell_command(
            round(rng.uniform(0, before), 3), round(rng.uniform(0, before), 3), False
        )
        steps.append(shell_step(f"s{index}", text, idempotent=idempotent, needs=needs))
    return case_of(root, f"{prefix}-{seed:04d}-{uuid.uuid4().hex[:6]}", steps, seed=seed)


def case_of(root: Path, run_id: str, steps: list[dict[str, Any]], *, seed: int = 0) -> Case:
    """A run of these shell steps (each with `id`, `idempotent`, maybe `needs`), written out."""
    plans = {
        step["id"]: StepPlan(step["id"], "shell", step["idempotent"], tuple(step.get("needs", ())))
        for step in steps
    }
    workflow = {"name": run_id.split("-")[0], "steps": steps}
    case = Case(seed, run_id, root / run_id, workflow, plans)
    write_case(case)
    return case


def shell_step(
    step_id: str, text: str, *, idempotent: bool, needs: tuple[str, ...] = ()
) -> dict[str, Any]:
    step: dict[str, Any] = {"id": step_id, "kind": "shell", "shell": "sh", "run": text}
    step["idempotent"] = idempotent
    if needs:
        step["needs"] = list(needs)
    return step


async def submit(url: str, cases: Iterable[Case]) -> None:
    """Create the runs, unleased, through a control engine (as `podium run --detach` does)."""
    engine = await Engine.open(url, mode="control")
    try:
        for case in cases:
            await engine.submit(case.workflow_path, run_id=case.run_id)
    finally:
        await engine.close()


async def settle(url: str, step_waiting: dict[str, tuple[str, str]]) -> None:
    """Post a retry or skip (`(verb, step)`) for each run waiting on an interrupted step."""
    engine = await Engine.open(url, mode="control")
    try:
        for run_id, (verb, step_id) in step_waiting.items():
            await (engine.retry if verb == "retry" else engine.skip)(run_id, step_id)
    finally:
        await engine.close()


def interrupted_steps(rows: list[Row]) -> list[str]:
    """The steps of a run that a takeover interrupted and nobody retried or skipped yet."""
    waiting: dict[str, bool] = {}
    for row in rows:
        fields = row.fields
        if row.kind == "run.resumed":
            waiting.update(dict.fromkeys(fields.get("interrupted", []), True))
        elif row.kind in ("step.retry_requested", "step.skipped", "step.started"):
            waiting[fields["step_id"]] = False
    return sorted(step for step, still in waiting.items() if still)


def check_run(case: Case, url: str, *, expect: str = "succeeded") -> Verdict:
    """The crash harness's checks of one finished run, on the Postgres log; raise on a breach."""
    verdict = Verdict()
    verdict.tally["orphans_waited"] = wait_for_step_processes(case.run_id)
    rows = event_rows(url, case.run_id)
    if [r.seq for r in rows] != list(range(1, len(rows) + 1)):
        verdict.fail(f"sequence numbers are not 1..{len(rows)}")
    tracks = walk_events(rows, case.plans, verdict)
    if verdict.outcome != expect:
        verdict.fail(f"run ended {verdict.outcome!r}, expected {expect}")
    check_ledger(case, tracks, read_ledger(case.ledger, verdict), verdict)
    verdict.tally["takeovers"] = len(takeovers(rows))
    if verdict.violations:
        ledger = case.ledger.read_text() if case.ledger.exists() else ""
        raise AssertionError(
            f"run {case.run_id}: "
            + "\n  ".join(verdict.violations)
            + f"\nevents:\n{render_rows(rows)}\nledger:\n{ledger}"
        )
    return verdict


def describe(fleet: Fleet) -> str:
    """Every worker's log, for a failure report."""
    return "\n".join(
        f"--- worker {w.pid} ({'alive' if w.alive() else w.proc.returncode}):\n{w.output()[-3000:]}"
        for w in fleet.workers
    )
