"""SIGKILL the real `podium` CLI while a `plan` step plans and while its children run (SPEC F3,
F7): the recorded plan is reused, never regenerated; children committed before the kill are not
called again; children in flight are re-run (agent steps are idempotent) with the same attempt and
generation, so the same idempotency key; a plan step killed mid-planning plans once more.

The models are real HTTP: a local OpenAI-compatible server (`tests/llm/openai_server.py`) on an
ephemeral port answers every agent of the `podium` subprocess, streaming like the SDK asks, and
counts the calls per agent and task. Agents are told apart by their instructions (`ROLE=...`),
children by their task (`TASK=...`). A call can be made to hang so the kill lands mid-flight.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.llm.openai_server import Received, Reply, completion, serve, text_stream

from .harness import (
    EXIT_OK,
    EXIT_WAITING,
    Podium,
    Row,
    integrity,
    kill_group,
    read_rows,
    run_row,
)

WAIT_SECONDS = 20.0
PLANNER = "planner"
PLAN_STEP = "plan"
PLAN: dict[str, Any] = {
    "summary": "two researchers, then a writer",
    "steps": [
        {"id": "r1", "agent": "researcher", "task": "TASK=r1 list the facts about A"},
        {"id": "r2", "agent": "researcher", "task": "TASK=r2 list the facts about B"},
        {"id": "w", "agent": "writer", "task": "TASK=w write the briefing", "needs": ["r1", "r2"]},
    ],
}
CHILDREN = ["plan.r1", "plan.r2", "plan.w"]
AGENTS = {
    PLANNER: "Plans the work.",
    "researcher": "Finds facts.",
    "writer": "Writes briefings.",
}
_TASK = re.compile(r"TASK=(\w+)")


# ---------------------------------------------------------------------------- the model server


@dataclass
class Team:
    """The server's handler: one fixed plan for the planner, a numbered answer for each worker
    call; `hang_first` names the calls (`planner`, `researcher:r2` …) whose first request hangs
    until the server stops (the test kills the client long before)."""

    hang_first: set[str] = field(default_factory=set)
    calls: Counter[str] = field(default_factory=Counter)
    prompts: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    streamed: list[bool] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, received: Received) -> Reply:
        messages = received.body["messages"]
        system = messages[0]["content"]
        user = next(m["content"] for m in messages if m["role"] == "user")
        role = system.split()[0].removeprefix("ROLE=")
        task = _TASK.search(user) if role != PLANNER else None
        key = f"{role}:{task.group(1)}" if task else role
        with self._lock:
            self.calls[key] += 1
            number = self.calls[key]
            self.prompts[key].append(user)
            self.streamed.append(bool(received.body.get("stream")))
        if key in self.hang_first and number == 1:
            return Reply(hang=True)
        text = json.dumps(PLAN) if role == PLANNER else answer(key, number)
        if received.body.get("stream"):
            return text_stream([text[: len(text) // 2], text[len(text) // 2 :]])
        return completion(text)

    def count(self, key: str) -> int:
        with self._lock:
            return self.calls[key]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.calls)


def answer(key: str, number: int) -> str:
    return f"ANSWER of {key}, call {number}"


# ------------------------------------------------------------------------------------ fixtures


@dataclass
class Project:
    """A tmp project folder (agents/, workflow file, SQLite store) and a CLI pointed at the
    local model server."""

    root: Path
    podium: Podium
    team: Team
    run_id: str = field(default_factory=lambda: f"plan-crash-{uuid.uuid4().hex[:8]}")
    snapshots: list[list[Row]] = field(default_factory=list)

    @property
    def db(self) -> Path:
        return self.podium.db

    def workflow(self, **plan_fields: Any) -> Path:
        step = {
            "id": PLAN_STEP,
            "kind": "plan",
            "goal": "Write a briefing on A and B",
            "agents": ["researcher", "writer"],
            "max_replans": 0,  # a child failure fails the run instead of hiding in a replan
            **plan_fields,
        }
        path = self.root / "workflow.json"
        path.write_text(json.dumps({"name": "plan-crash", "steps": [step]}, indent=1))
        return path

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        return self.podium.spawn(list(args), self.root)

    def call(self, *args: str) -> tuple[int, str]:
        result = self.podium.call(list(args), self.root)
        return result.code, result.stdout + result.stderr

    def rows(self) -> list[Row]:
        return read_rows(self.db, self.run_id)

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [r.fields for r in self.rows() if r.kind == kind]

    def kill_when(self, proc: subprocess.Popen[str], due: Callable[[], bool], what: str) -> None:
        """Poll until `due()` holds, then SIGKILL the command's process group; keep what was
        committed before the kill to compare with the log afterwards."""
        deadline = time.monotonic() + WAIT_SECONDS
        while not due():
            if proc.poll() is not None or time.monotonic() > deadline:
                kill_group(proc.pid)
                out, err = proc.communicate()
                pytest.fail(
                    f"never reached {what} (exit {proc.returncode}, calls "
                    f"{self.team.snapshot()}):\n{out}\n{err}\n{self.describe()}"
                )
            time.sleep(0.01)
        kill_group(proc.pid)
        out, err = proc.communicate()
        assert proc.returncode == -9, (proc.returncode, out, err)
        self.snapshots.append(self.rows())

    def started(self, step_id: str) -> bool:
        return any(
            r.fields.get("step_id") == step_id for r in self.rows() if r.kind == "step.started"
        )

    def succeeded(self, step_id: str) -> bool:
        return any(
            r.fields.get("step_id") == step_id for r in self.rows() if r.kind == "step.succeeded"
        )

    def show(self) -> dict[str, Any]:
        code, out = self.call("show", self.run_id, "--json")
        assert code == EXIT_OK, out
        document: dict[str, Any] = json.loads(out)
        return document

    def describe(self) -> str:
        return "\n".join(
            f"  {r.seq:>3} {r.kind} {r.fields.get('step_id', '')}" for r in self.rows()
        )

    def check_log(self, outcome: str | None = "succeeded") -> list[Row]:
        """The durability invariants of the store itself, read from the file directly."""
        rows = self.rows()
        seqs = [r.seq for r in rows]
        assert seqs == list(range(1, len(rows) + 1)), f"sequence numbers not contiguous: {seqs}"
        listing = run_row(self.db, self.run_id)
        assert listing is not None
        assert listing[1] == len(rows), (listing, len(rows))
        assert integrity(self.db) == "ok"
        for snapshot in self.snapshots:
            assert rows[: len(snapshot)] == snapshot, "events committed before a kill changed"
        if outcome is not None:
            assert rows[-1].kind == "run.completed", self.describe()
            assert rows[-1].fields["outcome"] == outcome, rows[-1].fields
            assert listing[0] == outcome
        return rows


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    for name, description in AGENTS.items():
        text = (
            f"---\nname: {name}\ndescription: {description}\nmodel: openai:test-model\n---\n"
            f"ROLE={name}\nYou are the {name}. Be brief.\n"
        )
        (tmp_path / "agents").mkdir(exist_ok=True)
        (tmp_path / "agents" / f"{name}.md").write_text(text)
    (tmp_path / "home").mkdir()
    team = Team()
    with contextlib.contextmanager(serve)() as server:
        server.handler = team
        podium = Podium(tmp_path / "podium.db")
        for name in ("OPENAI_API_KEY", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "PODIUM_MODEL"):
            podium.env.pop(name, None)
        podium.env["OPENAI_BASE_URL"] = server.url
        podium.env["HOME"] = str(tmp_path / "home")  # no user agent catalog
        yield Project(tmp_path, podium, team)


# ---------------------------------------------------------------------------------- the checks


def step_starts(rows: list[Row], step_id: str) -> list[tuple[int, int]]:
    return [
        (r.fields["attempt"], r.fields.get("generation", 0))
        for r in rows
        if r.kind == "step.started" and r.fields["step_id"] == step_id
    ]


def of_kind(rows: list[Row], kind: str) -> list[dict[str, Any]]:
    return [r.fields for r in rows if r.kind == kind]


def check_finished(project: Project, *, planner_calls: int, r2_calls: int) -> list[Row]:
    """The run succeeded with the one recorded plan; every call count is as the kill implies; the
    writer saw the committed outputs of both researchers; `show --json` agrees with the log."""
    rows = project.check_log("succeeded")
    assert project.team.snapshot() == {
        PLANNER: planner_calls,
        "researcher:r1": 1,
        "researcher:r2": r2_calls,
        "writer:w": 1,
    }
    generated = of_kind(rows, "plan.generated")
    assert [(g["step_id"], g["version"]) for g in generated] == [(PLAN_STEP, 1)]
    assert [s["id"] for s in generated[0]["plan"]["steps"]] == ["r1", "r2", "w"]
    assert step_starts(rows, PLAN_STEP) == [(1, 0)] * planner_calls
    succeeded = {e["step_id"]: e["output"] for e in of_kind(rows, "step.succeeded")}
    assert succeeded["plan.r1"] == answer("researcher:r1", 1)
    assert succeeded["plan.r2"] == answer("researcher:r2", r2_calls)
    assert succeeded["plan.w"] == answer("writer:w", 1)
    (writer_prompt,) = project.team.prompts["writer:w"]
    assert succeeded["plan.r1"] in writer_prompt
    assert succeeded["plan.r2"] in writer_prompt
    assert all(project.team.streamed), "the CLI's agents stream their replies"

    document = project.show()
    assert document["status"] == "succeeded"
    assert {s["id"]: s["status"] for s in document["steps"]} == {
        PLAN_STEP: "succeeded",
        **dict.fromkeys(CHILDREN, "succeeded"),
    }
    assert document["plans"] == {PLAN_STEP: [generated[0]["plan"]]}
    return rows


# ----------------------------------------------------------------------------------- the tests


def test_kill_during_plan_children_reuses_the_plan(project: Project) -> None:
    """Killed after `plan.generated` and `plan.r1`'s success are committed, while `plan.r2`'s model
    call hangs: resume finishes the run without asking the planner again or re-running r1; r2
    runs again as the same attempt (same idempotency key)."""
    project.team.hang_first.add("researcher:r2")
    proc = project.spawn(
        "run", str(project.workflow()), "--run-id", project.run_id, "--agents", str(project.root)
    )
    project.kill_when(
        proc,
        lambda: project.succeeded("plan.r1") and project.team.count("researcher:r2") == 1,
        "plan.r1 committed with plan.r2 in flight",
    )
    before = project.rows()
    assert len(of_kind(before, "plan.generated")) == 1
    assert step_starts(before, "plan.r2") == [(1, 0)]
    assert not project.succeeded("plan.r2")
    assert not project.started("plan.w")
    assert project.team.snapshot() == {PLANNER: 1, "researcher:r1": 1, "researcher:r2": 1}
    project.check_log(outcome=None)

    code, out = project.call("resume", project.run_id)
    assert code == EXIT_OK, out + project.describe()
    rows = check_finished(project, planner_calls=1, r2_calls=2)
    assert [
        (r.get("requeued", []), r.get("interrupted", [])) for r in of_kind(rows, "run.resumed")
    ] == [(["plan.r2"], [])]
    assert step_starts(rows, "plan.r1") == [(1, 0)]
    assert step_starts(rows, "plan.r2") == [(1, 0), (1, 0)]  # same generation: same key
    assert step_starts(rows, "plan.w") == [(1, 0)]

    code, out = project.call("resume", project.run_id)  # a finished run stays finished
    assert code == EXIT_OK, out
    assert project.rows() == rows
    assert project.team.count(PLANNER) == 1


@pytest.mark.parametrize("kill_approve", [False, True], ids=["approve", "kill-approve"])
def test_confirmed_plan_survives_park_and_kill(project: Project, kill_approve: bool) -> None:
    """`confirm: true`: `podium run` plans once and exits 3, leaving the run parked in the store
    with no process; a resume of the parked run records nothing and plans nothing. `podium
    approve` then runs the recorded plan; killed mid-children, a resume finishes it. The planner
    is called exactly once throughout."""
    if kill_approve:
        project.team.hang_first.add("researcher:r2")
    workflow = project.workflow(confirm=True)
    code, out = project.call(
        "run", str(workflow), "--run-id", project.run_id, "--agents", str(project.root)
    )
    assert code == EXIT_WAITING, out
    parked = project.check_log(outcome=None)
    assert len(of_kind(parked, "plan.generated")) == 1
    assert project.team.snapshot() == {PLANNER: 1}
    document = project.show()
    assert document["status"] == "waiting"
    assert {s["id"] for s in document["steps"]} == {PLAN_STEP}

    code, out = project.call("resume", project.run_id)
    assert code == EXIT_WAITING, out
    assert project.rows() == parked
    assert project.team.snapshot() == {PLANNER: 1}

    approve = ("approve", project.run_id, "--agents", str(project.root))
    if kill_approve:
        proc = project.spawn(*approve)
        project.kill_when(
            proc,
            lambda: project.succeeded("plan.r1") and project.team.count("researcher:r2") == 1,
            "plan.r1 committed with plan.r2 in flight under `podium approve`",
        )
        assert not project.succeeded("plan.r2")
        code, out = project.call("resume", project.run_id)
    else:
        code, out = project.call(*approve)
    assert code == EXIT_OK, out + project.describe()
    rows = check_finished(project, planner_calls=1, r2_calls=2 if kill_approve else 1)
    assert [a["step_id"] for a in of_kind(rows, "approval.granted")] == [PLAN_STEP]
    resumes = [
        (r.get("requeued", []), r.get("interrupted", [])) for r in of_kind(rows, "run.resumed")
    ]
    assert resumes == ([(["plan.r2"], [])] if kill_approve else [])
    assert step_starts(rows, "plan.r2") == [(1, 0)] * (2 if kill_approve else 1)


def test_kill_during_planning_plans_exactly_once_more(project: Project) -> None:
    """Killed while the planner's call hangs (the plan step started, no `plan.generated` yet):
    resume re-runs the plan step (it is idempotent) as the same attempt, the planner is asked
    exactly once more, and the run records exactly one plan."""
    project.team.hang_first.add(PLANNER)
    proc = project.spawn(
        "run", str(project.workflow()), "--run-id", project.run_id, "--agents", str(project.root)
    )
    project.kill_when(
        proc,
        lambda: project.started(PLAN_STEP) and project.team.count(PLANNER) == 1,
        "the planner's call in flight",
    )
    before = project.rows()
    assert not of_kind(before, "plan.generated")
    assert project.team.snapshot() == {PLANNER: 1}
    project.check_log(outcome=None)

    code, out = project.call("resume", project.run_id)
    assert code == EXIT_OK, out + project.describe()
    rows = check_finished(project, planner_calls=2, r2_calls=1)
    assert [
        (r.get("requeued", []), r.get("interrupted", [])) for r in of_kind(rows, "run.resumed")
    ] == [([PLAN_STEP], [])]
    first, second = project.team.prompts[PLANNER]
    assert first == second  # the same planning request, not a replan
    assert "Replanning" not in second
