"""SIGKILL the real `podium run` while a `workflow` step's child run has a step in flight, then
`podium resume` the parent from another process: the child is not created twice, its committed
steps never run again, the in-flight one (idempotent) runs again from the start, and the parent
records the child's end and finishes once. A second case kills the driver right after the
child's completion is committed (before the parent may have heard of it): the parent's next
driver reads the child's end from the store.

The side effects are files the shell steps append to (`<step>.ran`, one line per execution);
the checks read the SQLite file directly, trusting nothing the engine says about itself."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from .harness import EXIT_OK, EXIT_WAITING, Podium, integrity, kill_group, read_rows

WAIT_SECONDS = 30.0
HANGS_ONCE = "if [ -f {name}.once ]; then echo again; else touch {name}.once; sleep 60; fi"


def _touch(name: str, **extra: Any) -> dict[str, Any]:
    return {"id": name, "kind": "shell", "shell": "sh", "run": f"echo ran >> {name}.ran", **extra}


def _ran(root: Path, name: str) -> int:
    path = root / f"{name}.ran"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _write(root: Path, name: str, doc: dict[str, Any]) -> None:
    (root / name).write_text(json.dumps(doc))


def _runs(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return sorted(conn.execute("SELECT run_id, status FROM runs").fetchall())


def _case(
    root: Path, child_steps: list[dict[str, Any]], post: dict[str, Any] | None = None
) -> None:
    _write(root, "child.json", {"name": "child", "steps": child_steps})
    parent = {
        "name": "parent",
        "steps": [
            _touch("pre"),
            {"id": "sub", "kind": "workflow", "workflow": "child.json", "needs": ["pre"]},
            _touch("post", needs=["sub"], **(post or {})),
        ],
    }
    _write(root, "parent.json", parent)


def _run_until(podium: Podium, root: Path, ready: Any) -> None:
    proc = podium.spawn(["run", "parent.json", "--run-id", "p1"], root)
    deadline = time.monotonic() + WAIT_SECONDS
    try:
        while not ready():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the child never got where the kill should land"
            time.sleep(0.01)
    finally:
        kill_group(proc.pid)
        proc.communicate()
    assert proc.returncode == -9


def _check_once(
    podium: Podium, root: Path, child_steps: list[str], post_runs: int | None = 1
) -> None:
    result = podium.call(["resume", "p1"], root)
    assert result.code == EXIT_OK, result.stdout + result.stderr
    assert _runs(podium.db) == [("p1", "succeeded"), ("p1.sub.0", "succeeded")]
    parent = read_rows(podium.db, "p1")
    kinds = [r.kind for r in parent]
    assert kinds.count("child.started") == 1
    assert kinds.count("child.completed") == 1
    assert kinds.count("run.completed") == 1
    child = read_rows(podium.db, "p1.sub.0")
    assert [r.kind for r in child].count("run.created") == 1
    assert child[0].fields["parent"] == {"run_id": "p1", "step_id": "sub"}
    for name in ("pre", *child_steps):
        assert _ran(root, name) == 1, name
    if post_runs is not None:
        assert _ran(root, "post") == post_runs
    assert _ran(root, "post") >= 1
    assert integrity(podium.db) == "ok"


def test_kill_while_the_child_runs_then_resume_the_parent(tmp_path: Path) -> None:
    podium = Podium(tmp_path / "podium.db")
    hangs = {
        "id": "slow",
        "kind": "shell",
        "shell": "sh",
        "run": "echo ran >> slow.ran; " + HANGS_ONCE.format(name="slow"),
        "idempotent": True,
        "needs": ["first"],
    }
    _case(tmp_path, [_touch("first"), hangs, _touch("last", needs=["slow"])])
    _run_until(podium, tmp_path, lambda: (tmp_path / "slow.once").exists())
    assert _ran(tmp_path, "first") == 1
    assert _runs(podium.db) == [("p1", "waiting"), ("p1.sub.0", "running")]
    _check_once(podium, tmp_path, ["first", "last"])
    assert _ran(tmp_path, "slow") == 2  # in flight at the kill, idempotent: run again, once
    child = read_rows(podium.db, "p1.sub.0")
    assert [r.kind for r in child].count("run.resumed") == 1


def test_kill_right_after_the_child_completed(tmp_path: Path) -> None:
    """The child waits for a person; `podium approve CHILD` (which drives the child, then
    the parent) is killed as soon as the child's completion is committed, and the child's
    signal to its parent is dropped as if the kill had come before it was posted."""
    podium = Podium(tmp_path / "podium.db")
    _case(tmp_path, [_touch("only", approval="required")], post={"idempotent": True})
    parked = podium.call(["run", "parent.json", "--run-id", "p1"], tmp_path)
    assert parked.code == EXIT_WAITING, parked.stdout + parked.stderr
    assert "podium approve p1.sub.0 only" in parked.stdout
    completed = 6  # created, approval requested and granted, step started and succeeded
    result = podium.call(
        ["approve", "p1.sub.0", "only"], tmp_path, kill_at_event=("p1.sub.0", completed)
    )
    assert result.killed_at is not None, result.stdout + result.stderr
    with sqlite3.connect(podium.db) as conn:
        conn.execute("DELETE FROM signals WHERE run_id = 'p1' AND kind = 'child'")
    _check_once(podium, tmp_path, ["only"], post_runs=None)
