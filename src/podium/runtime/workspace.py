"""Where a new run works: the one rule for its workspace, the folder that relative file paths,
shell `cwd`, python `module:function` imports and the process bookkeeping resolve against."""

from __future__ import annotations

import os
from pathlib import Path

from podium.errors import UsageError
from podium.spec.load import WorkflowSource


def choose_workspace(workflow: WorkflowSource, given: str | os.PathLike[str] | None = None) -> Path:
    """`given` (`--workspace DIR`) if set, else the folder of the workflow file, else (a
    workflow given as data) the current directory; always absolute. An existing run keeps the
    workspace recorded on it."""
    if given is not None:
        return checked_workspace(given)
    if isinstance(workflow, str | os.PathLike):
        return Path(workflow).expanduser().resolve().parent
    return Path.cwd().resolve()


def checked_workspace(folder: str | os.PathLike[str]) -> Path:
    """An existing folder, absolute; anything else is a UsageError saying what to fix."""
    path = Path(folder).expanduser()
    if not path.exists():
        raise UsageError(f"workspace {path} does not exist; create the folder or pass another")
    if not path.is_dir():
        raise UsageError(f"workspace {path} is not a folder; pass a directory to --workspace")
    return path.resolve()
