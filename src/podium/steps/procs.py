"""A ledger of the process groups shell steps start, so a resume can stop what a killed engine left.

A SIGKILLed engine cannot kill its children: their process groups run on and would finish (or
repeat) side effects behind the back of a resumed run. Each shell attempt records its group under
`<workspace>/.podium/procs/<run>/<step>.json` right after it starts (a process crash keeps the
file: no fsync needed; an OS crash ends the processes too) and removes it when the group is done.
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


def _ledger(workspace: Path, run_id: str) -> Path:
    return workspace / ".podium" / "procs" / run_id


def record(workspace: Path, run_id: str, step_id: str, pid: int) -> None:
    """Note that `step_id` runs in the process group led by `pid`."""
    folder = _ledger(workspace, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    entry = {"pgid": pid, "started": _start_ticks(pid), "boot": _boot_id()}
    (folder / f"{step_id}.json").write_text(json.dumps(entry))


def forget(workspace: Path, run_id: str, step_id: str) -> None:
    with contextlib.suppress(OSError):
        (_ledger(workspace, run_id) / f"{step_id}.json").unlink()


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
        if _same_process(entry) and _kill_group(int(entry["pgid"])):
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
