"""A run's log entries in the order they were recorded: from its events, and for a shell step's
attempt the lines it wrote (its log file, `podium.steps.steplog`) instead of the stored output
and the stored end of stderr, when the file is here (the run ran on this machine, not pruned).
`podium logs` and the HTTP API's logs share this."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from podium import views
from podium.core import events as ev
from podium.steps import steplog
from podium.store.base import EventStore, StoredEvent

ATTEMPT_ENDS = (ev.StepSucceeded, ev.StepFailed, ev.StepRetrying, ev.StepCancelled, ev.StepLost)
Show = Callable[[dict[str, Any]], None]


class LogTails:
    """Feed it the run's events in order (`on_event`) and, while shell steps run, `poll` it:
    it shows each log entry once."""

    def __init__(self, workspace: Path, run_id: str) -> None:
        self._workspace, self._run_id = workspace, run_id
        self._running: dict[str, int] = {}  # step -> attempt
        self._offsets: dict[tuple[str, int], int] = {}

    def on_event(self, stored: StoredEvent, show: Show) -> None:
        e = stored.event
        if isinstance(e, ev.StepStarted):
            self._running[e.step_id] = e.attempt
        step = getattr(e, "step_id", None)
        logged = False
        if isinstance(e, ATTEMPT_ENDS) and step in self._running:
            logged = self._drain(step, self._running.pop(step), show)
        for entry in views.log_entries(stored):
            if not (logged and entry["stream"] in ("stdout", "stderr")):
                show(entry)

    def poll(self, show: Show) -> None:
        for step, attempt in list(self._running.items()):
            self._drain(step, attempt, show)

    def _drain(self, step: str, attempt: int, show: Show) -> bool:
        """Show the attempt's new lines; True when it has a log file."""
        path = steplog.log_path(self._workspace, self._run_id, step, attempt)
        key = (step, attempt)
        if key not in self._offsets and not path.exists():
            return False
        records, self._offsets[key] = steplog.read_records(path, self._offsets.get(key, 0))
        for record in records:
            show(views.log_line_entry(self._run_id, step, attempt, record))
        return True


async def log_entries(
    store: EventStore, run_id: str, workspace: Path, step_id: str | None = None
) -> list[dict[str, Any]]:
    """Every log entry of the run (or of one step) so far: what `podium logs RUN --json` prints
    without --follow."""
    entries: list[dict[str, Any]] = []

    def keep(entry: dict[str, Any]) -> None:
        if step_id is None or entry["step_id"] == step_id:
            entries.append(entry)

    tails = LogTails(workspace, run_id)
    for stored in await store.read(run_id):
        tails.on_event(stored, keep)
    tails.poll(keep)  # what steps still running have written so far
    return entries
