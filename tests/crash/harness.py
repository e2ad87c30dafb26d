"""The crash harness: seeded random workflows, a driver that SIGKILLs `podium` at random moments
(0-1.2 s after it starts, or right after the commit of a chosen event) and resumes until the run
converges, and a checker of the durability promise (SPEC F3).

The checker trusts nothing the engine says about itself: it reads the SQLite file directly (event
log, `runs` row, `PRAGMA integrity_check`) and compares it with an effects ledger that the steps
append to on every real execution (`tests/crash/effects.py`, and the shell/file steps below).

Reproduce one seed (the workflow and the kill schedule are seeded; the interleaving is not):

    .venv/bin/python -m tests.crash.harness --seeds 17 --verbose
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
PODIUM = [sys.executable, "-m", "podium.cli.app"]
CALL = "tests.crash.effects"
LEDGER = "effects.jsonl"
WORKFLOW_FILE = "workflow.json"

KILL_WINDOW_SECONDS = 1.2
EVENT_KILL_SHARE = 0.3
COMMAND_TIMEOUT_SECONDS = 90.0
MAX_ROUNDS = 40
LEASE_WAIT_SECONDS = 0.5
ORPHAN_WAIT_SECONDS = 15.0

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_WAITING = 0, 1, 2, 3


class HarnessError(AssertionError):
    """The run did not converge, a command misbehaved, or a durability check failed."""

    def __init__(self, message: str, tally: Counter[str] | None = None) -> None:
        super().__init__(message)
        self.tally: Counter[str] = tally if tally is not None else Counter()


def idempotency_key(run_id: str, step_id: str, generation: int) -> str:
    """The documented key (SPEC F3, `PODIUM_IDEMPOTENCY_KEY`): `RUN:STEP`, then `RUN:STEP:N`
    after the N-th manual retry. Written out here so the checker does not trust the engine's."""
    return f"{run_id}:{step_id}" if generation == 0 else f"{run_id}:{step_id}:{generation}"


# ------------------------------------------------------------------------------ the workflows


@dataclass(frozen=True, slots=True)
class StepPlan:
    """What the generator put in one step, for the checker."""

    id: str
    kind: str  # python | shell | file
    idempotent: bool
    needs: tuple[str, ...] = ()
    join: str | int = "all"
    flaky: bool = False
    upstream: str | None = None


@dataclass(slots=True)
class Case:
    seed: int
    run_id: str
    workdir: Path
    workflow: dict[str, Any]
    plans: dict[str, StepPlan]

    @property
    def ledger(self) -> Path:
        return self.workdir / LEDGER

    @property
    def workflow_path(self) -> Path:
        return self.workdir / WORKFLOW_FILE


def _latency(rng: random.Random, top: float, chance: float) -> float:
    return round(rng.uniform(0.0, top), 3) if rng.random() < chance else 0.0


_PRINTF = (
    r"""printf '{"step":"%s","key":"%s","attempt":%s,"token":"%s","kind":"shell"}\n' """
    r'"$PODIUM_STEP_ID" "$PODIUM_IDEMPOTENCY_KEY" "$PODIUM_ATTEMPT" "$tok"'
)

SHELL_RECORD = f"read tok < /proc/sys/kernel/random/uuid\n{_PRINTF} >> {LEDGER}"
"""Shell text that appends this execution to the ledger; `$tok` is its token."""


def shell_command(before: float, after: float, fail_first: bool) -> str:
    """`sh -c` text: sleep, append one JSON line to the ledger, sleep, maybe fail attempt 1, and
    print the execution's token (it becomes the step's output)."""
    lines = [f"sleep {before}"] if before else []
    lines.append(SHELL_RECORD)
    if after:
        lines.append(f"sleep {after}")
    if fail_first:
        lines.append('[ "$PODIUM_ATTEMPT" != 1 ] || { echo flaky >&2; exit 7; }')
    lines.append('echo "$tok"')
    return "\n".join(lines)


def generate(seed: int, workdir: Path) -> Case:
    """A random DAG of 4-14 python/shell/file-append steps: random needs and joins, latencies of
    0-150 ms, random `idempotent`, some flaky steps with `retry`."""
    rng = random.Random(seed)
    run_id = f"crash-{seed:05d}-{uuid.uuid4().hex[:6]}"
    count = rng.randint(4, 14)
    ledger = str(workdir / LEDGER)
    steps: list[dict[str, Any]] = []
    plans: dict[str, StepPlan] = {}
    for index in range(count):
        sid = f"s{index:02d}"
        kind = rng.choices(("python", "shell", "file"), weights=(45, 35, 20))[0]
        needs = sorted(rng.sample(list(plans), k=min(len(plans), rng.choice((0, 1, 1, 2, 2, 3)))))
        join: str | int = "all"
        if len(needs) >= 2:
            roll = rng.random()
            if roll < 0.2:
                join = "any"
            elif roll < 0.35:
                join = rng.randint(1, len(needs))
        declared = rng.choice((True, False, None))  # None: the kind's default (false for these)
        idempotent = bool(declared)
        flaky = kind != "file" and rng.random() < 0.2
        step: dict[str, Any] = {"id": sid, "kind": kind}
        if declared is not None:
            step["idempotent"] = declared
        if needs:
            step["needs"] = needs
        if join == "any":
            step["join"] = "any"
        elif isinstance(join, int):
            step["join"] = {"quorum": join}
        if flaky:
            step["retry"] = {"max_attempts": rng.randint(2, 3), "initial_delay_seconds": 0.05}
        elif rng.random() < 0.15:
            step["retry"] = rng.randint(2, 3)
        upstream = None
        before, after = _latency(rng, 0.15, 0.8), _latency(rng, 0.1, 0.5)
        if kind == "python":
            args: dict[str, Any] = {"ledger": ledger, "before": before, "after": after}
            if flaky:
                args["fail_first"] = True
            sources = [n for n in needs if plans[n].kind in ("python", "shell")]
            if join == "all" and sources and rng.random() < 0.6:
                upstream = rng.choice(sources)
                ref = "output.token" if plans[upstream].kind == "python" else "output"
                args["upstream"] = f"${{{{ steps.{upstream}.{ref} }}}}"
            step.update(call=f"{CALL}:record", args=args)
        elif kind == "shell":
            step.update(shell="sh", run=shell_command(before, after, flaky))
        else:
            line = json.dumps({"step": sid, "kind": "file"})
            step.update(op="append", path=LEDGER, content=line + "\n")
        steps.append(step)
        plans[sid] = StepPlan(sid, kind, idempotent, tuple(needs), join, flaky, upstream)
    workflow: dict[str, Any] = {"name": f"crash-{seed}", "steps": steps}
    if rng.random() < 0.25:
        workflow["max_concurrency"] = rng.randint(1, 3)
    return Case(seed, run_id, workdir, workflow, plans)


def write_case(case: Case) -> None:
    case.workdir.mkdir(parents=True, exist_ok=True)
    case.workflow_path.write_text(json.dumps(case.workflow, indent=1))


# --------------------------------------------------------------------------------- the CLI


@dataclass(frozen=True, slots=True)
class Result:
    argv: tuple[str, ...]
    code: int
    stdout: str
    stderr: str
    seconds: float
    killed_at: float | None = None
    kill_at_event: tuple[str, int] | None = None

    @property
    def killed(self) -> bool:
        return self.code == -signal.SIGKILL

    def describe(self) -> str:
        what = f"exit {self.code}"
        if self.killed:
            when = f" at event {self.kill_at_event[1]}" if self.kill_at_event else ""
            what = f"SIGKILLed{when} after {self.killed_at or 0:.3f}s"
        return f"podium {' '.join(self.argv)} -> {what} ({self.seconds:.2f}s)"


class Podium:
    """Runs the real CLI (`python -m podium.cli.app`) in its own process group."""

    def __init__(self, db: Path) -> None:
        self.db = db
        env = {k: v for k, v in os.environ.items() if k not in ("PODIUM_DB", "COLUMNS")}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        self.env = env

    def spawn(self, args: Sequence[str], cwd: Path) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*PODIUM, *args, "--db", str(self.db)],
            cwd=cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def call(
        self,
        args: Sequence[str],
        cwd: Path,
        *,
        kill_after: float | None = None,
        kill_at_event: tuple[str, int] | None = None,
    ) -> Result:
        """Run a command. With `kill_after`, SIGKILL its process group after that many seconds;
        with `kill_at_event=(run_id, n)`, as soon as the run's n-th event is committed (polled
        every 5 ms). The killed process is always reaped before returning, so its pid no longer
        exists when the next command looks at the lease."""
        started = time.monotonic()
        proc = self.spawn(args, cwd)
        limit = kill_after if kill_after is not None else COMMAND_TIMEOUT_SECONDS
        deadline = started + limit
        killed_at: float | None = None
        while True:
            wait = 0.005 if kill_at_event is not None else limit
            try:
                out, err = proc.communicate(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                now = time.monotonic()
                due = (
                    kill_at_event is not None
                    and last_seq(self.db, kill_at_event[0]) >= (kill_at_event[1])
                )
                if not due and now < deadline:
                    continue
                kill_group(proc.pid)
                killed_at = now - started
                out, err = proc.communicate()
                if not due and kill_after is None:
                    raise HarnessError(
                        f"podium {' '.join(args)} did not finish in {limit:.0f}s\n{out}\n{err}"
                    ) from None
                break
        seconds = time.monotonic() - started
        return Result(tuple(args), proc.returncode, out, err, seconds, killed_at, kill_at_event)

    def json_call(self, args: Sequence[str], cwd: Path) -> str:
        result = self.call(args, cwd)
        if result.code != 0:
            raise HarnessError(f"{result.describe()}\n{result.stderr}")
        return result.stdout

    def show(self, run_id: str, cwd: Path) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.json_call(["show", run_id, "--json"], cwd))
        return document

    def events(self, run_id: str, cwd: Path) -> list[dict[str, Any]]:
        text = self.json_call(["events", run_id, "--json"], cwd)
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def step_processes(run_id: str) -> list[int]:
    """Live processes started by a step of `run_id` (their environment names the run). Shell
    steps run in their own sessions, so SIGKILL of the engine leaves them running as orphans."""
    marker = f"PODIUM_RUN_ID={run_id}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_for_step_processes(run_id: str, timeout: float = ORPHAN_WAIT_SECONDS) -> int:
    """Wait for orphaned step processes of the run to finish (SIGKILL them after `timeout`);
    return how many were still running when we started waiting."""
    first = step_processes(run_id)
    deadline = time.monotonic() + timeout
    left = first
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = step_processes(run_id)
    for pid in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return len(first)


# ------------------------------------------------------------------------ reading the store


@dataclass(frozen=True, slots=True)
class Row:
    seq: int
    kind: str
    data: bytes

    @property
    def fields(self) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(self.data)
        return decoded


@contextlib.contextmanager
def connect(db: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(db, timeout=30)
    try:
        yield conn
    finally:
        conn.close()


def _migrated(conn: sqlite3.Connection) -> bool:
    """False while no podium process has created the tables yet (killed that early)."""
    found = conn.execute("SELECT count(*) FROM sqlite_master WHERE name IN ('runs', 'events')")
    return bool(found.fetchone()[0] == 2)


def read_rows(db: Path, run_id: str) -> list[Row]:
    with connect(db) as conn:
        if not _migrated(conn):
            return []
        rows = conn.execute(
            "SELECT seq, kind, data FROM events WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()
    return [Row(seq, kind, bytes(data)) for seq, kind, data in rows]


def run_row(db: Path, run_id: str) -> tuple[str, int] | None:
    with connect(db) as conn:
        if not _migrated(conn):
            return None
        row = conn.execute(
            "SELECT status, last_seq FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
    return (row[0], row[1]) if row else None


def last_seq(db: Path, run_id: str) -> int:
    row = run_row(db, run_id)
    return row[1] if row else 0


def integrity(db: Path) -> str:
    with connect(db) as conn:
        return "; ".join(str(r[0]) for r in conn.execute("PRAGMA integrity_check").fetchall())


def render_rows(rows: Iterable[Row]) -> str:
    out = []
    for row in rows:
        fields = row.fields
        fields.pop("at", None)
        fields.pop("workflow", None)
        step = fields.pop("step_id", "")
        out.append(f"  {row.seq:>4} {row.kind:<21} {step:<5} {json.dumps(fields)[:160]}")
    return "\n".join(out)


# --------------------------------------------------------------------------------- the driver


@dataclass(slots=True)
class Trace:
    """What the driver did to one run, for the checker and for failure reports."""

    commands: list[Result] = field(default_factory=list)
    snapshots: list[list[Row]] = field(default_factory=list)
    tally: Counter[str] = field(default_factory=Counter)

    def describe(self) -> str:
        return "\n".join(f"  {r.describe()}" for r in self.commands)


def kill_chance(round_no: int) -> float:
    """The first command is always scheduled for a kill; later ones less and less often, so the
    run converges."""
    if round_no == 0:
        return 1.0
    if round_no <= 4:
        return 0.35
    return 0.1 if round_no <= 8 else 0.0


def drive(case: Case, podium: Podium, rng: random.Random) -> Trace:
    """`podium run`, SIGKILLed at a random moment; then `resume` (sometimes killed too) until it
    exits 0/1; on exit 3 retry or skip each interrupted step (seeded choice)."""
    trace = Trace()
    rid, cwd = case.run_id, case.workdir
    command: list[str] = ["run", str(case.workflow_path), "--run-id", rid]
    for round_no in range(MAX_ROUNDS):
        kill_after, kill_at_event = None, None
        if rng.random() < kill_chance(round_no):
            if rng.random() < EVENT_KILL_SHARE:  # right after a commit: the driver is mid-turn
                ahead = rng.randint(1, 2 * len(case.plans) + 3)
                kill_at_event = (rid, last_seq(podium.db, rid) + ahead)
                trace.tally["kills_planned_on_event"] += 1
            else:
                kill_after = round(rng.uniform(0.0, KILL_WINDOW_SECONDS), 3)
        result = podium.call(command, cwd, kill_after=kill_after, kill_at_event=kill_at_event)
        trace.commands.append(result)
        trace.tally["commands"] += 1
        trace.tally[command[0]] += 1
        if result.killed:
            trace.tally["kills"] += 1
            trace.tally["kills_on_event"] += int(result.kill_at_event is not None)
            trace.tally[f"kills_{command[0]}"] += 1
            trace.snapshots.append(read_rows(podium.db, rid))
            if run_row(podium.db, rid) is None:  # killed before run.created was committed
                trace.tally["resubmits"] += 1
                command = ["run", str(case.workflow_path), "--run-id", rid]
            else:
                command = ["resume", rid]
            continue
        if result.code == EXIT_BAD_INPUT and "held" in result.stderr:
            trace.tally["lease_waits"] += 1  # the dead driver's pid was reused: wait it out
            time.sleep(LEASE_WAIT_SECONDS)
            command = ["resume", rid]
            continue
        if result.code in (EXIT_OK, EXIT_FAILED):
            if command[0] in ("retry", "skip") and f"{command[0]} of {command[2]} requested" in (
                result.stdout
            ):
                trace.tally["lease_waits"] += 1  # another process drives it (see above)
                time.sleep(LEASE_WAIT_SECONDS)
                command = ["resume", rid]
                continue
            return trace
        if result.code == EXIT_WAITING:
            document = podium.show(rid, cwd)
            waiting = [s["id"] for s in document["steps"] if s["status"] == "interrupted"]
            if document["status"] != "waiting" or not waiting:
                raise _failure(
                    case, podium, trace, "exit 3 but show --json lists no interrupted step"
                )
            verb = rng.choice(("retry", "skip"))
            trace.tally[f"{verb}_commands"] += 1
            command = [verb, rid, waiting[0]]
            continue
        raise _failure(case, podium, trace, f"unexpected exit code {result.code}:\n{result.stderr}")
    raise _failure(case, podium, trace, f"did not converge in {MAX_ROUNDS} commands")


def _failure(case: Case, podium: Podium, trace: Trace, why: str) -> HarnessError:
    rows = read_rows(podium.db, case.run_id) if podium.db.exists() else []
    return HarnessError(
        f"seed {case.seed} run {case.run_id}: {why}\ncommands:\n{trace.describe()}\n"
        f"events:\n{render_rows(rows)}",
        trace.tally,
    )


# -------------------------------------------------------------------------------- the checker


@dataclass(slots=True)
class _Track:
    """The checker's own fold of one step's events."""

    idempotent: bool
    starts: list[tuple[int, int, int]] = field(default_factory=list)  # (seq, generation, attempt)
    inflight: tuple[int, int] | None = None
    current: tuple[int, int] | None = None
    succeeded_at: int | None = None
    output: Any = None
    status: str = "pending"
    interrupted: bool = False
    requeued: bool = False
    may_next_attempt: bool = False
    may_new_generation: bool = False
    reopened: bool = False
    retry_requests: int = 0
    auto_retries: int = 0
    reopens: int = 0
    requeues: int = 0
    interruptions: int = 0
    cut: set[tuple[int, int]] = field(default_factory=set)  # attempts in flight at a crash


@dataclass(slots=True)
class Verdict:
    violations: list[str] = field(default_factory=list)
    tally: Counter[str] = field(default_factory=Counter)
    outcome: str | None = None

    def fail(self, message: str) -> None:
        self.violations.append(message)


def read_ledger(path: Path, verdict: Verdict) -> dict[str, list[dict[str, Any]]]:
    by_step: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if not path.exists():
        return by_step
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            verdict.fail(f"ledger line {number} is torn: {line!r}")
            continue
        by_step[entry["step"]].append(entry)
    return by_step


def walk_events(rows: list[Row], plans: dict[str, StepPlan], verdict: Verdict) -> dict[str, _Track]:
    """Fold the log and check every transition against the promise."""
    tracks = {sid: _Track(p.idempotent) for sid, p in plans.items()}
    fail = verdict.fail
    for row in rows:
        e, kind = row.fields, row.kind
        where = f"seq {row.seq} {kind}"
        if verdict.outcome is not None and kind != "run.completed":
            fail(f"{where}: event after run.completed")
        if "step_id" in e:
            sid = e["step_id"]
            if sid not in tracks:
                fail(f"{where}: unknown step {sid}")
                continue
            t = tracks[sid]
        if kind == "step.started":
            _started(t, sid, row.seq, e.get("generation", 0), e["attempt"], fail)
        elif kind == "step.succeeded":
            if t.inflight is None:
                fail(f"{where} {sid}: succeeded with no attempt in flight")
            t.succeeded_at, t.output, t.inflight, t.status = (
                row.seq,
                e.get("output"),
                None,
                "succeeded",
            )
        elif kind == "step.retrying":
            if t.inflight is None:
                fail(f"{where} {sid}: retrying with no attempt in flight")
            t.inflight, t.may_next_attempt, t.status = None, True, "retrying"
            t.auto_retries += 1
        elif kind in ("step.failed", "step.cancelled", "step.skipped"):
            if kind == "step.skipped" and t.inflight is not None:
                fail(f"{where} {sid}: skipped while an attempt is in flight")
            if kind == "step.skipped" and t.succeeded_at is not None:
                fail(f"{where} {sid}: a committed success was overwritten by a skip")
            t.inflight, t.interrupted, t.status = None, False, kind.split(".")[1]
        elif kind == "step.retry_requested":
            if t.succeeded_at is not None:
                fail(f"{where} {sid}: retry requested for a step that succeeded")
            t.may_new_generation, t.interrupted = True, False
            t.retry_requests += 1
            for other in tracks.values():  # the engine reopens stopped steps downstream
                if other.status in ("failed", "skipped", "cancelled"):
                    other.reopened = True
        elif kind == "run.resumed":
            _resumed(tracks, where, e.get("requeued", []), e.get("interrupted", []), verdict)
        elif kind == "run.completed":
            verdict.outcome = e["outcome"]
            busy = [s for s, t in tracks.items() if t.inflight or t.interrupted]
            if busy:
                fail(f"{where}: completed while steps are in flight or interrupted: {busy}")
        elif kind not in ("run.created", "run.cancel_requested"):
            fail(f"{where}: unexpected event kind")
    return tracks


def _started(t: _Track, sid: str, seq: int, generation: int, attempt: int, fail: Any) -> None:
    where = f"seq {seq} step.started {sid} (generation {generation}, attempt {attempt})"
    pair = (generation, attempt)
    if t.succeeded_at is not None:
        fail(f"{where}: RE-EXECUTION of a step whose success was committed at seq {t.succeeded_at}")
    if t.inflight is not None:
        fail(f"{where}: started while attempt {t.inflight} was still in flight")
    if t.interrupted:
        fail(f"{where}: an interrupted step started again without step.retry_requested")
    seen = {(g, a) for _, g, a in t.starts}
    if pair in seen:
        if not t.requeued:
            fail(f"{where}: the same attempt started again without being requeued")
    elif t.current is None:
        if attempt != 1 or (generation != 0 and not t.may_new_generation):
            fail(f"{where}: first start is not attempt 1 of generation 0")
    elif generation == t.current[0] and attempt == t.current[1] + 1:
        if not (t.may_next_attempt or t.reopened):
            fail(f"{where}: a new attempt without step.retrying")
        t.reopens += int(not t.may_next_attempt)
    elif generation > t.current[0] and attempt == 1:
        if not t.may_new_generation:
            fail(f"{where}: a new generation without step.retry_requested")
    else:
        fail(f"{where}: attempt numbering jumped from {t.current}")
    t.starts.append((seq, generation, attempt))
    t.inflight = t.current = pair
    t.status = "running"
    t.requeued = t.may_next_attempt = t.may_new_generation = t.reopened = False


def _resumed(
    tracks: dict[str, _Track],
    where: str,
    requeued: list[str],
    interrupted: list[str],
    verdict: Verdict,
) -> None:
    verdict.tally["resumes"] += 1
    in_flight = {s for s, t in tracks.items() if t.inflight is not None}
    listed = [*requeued, *interrupted]
    if len(set(listed)) != len(listed) or set(listed) != in_flight:
        verdict.fail(
            f"{where}: requeued {requeued} + interrupted {interrupted} must be exactly the "
            f"steps in flight {sorted(in_flight)}"
        )
    for sid in requeued:
        t = tracks[sid]
        if t.current is not None:
            t.cut.add(t.current)
        if not t.idempotent:
            verdict.fail(f"{where}: NON-IDEMPOTENT step {sid} was requeued (would run twice)")
        t.inflight, t.requeued, t.status = None, True, "ready"
        t.requeues += 1
        verdict.tally["requeued"] += 1
    for sid in interrupted:
        t = tracks[sid]
        if t.current is not None:
            t.cut.add(t.current)
        if t.idempotent:
            verdict.fail(f"{where}: idempotent step {sid} was interrupted instead of requeued")
        t.inflight, t.interrupted, t.status = None, True, "interrupted"
        t.interruptions += 1
        verdict.tally["interrupted"] += 1


def check_ledger(
    case: Case, tracks: dict[str, _Track], ledger: dict[str, list[dict[str, Any]]], verdict: Verdict
) -> None:
    fail = verdict.fail
    for sid in ledger:
        if sid not in case.plans:
            fail(f"ledger names unknown step {sid}")
    for sid, plan in case.plans.items():
        t, runs = tracks[sid], ledger.get(sid, [])
        verdict.tally["executions"] += len(runs)
        verdict.tally["re_executions"] += max(len(runs) - 1, 0)
        if len(runs) > len(t.starts):
            fail(f"{sid}: RE-EXECUTION: {len(runs)} executions but only {len(t.starts)} starts")
        if t.succeeded_at is not None and not runs:
            fail(f"{sid}: LOST COMPLETION: success committed at seq {t.succeeded_at}, no execution")
        if plan.kind == "file":
            continue
        keys = {idempotency_key(case.run_id, sid, g): g for _, g, _ in t.starts}
        pairs = {(g, a) for _, g, a in t.starts}
        executed: list[tuple[int, int]] = []
        for entry in runs:
            generation = keys.get(entry["key"])
            if generation is None:
                fail(f"{sid}: executed with key {entry['key']!r}, not one of a started attempt")
                continue
            if (generation, entry["attempt"]) not in pairs:
                fail(
                    f"{sid}: executed as generation {generation} attempt {entry['attempt']}, "
                    "which was never started"
                )
            executed.append((generation, entry["attempt"]))
            if (generation, entry["attempt"]) in t.cut:
                verdict.tally["cut_effects"] += 1
                verdict.tally[f"cut_effects_{plan.kind}"] += 1
        if plan.idempotent:
            if t.retry_requests == 0 and len({e["key"] for e in runs}) > 1:
                fail(f"{sid}: idempotent re-runs used different keys: {[e['key'] for e in runs]}")
        else:
            twice = [p for p, n in Counter(executed).items() if n > 1]
            if twice:
                fail(f"{sid}: NON-IDEMPOTENT step executed more than once as {twice}")
            if t.retry_requests > t.interruptions:
                fail(
                    f"{sid}: {t.retry_requests} retries requested but it was interrupted "
                    f"{t.interruptions} times (the harness only retries interrupted steps)"
                )
            allowed = 1 + t.retry_requests + t.auto_retries + t.reopens
            if len(runs) > allowed:
                fail(
                    f"{sid}: non-idempotent step ran {len(runs)} times; retry_requested "
                    f"{t.retry_requests}, retrying {t.auto_retries}, reopened {t.reopens}"
                )
        if t.succeeded_at is not None:
            _check_output(case, sid, t, runs, fail)
        if plan.upstream is not None:
            _check_upstream(case, sid, plan.upstream, tracks, runs, fail)


def _token(kind: str, output: Any) -> Any:
    return output.get("token") if kind == "python" and isinstance(output, dict) else output


def _check_output(case: Case, sid: str, t: _Track, runs: list[dict[str, Any]], fail: Any) -> None:
    """The committed output came from a recorded execution of the last started attempt."""
    token = _token(case.plans[sid].kind, t.output)
    match = [e for e in runs if e["token"] == token]
    if not match:
        fail(f"{sid}: committed output {t.output!r} was produced by no recorded execution")
        return
    _, generation, attempt = t.starts[-1]
    expected = (idempotency_key(case.run_id, sid, generation), attempt)
    if (match[0]["key"], match[0]["attempt"]) != expected:
        fail(
            f"{sid}: committed output is from {match[0]['key']} attempt {match[0]['attempt']}, "
            f"not from the last started attempt {expected}"
        )


def _check_upstream(
    case: Case,
    sid: str,
    upstream: str,
    tracks: dict[str, _Track],
    runs: list[dict[str, Any]],
    fail: Any,
) -> None:
    """A dependency's output, templated into this step, is its committed output."""
    source = tracks[upstream]
    if runs and source.succeeded_at is None:
        fail(f"{sid}: ran although its dependency {upstream} never succeeded")
        return
    committed = _token(case.plans[upstream].kind, source.output)
    for entry in runs:
        if entry.get("upstream") != committed:
            fail(
                f"{sid}: saw {upstream}'s output {entry.get('upstream')!r}, committed was "
                f"{committed!r}"
            )


def check(
    case: Case,
    podium: Podium,
    trace: Trace,
    *,
    expect: str = "succeeded",
    via_cli: bool = True,
) -> Verdict:
    """Every durability check on a converged run; raise HarnessError listing the violations."""
    verdict = Verdict()
    verdict.tally["orphans_waited"] = wait_for_step_processes(case.run_id)
    rows = read_rows(podium.db, case.run_id)
    fail = verdict.fail
    # (1) sequence numbers 1..N, and the listing row agrees with the log
    if [r.seq for r in rows] != list(range(1, len(rows) + 1)):
        fail(f"sequence numbers are not 1..{len(rows)}: {[r.seq for r in rows]}")
    listing = run_row(podium.db, case.run_id)
    if listing is None or listing[1] != len(rows):
        fail(f"runs row {listing} does not match {len(rows)} events")
    # (2) the file is sound
    if (result := integrity(podium.db)) != "ok":
        fail(f"PRAGMA integrity_check: {result}")
    # committed events are never lost or rewritten by a crash or a resume
    for snapshot in trace.snapshots:
        if rows[: len(snapshot)] != snapshot:
            fail(f"the {len(snapshot)} events committed before a kill changed afterwards")
    tracks = walk_events(rows, case.plans, verdict)
    # (3) the run ended as the workflow says
    if verdict.outcome != expect or not rows or rows[-1].kind != "run.completed":
        fail(
            f"run ended {verdict.outcome!r} (last event {rows[-1].kind if rows else None}), "
            f"expected {expect}"
        )
    if listing is not None and verdict.outcome is not None and listing[0] != verdict.outcome:
        fail(f"runs.status is {listing[0]!r} but the log says {verdict.outcome!r}")
    # (4) a step that succeeded before a crash is still succeeded, (5)/(6) against the ledger
    for snapshot in trace.snapshots:
        for row in snapshot:
            if row.kind == "step.succeeded":
                sid = row.fields["step_id"]
                if tracks[sid].status != "succeeded":
                    fail(f"{sid} succeeded before a kill but is {tracks[sid].status} after")
    check_ledger(case, tracks, read_ledger(case.ledger, verdict), verdict)
    if via_cli:
        _check_cli_views(case, podium, rows, tracks, verdict)
    verdict.tally.update(trace.tally)
    for t in tracks.values():
        verdict.tally["starts"] += len(t.starts)
        verdict.tally["auto_retries"] += t.auto_retries
        verdict.tally["reopens"] += t.reopens
    verdict.tally["retry_requested"] += sum(t.retry_requests for t in tracks.values())
    verdict.tally["skipped_by_person"] += sum(
        1 for r in rows if r.kind == "step.skipped" and r.fields.get("reason") == "manual"
    )
    if verdict.violations:
        raise HarnessError(
            f"seed {case.seed} run {case.run_id}: {len(verdict.violations)} violation(s):\n  "
            + "\n  ".join(verdict.violations)
            + f"\ncommands:\n{trace.describe()}\nevents:\n{render_rows(rows)}\n"
            f"ledger:\n{case.ledger.read_text() if case.ledger.exists() else ''}",
            verdict.tally,
        )
    return verdict


def _check_cli_views(
    case: Case, podium: Podium, rows: list[Row], tracks: dict[str, _Track], verdict: Verdict
) -> None:
    """`events --json` and `show --json` agree with the file."""
    listed = podium.events(case.run_id, case.workdir)
    if [(e["seq"], e["kind"]) for e in listed] != [(r.seq, r.kind) for r in rows]:
        verdict.fail("`podium events --json` differs from the events table")
    document = podium.show(case.run_id, case.workdir)
    if document["status"] != verdict.outcome:
        verdict.fail(f"`podium show` says {document['status']}, the log says {verdict.outcome}")
    for step in document["steps"]:
        ours = tracks[step["id"]].status
        if (step["status"] == "succeeded") != (ours == "succeeded"):
            verdict.fail(f"`podium show` says {step['id']} is {step['status']}, the log {ours}")


# ------------------------------------------------------------------------------ many seeds


@dataclass(slots=True)
class Summary:
    runs: int = 0
    tally: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, tally: Counter[str], error: str | None = None) -> None:
        with self._lock:
            self.runs += 1
            self.tally.update(tally)
            if error is not None:
                self.failures.append(error)

    def merge(self, other: Summary) -> None:
        with self._lock:
            self.runs += other.runs
            self.tally.update(other.tally)
            self.failures += other.failures
            self.seconds += other.seconds

    def line(self) -> str:
        t = self.tally
        return (
            f"crash harness: {self.runs} runs, {len(self.failures)} failed, "
            f"{t['kills']} kills ({t['kills_run']} of run, {t['kills_resume']} of resume, "
            f"{t['kills_retry'] + t['kills_skip']} of retry/skip; {t['kills_on_event']} right "
            f"after a chosen event's commit), {t['resubmits']} resubmits, "
            f"{t['resume']} resumes, {t['retry_commands']} retries, {t['skip_commands']} skips, "
            f"{t['interrupted']} interrupted, {t['requeued']} requeued, "
            f"{t['executions']} executions ({t['re_executions']} repeats), "
            f"{t['auto_retries']} automatic retries, {t['cut_effects']} effects of attempts cut "
            f"by a kill ({t['cut_effects_shell']} of shell steps), "
            f"{t['lease_waits']} lease waits, {t['commands']} commands, "
            f"{self.seconds:.0f}s"
        )


def run_seed(seed: int, root: Path, db: Path) -> Verdict:
    """Generate, drive and check one seeded run."""
    case = generate(seed, root / f"seed-{seed:05d}")
    write_case(case)
    podium = Podium(db)
    trace = drive(case, podium, random.Random(seed * 7919 + 1))
    return check(case, podium, trace)


def run_seeds(
    seeds: Sequence[int], root: Path, *, workers: int = 3, shared_db: bool = True
) -> Summary:
    """Many seeds on a small thread pool; all runs share one SQLite file unless told not to."""
    summary = Summary()
    started = time.monotonic()

    def one(seed: int) -> None:
        db = root / "shared.db" if shared_db else root / f"seed-{seed:05d}" / "podium.db"
        try:
            verdict = run_seed(seed, root, db)
        except HarnessError as exc:
            summary.add(exc.tally, str(exc))
        except Exception:  # a harness bug: report it with the seed, keep the other seeds going
            summary.add(Counter(), f"seed {seed}: harness error\n{traceback.format_exc()}")
        else:
            summary.add(verdict.tally)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, seeds))
    if (
        shared_db
        and (root / "shared.db").exists()
        and (result := integrity(root / "shared.db")) != "ok"
    ):
        summary.failures.append(f"shared store integrity_check: {result}")
    summary.seconds = time.monotonic() - started
    return summary


def _parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        seeds += range(int(low), int(high or low) + 1)
    return seeds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-9", help="e.g. 17 or 0-199 or 3,5,8-10")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--separate-dbs", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--verbose", action="store_true", help="print every failure in full")
    options = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="podium-crash-"))
    summary = run_seeds(
        _parse_seeds(options.seeds),
        root,
        workers=options.workers,
        shared_db=not options.separate_dbs,
    )
    for failure in summary.failures:
        print(failure if options.verbose else failure.splitlines()[0], file=sys.stderr)
    print(summary.line())
    if options.keep or summary.failures:
        print(f"files kept in {root}")
    else:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    return 1 if summary.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
