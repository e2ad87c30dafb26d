"""The process-group ledger that lets a resume stop what a killed engine left running."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

from podium.steps import procs


def _alive(proc: subprocess.Popen[bytes]) -> bool:
    return proc.poll() is None


def test_leftover_group_is_killed_and_forgotten(tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "30"], start_new_session=True)  # a group that stays up
    try:
        procs.record(tmp_path, "run1", "s", child.pid)
        assert procs.stop_leftovers(tmp_path, "run1", ["s", "other"]) == ["s"]
        child.wait(timeout=5)
        assert not (tmp_path / ".podium" / "procs" / "run1" / "s.json").exists()
    finally:
        child.kill()


def test_a_step_killed_before_its_group_was_recorded_is_found_by_its_environment(
    tmp_path: Path,
) -> None:
    procs.expect(tmp_path, "run1", "s")  # the engine died between starting the step and `record`
    env = {**os.environ, "PODIUM_RUN_ID": "run1", "PODIUM_STEP_ID": "s"}
    child = subprocess.Popen(["sh", "-c", "sleep 30 & wait"], start_new_session=True, env=env)
    neighbour = subprocess.Popen(  # another step of the run: not this entry's
        ["sleep", "30"], start_new_session=True, env={**env, "PODIUM_STEP_ID": "s2"}
    )
    try:
        assert procs.stop_leftovers(tmp_path, "run1", ["s"]) == ["s"]
        child.wait(timeout=5)
        assert _alive(neighbour)
        assert not (tmp_path / ".podium" / "procs" / "run1" / "s.json").exists()
        procs.expect(tmp_path, "run1", "s")  # nothing of the step runs: nothing is stopped
        assert procs.stop_leftovers(tmp_path, "run1", ["s"]) == []
    finally:
        child.kill()
        neighbour.kill()
        neighbour.wait()


def test_a_reused_pid_is_left_alone(tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "30"], start_new_session=True)  # a group that stays up
    try:
        procs.record(tmp_path, "run1", "s", child.pid)
        entry_path = tmp_path / ".podium" / "procs" / "run1" / "s.json"
        entry = json.loads(entry_path.read_text())
        entry["started"] -= 1  # a different process that happens to have the same pid
        entry_path.write_text(json.dumps(entry))
        assert procs.stop_leftovers(tmp_path, "run1", ["s"]) == []
        # No pause needed: a kill would have been waited for (until the group was gone) before
        # stop_leftovers returned.
        assert _alive(child)
    finally:
        child.kill()
        child.wait()


def test_forget_and_missing_entries_are_quiet(tmp_path: Path) -> None:
    procs.forget(tmp_path, "nope", "s")
    assert procs.stop_leftovers(tmp_path, "nope", ["s"]) == []


def test_the_runs_folder_goes_with_its_last_entry(tmp_path: Path) -> None:
    folder = tmp_path / ".podium" / "procs" / "run1"
    procs.record(tmp_path, "run1", "a", os.getpid())
    procs.record(tmp_path, "run1", "b", os.getpid())
    procs.forget(tmp_path, "run1", "a")
    assert sorted(p.name for p in folder.iterdir()) == ["b.json"]
    procs.forget(tmp_path, "run1", "b")
    assert not folder.exists()
    assert (tmp_path / ".podium" / "procs").is_dir()  # only the run's own folder goes


def test_a_record_racing_the_last_forget_is_never_lost(tmp_path: Path) -> None:
    """One thread records and forgets `a` over and over (each forget may remove the folder);
    another records `b`: every record must leave its entry in place."""
    folder = tmp_path / ".podium" / "procs" / "run1"
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            procs.record(tmp_path, "run1", "a", os.getpid())
            procs.forget(tmp_path, "run1", "a")

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for _ in range(300):
            procs.record(tmp_path, "run1", "b", os.getpid())
            assert (folder / "b.json").is_file()
            procs.forget(tmp_path, "run1", "b")
    finally:
        stop.set()
        worker.join()
    assert not folder.exists()
