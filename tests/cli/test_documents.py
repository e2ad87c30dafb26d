"""The JSON documents of podium.views and the human lines that show a parked run's wake-up: built
from real states and store records, then through real processes on a SQLite file."""

from __future__ import annotations

import json
import signal
import sqlite3
from datetime import UTC, datetime, timedelta

from rich.console import Console

from podium import views
from podium.cli.render import clock_time, runs_table, show_renderable, summary_lines
from podium.core import events as ev
from podium.core.fold import apply, new_state
from podium.core.state import RunState
from podium.spec.model import Workflow
from podium.store.base import RunRecord, RunStatus, StoredEvent

from .conftest import Cli
from .test_cli import LONG

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
WAKE = T0 + timedelta(minutes=5)


def state() -> RunState:
    doc = {"name": "w", "steps": [{"id": "flaky", "kind": "shell", "run": "false"}]}
    created = ev.RunCreated(at=T0, run_id="r", workflow=doc, workspace="/tmp")
    run = new_state(created, Workflow.model_validate(doc))
    apply(run, ev.StepStarted(at=T0, step_id="flaky", attempt=1))
    return run


def record(status: RunStatus, wake_at: datetime | None) -> RunRecord:
    return RunRecord(
        run_id="r",
        workflow_name="w",
        status=status,
        created_at=T0,
        updated_at=T0,
        last_seq=2,
        owner=None,
        epoch=1,
        wake_at=wake_at,
    )


def text(renderable: object) -> str:
    console = Console(width=200, record=True)
    console.print(renderable)
    return console.export_text()


def test_a_run_the_store_parked_on_a_timer_is_waiting_until_its_wake_up() -> None:
    doc = views.show_document(state(), record("waiting", WAKE))
    assert (doc["status"], doc["wake_at"]) == ("waiting", WAKE.isoformat())
    listing = views.run_document(record("waiting", WAKE))
    assert (listing["status"], listing["wake_at"]) == ("waiting", WAKE.isoformat())
    until = f"until {WAKE.astimezone().strftime('%H:%M:%S')}"
    assert until in text(runs_table([record("waiting", WAKE)]))
    assert until in text(show_renderable(state(), record("waiting", WAKE)))


def test_without_a_wake_up_nothing_says_until() -> None:
    doc = views.show_document(state(), record("running", None))
    assert (doc["status"], doc["wake_at"]) == ("running", None)
    assert "until" not in text(runs_table([record("waiting", None)]))
    assert views.show_document(state(), None)["wake_at"] is None


def test_a_finished_run_has_no_wake_up_and_its_events_decide_its_status() -> None:
    done = state()
    apply(done, ev.StepSucceeded(at=T0, step_id="flaky", output="ok"))
    apply(done, ev.RunCompleted(at=T0, outcome="succeeded"))
    assert views.run_document(record("succeeded", WAKE))["wake_at"] is None
    assert views.show_document(done, record("waiting", WAKE))["status"] == "succeeded"


def test_event_documents_put_run_seq_and_kind_first() -> None:
    stored = StoredEvent("r", 3, ev.StepSucceeded(at=T0, step_id="flaky", output="ok"))
    doc = views.event_document(stored)
    assert list(doc)[:3] == ["run_id", "seq", "kind"]
    assert (doc["kind"], doc["step_id"], doc["output"], doc["at"]) == (
        "step.succeeded",
        "flaky",
        "ok",
        T0.isoformat().replace("+00:00", "Z"),
    )


def test_runs_and_show_say_until_when_a_parked_run_wakes(cli: Cli) -> None:
    cli.write("long.yaml", LONG)
    crashed = cli.start("run", "long.yaml", "--run-id", "p")
    cli.wait_for_step(crashed, "p", "nap", "running")
    crashed.send_signal(signal.SIGKILL)
    crashed.communicate(timeout=10)
    assert cli("resume", "p").returncode == 3
    wake = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    with sqlite3.connect(cli.db) as db:  # as a driver parking the run on a timer records it
        db.execute("UPDATE runs SET wake_at = ? WHERE run_id = 'p'", (wake.timestamp(),))
    until = f"until {wake.astimezone().strftime('%H:%M:%S')}"

    row = next(line for line in cli("runs").stdout.splitlines() if line.startswith("p "))
    assert "waiting" in row
    assert until in row
    header = next(line for line in cli("show", "p").stdout.splitlines() if "status" in line)
    assert until in header
    doc = cli.show("p")
    assert (doc["status"], datetime.fromisoformat(doc["wake_at"])) == ("waiting", wake)
    listed = cli("runs", "--json").stdout
    assert datetime.fromisoformat(json.loads(listed)[0]["wake_at"]) == wake


def test_the_summary_of_a_run_parked_on_a_backoff_needs_nobody() -> None:
    backing_off = state()
    apply(
        backing_off,
        ev.StepRetrying(at=T0, step_id="flaky", attempt=1, error="exit 1", retry_at=WAKE),
    )
    assert backing_off.status == "waiting"
    lines = summary_lines(backing_off)
    assert lines[-1] == f"run r waits until {clock_time(WAKE)} to retry; it wakes by itself"
    assert not any("waiting for a person" in line for line in lines)
