"""A ledger of the process groups shell steps start, so a resume can stop what a killed engine left.

A SIGKILLed engine cannot kill its children: their process groups run on and would finish (or
repeat) side effects behind the back of a resumed run. Each shell attempt is entered under
`<workspace>/.podium/procs/<run>/<step>.json` before it starts (`expect`) and given its group
right after (`record`); the entry goes when the group is done, and the run's folder with its last
entry. An engine killed between the start and the record leaves an entry with no group: a resume
then finds the step's processes by the PODIUM_RUN_ID and PODIUM_STEP_ID in their environment.
(A process crash keeps the files: no fsync needed; an OS crash ends the processes too.)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_RECORD_TRIES = 100


def _ledger(workspace: Path, run_id: str) -> Path:
    return workspace / ".podium" / "procs" / run_id


def expect(workspace: Path, run_id: str, step_id: str) -> None:
    """Note that `step_id` is about to start processes (their group is not known yet)."""
    _write(workspace, run_id, step_id, {"pgid": None, "boot": _boot_id()})


def record(workspace: Path, run_id: str, step_id: str, pid: int) -> None:
    """Note that `step_id` runs in the process group led by `pid`."""
    _write(
        workspace, run_id, step_id, {"pgid": pid, "started": _start_ticks(pid), "boot": _boot_id()}
    )


def _write(workspace: Path, run_id: str, step_id: str, entry: dict[str, object]) -> None:
    """A `forget` of the run's last other entry may remove the folder between our mkdir and our
    write: make it again."""
    folder = _ledger(workspace, run_id)
    text = json.dumps(entry)
    for attempt in range(1, _RECORD_TRIES + 1):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{step_id}.json").write_text(text)
            return
        except (FileNotFoundError, FileExistsError):
            # Removed under us: after the write's open, or (FileExistsError) between mkdir
            # seeing the folder and checking that it is a directory.
            if attempt == _RECORD_TRIES:
                raise


def forget(workspace: Path, run_id: str, step_id: str) -> None:
    """Remove the step's entry, and the run's folder if that was its last (a folder that still
    holds an entry, even one written a moment ago, is not empty and stays)."""
    folder = _ledger(workspace, run_id)
    with contextlib.suppress(OSError):
        (folder / f"{step_id}.json").unlink()
    with contextlib.suppress(OSError):
        folder.rmdir()


def forget_run(workspace: Path, run_id: str, *, dry_run: bool = False) -> list[Path]:
    """Delete the ledger a run left in `workspace` (for a run that is over and being deleted);
    return the paths removed (with `dry_run`, the ones that would be, removing nothing). Only
    the ledger's `*.json` entries and then its empty folder go: nothing else in the workspace is
    touched, and no process is signalled."""
    return remove_run_folder(_ledger(workspace, run_id), run_id, "*.json", dry_run=dry_run)


def remove_run_folder(folder: Path, run_id: str, pattern: str, *, dry_run: bool) -> list[Path]:
    """Delete the files matching `pattern` in a run's bookkeeping `folder`, then the folder if
    nothing else is in it; return the paths removed (or, with `dry_run`, that would be)."""
    if run_id in ("", ".", "..") or "/" in run_id or os.sep in run_id:
        return []  # names no folder of ours: never walk out of the bookkeeping folder
    if folder.is_symlink() or not folder.is_dir():
        return []
    entries = sorted(folder.glob(pattern))
    if dry_run:
        others = any(p not in entries for p in folder.iterdir())
        return entries if others else [*entries, folder]
    removed = []
    for entry in entries:
        with contextlib.suppress(FileNotFoundError):
            entry.unlink()
            removed.append(entry)
    with contextlib.suppress(OSError):  # not empty: something else lives there; leave it
        folder.rmdir()
        removed.append(folder)
    return removed


def stop_leftovers(workspace: Path, run_id: str, step_ids: Iterable[str]) -> list[str]:
    """Kill the recorded process groups of these steps that still run; return their step ids."""
    stopped = []
    folder = _ledger(workspace, run_id)
    for step_id in step_ids:
        path = folder / f"{step_id}.json"
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if entry.get("pgid") is None and entry.get("boot") == _boot_id():
            groups = _groups_of(run_id, step_id)  # started, but killed before it was recorded
            if [pgid for pgid in groups if _kill_group(pgid)]:
                stopped.append(step_id)
        elif _same_process(entry) and _kill_group(int(entry["pgid"])):
            stopped.append(step_id)
        forget(workspace, run_id, step_id)
    return stopped


def _same_process(entry: dict[str, object]) -> bool:
    """The recorded leader is still the process we started (not a reused pid, not another boot)."""
    pgid = entry.get("pgid")
    if not isinstance(pgid, int) or entry.get("boot") != _boot_id():
        return False
    started = _start_ticks(pgid)
    return started is not None and started == entry.get("started")


def _groups_of(run_id: str, step_id: str) -> set[int]:
    """The process groups of live processes whose environment names this run and step."""
    markers = (f"PODIUM_RUN_ID={run_id}\0".encode(), f"PODIUM_STEP_ID={step_id}\0".encode())
    groups = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = b"\0" + (entry / "environ").read_bytes()
            if all(b"\0" + marker in environ for marker in markers):
                groups.add(os.getpgid(int(entry.name)))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    groups.discard(os.getpgid(0))  # never our own (a podium running inside a step of the run)
    return groups


def _kill_group(pgid: int, grace_seconds: float = 5.0) -> bool:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and _start_ticks(pgid) is not None:
        time.sleep(0.01)
    return True


def _start_ticks(pid: int) -> int | None:
    """The process's start time (clock ticks after boot); None if it is gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def _boot_id() -> str:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return ""
