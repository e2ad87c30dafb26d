"""Runs: submit, list (filters and a cursor), show, cancel, retry, skip, fork, prune. The
documents are the CLI's `--json` ones (podium.views); the run must exist or it is a 404."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import Field

from podium import views
from podium.core.events import DEFAULT_QUEUE
from podium.errors import RunNotFoundError, UsageError
from podium.runtime.engine import Engine
from podium.runtime.pruning import DEFAULT_AGE, parse_age, parse_statuses, prune_runs
from podium.runtime.steering import Verb, post_all_but_last
from podium.runtime.workspace import checked_workspace
from podium.server.auth import require
from podium.server.deps import Body, EngineDep, OptionsDep, existing_run
from podium.server.problems import ApiError
from podium.spec.load import WorkflowSource
from podium.store.base import QUEUE_NAME, RunStatus

router = APIRouter(tags=["runs"])
MAX_PAGE = 500


class SubmitBody(Body):
    workflow: dict[str, Any] | None = Field(
        None, description="The workflow document (what a workflow file holds, as JSON)."
    )
    path: str | None = Field(
        None, description="Or a workflow file on the server, relative to its workspace."
    )
    inputs: dict[str, Any] = Field(default_factory=dict, description="The workflow's inputs.")
    run_id: str | None = Field(None, description="Choose the run id.")
    workspace: str | None = Field(
        None,
        description="Where the run works, a folder inside the server's workspace (default: "
        "the file's folder, else the server's).",
    )
    queue: str = Field(
        DEFAULT_QUEUE,
        pattern=QUEUE_NAME.pattern,
        description="The queue it waits on: only workers of that queue claim it.",
    )


class CancelBody(Body):
    reason: str = Field("", description="Why; recorded on the run.")


class StepsBody(Body):
    step_id: str | None = Field(None, description="The step; or give `all`.")
    all: Literal["failed", "interrupted"] | None = Field(
        None, description="Every failed (or interrupted) step instead of one."
    )


class ForkBody(Body):
    from_step: str = Field(description="Run this step again, and everything downstream of it.")
    inputs: dict[str, Any] = Field(default_factory=dict, description="Inputs to change.")


class PruneBody(Body):
    older_than: str = Field(DEFAULT_AGE, description="45s, 90m, 12h, 30d, 2w.")
    statuses: list[str] = Field(
        default_factory=lambda: ["succeeded", "failed", "cancelled"],
        description="Only runs that ended so.",
    )
    dry_run: bool = Field(False, description="List what would be removed; remove nothing.")


def source_of(body: SubmitBody | Any, root: Path) -> WorkflowSource:
    """The document, or the file `path` names under the server's workspace: exactly one."""
    if (body.workflow is None) == (body.path is None):
        raise UsageError("give the workflow as `workflow` (a document) or `path` (a file), one")
    if body.workflow is not None:
        return dict(body.workflow)
    file = (root / str(body.path)).resolve()
    if not file.is_relative_to(root):  # a read token must not read the server's other files
        raise UsageError(f"workflow file {body.path!r} is outside the server's workspace {root}")
    if not file.is_file():
        raise UsageError(f"no workflow file {body.path!r} under the server's workspace {root}")
    return str(file)


def workspace_of(body: SubmitBody | Any, root: Path) -> Path | None:
    """The folder `workspace` names, relative to the server's workspace and inside it: a run's
    shell and file steps may write all of their workspace, so a client may not choose `/`."""
    if not body.workspace:
        return None
    where = checked_workspace(root / str(body.workspace))
    if not where.is_relative_to(root.resolve()):
        raise UsageError(
            f"workspace {body.workspace!r} is outside the server's workspace {root}; name a "
            "folder inside it"
        )
    return where


@router.post("/runs", status_code=201, dependencies=[require("write")])
async def submit(body: SubmitBody, engine: EngineDep, options: OptionsDep) -> dict[str, Any]:
    """Validate and start a run (`podium run`; a control-only server leaves it for a worker).
    Returns its listing row; nothing is recorded if anything is refused."""
    source = source_of(body, options.workspace)
    where = workspace_of(body, options.workspace)
    if where is None and not isinstance(source, str):
        where = options.workspace
    run_id = await engine.submit(
        source, body.inputs, run_id=body.run_id, workspace=where, queue=body.queue
    )
    return views.run_document(await engine.store.get_run(run_id))


@router.get("/runs", dependencies=[require("read")])
async def list_runs(
    engine: EngineDep,
    response: Response,
    status: list[RunStatus] | None = Query(None, description="Only these statuses."),
    workflow: str | None = Query(None, description="Only runs of this workflow name."),
    thread: str | None = Query(None, description="Only the runs of this thread."),
    limit: int = Query(50, ge=1, le=MAX_PAGE, description="At most this many."),
    cursor: str | None = Query(None, description="The X-Next-Cursor of the previous page."),
) -> list[dict[str, Any]]:
    """Runs, newest first (`podium runs --json`); a further page's cursor is in the
    X-Next-Cursor header (absent on the last page)."""
    try:
        page = await engine.store.list_runs(
            statuses=status, workflow_name=workflow, thread=thread, limit=limit + 1, after=cursor
        )
    except RunNotFoundError:
        raise ApiError(
            400, "bad_cursor", f"cursor {cursor!r} names no run; start again without a cursor"
        ) from None
    if len(page) > limit:
        page = page[:limit]
        response.headers["X-Next-Cursor"] = page[-1].run_id
    return [views.run_document(r, await engine.latest(r)) for r in page]


@router.get("/runs/{run_id}", dependencies=[require("read")])
async def show(run_id: str, engine: EngineDep) -> dict[str, Any]:
    """The run's full state (`podium show RUN --json`)."""
    record = await engine.store.get_run(run_id)
    return views.show_document(await engine.latest(record), record)


def _accepted(run_id: str, action: str, driving: bool, **more: Any) -> Any:
    """What a control call answers: it was accepted, and whether this server drives it on."""
    return {"run_id": run_id, "action": action, "driving": driving, **more}


@router.post("/runs/{run_id}/cancel", status_code=202, dependencies=[require("write")])
async def cancel(run_id: str, engine: EngineDep, body: CancelBody | None = None) -> Any:
    """Cancel the run: running steps are stopped (`podium cancel`)."""
    reason = body.reason if body is not None else ""
    driving = await engine.cancel(await existing_run(engine, run_id), reason)
    return _accepted(run_id, "cancel", driving)


async def _steps(engine: Engine, verb: Verb, run_id: str, body: StepsBody) -> Any:
    if (body.step_id is None) == (body.all is None):
        raise UsageError(f"name what to {verb}: `step_id` or `all` (failed|interrupted), one")
    await existing_run(engine, run_id)
    if body.all is not None:
        steps = await post_all_but_last(engine, verb, run_id, body.all)
    else:
        steps = [body.step_id or ""]
    command = engine.retry if verb == "retry" else engine.skip
    driving = await command(run_id, steps[-1])
    return _accepted(run_id, verb, driving, steps=steps)


@router.post("/runs/{run_id}/retry", status_code=202, dependencies=[require("write")])
async def retry(run_id: str, body: StepsBody, engine: EngineDep) -> Any:
    """Run a failed, interrupted, cancelled or skipped step again (`podium retry`)."""
    return await _steps(engine, "retry", run_id, body)


@router.post("/runs/{run_id}/skip", status_code=202, dependencies=[require("write")])
async def skip(run_id: str, body: StepsBody, engine: EngineDep) -> Any:
    """Mark a waiting, interrupted or failed step skipped and carry on (`podium skip`)."""
    return await _steps(engine, "skip", run_id, body)


@router.post("/runs/{run_id}/fork", status_code=201, dependencies=[require("write")])
async def fork(run_id: str, body: ForkBody, engine: EngineDep) -> dict[str, Any]:
    """A new run reusing this one's outputs upstream of `from_step` (`podium fork`)."""
    await existing_run(engine, run_id)
    new_id = await engine.fork(run_id, body.from_step, body.inputs)
    return views.run_document(await engine.store.get_run(new_id))


@router.post("/runs/prune", dependencies=[require("write")])
async def prune(body: PruneBody, engine: EngineDep) -> dict[str, Any]:
    """Delete finished runs and their workspace bookkeeping (`podium prune`)."""
    cutoff = datetime.now(UTC) - parse_age(body.older_than, name="older_than")
    statuses = parse_statuses(body.statuses, name="statuses")
    pruned = await prune_runs(engine.store, cutoff=cutoff, statuses=statuses, dry_run=body.dry_run)
    return {
        "dry_run": body.dry_run,
        "runs": [views.run_document(r) for r in pruned.runs],
        "files": [str(p) for p in pruned.files],
    }
