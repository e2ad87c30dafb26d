"""`podium script RUN [-o FILE]`: a run's recorded model replies as a scripted-model script, so
`podium run WORKFLOW --model scripted:FILE` replays the run offline and deterministically — any
run against a real model becomes a regression test."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import typer
import yaml

from podium.cli._session import DbOption, OutputOption, Session, execute, session
from podium.cli.runref import RunRef, resolve_run
from podium.errors import UsageError
from podium.recording import script_of


def script(
    ctx: typer.Context,
    run_id: RunRef,
    output: OutputOption = None,
    db: DbOption = None,
) -> None:
    """Write the run's recorded model replies as a script for `--model scripted:FILE`."""
    here = session(ctx, db)
    execute(here, _script(here, run_id, output))


async def _script(here: Session, ref: str, output: Path | None) -> int:
    async with await here.engine("control") as engine:
        run_id = await resolve_run(engine.store, ref)
        document = script_of(run_id, await engine.store.read(run_id))
    turns = sum(len(replies) for replies in document["steps"].values())
    if not turns:
        raise UsageError(
            f"run {run_id} recorded no model replies (it has no agent or plan steps that ran, "
            "or it ran before replies were recorded); there is nothing to replay"
        )
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    if output is None:
        sys.stdout.write(text)
    else:
        _write_atomically(output, text)
        steps = len(document["steps"])
        here.note(f"wrote {turns} replies of {steps} step{'s' if steps != 1 else ''} to {output}")
    return 0


def _write_atomically(path: Path, text: str) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"cannot write {path}: folder {folder} does not exist")
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
