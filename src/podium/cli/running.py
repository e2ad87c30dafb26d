"""`podium run`, `podium validate` and `podium resume`: start, check and take over workflows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from podium import views
from podium.cli._session import (
    EXIT_BAD_INPUT,
    AgentsOption,
    ConfigOption,
    DbOption,
    FileArg,
    JsonOption,
    ModelOption,
    QueueOption,
    Session,
    WorkspaceOption,
    execute,
    finish,
    follow,
    session,
    submit_and_follow,
)
from podium.cli.runref import RunRef, resolved
from podium.config import load_config
from podium.core.events import DEFAULT_QUEUE
from podium.errors import PodiumError
from podium.runtime.validation import check_workflow, problems_of, validation
from podium.runtime.workspace import choose_workspace
from podium.spec.lint import workflow_warnings
from podium.spec.load import load_workflow
from podium.spec.model import Workflow
from podium.spec.validate import coerce_inputs, parse_input_pairs


def run(
    ctx: typer.Context,
    file: FileArg,
    inputs: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", metavar="NAME=VALUE", help="A workflow input; repeatable."),
    ] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Choose the run id.")] = None,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach",
            help="Submit, print the run id and return: `podium serve` or a worker runs it.",
        ),
    ] = False,
    queue: QueueOption = DEFAULT_QUEUE,
    db: DbOption = None,
    as_json: JsonOption = False,
    agents: AgentsOption = None,
    model: ModelOption = None,
    config: ConfigOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Validate and run a workflow, showing it live until it completes or waits for a person.
    Its workspace is --workspace, else the workflow file's folder."""
    here = session(ctx, db, as_json, agents=agents, model=model, config=config, workspace=workspace)
    execute(here, _run(here, file, inputs or [], run_id, detach, queue))


async def _run(
    here: Session, file: Path, pairs: list[str], run_id: str | None, detach: bool, queue: str
) -> int:
    here.workspace = choose_workspace(file, here.workspace)
    workflow = load_workflow(file)
    _warn(here, workflow)
    given = parse_input_pairs(pairs)
    coerce_inputs(workflow, given)  # bad inputs are refused before the store is touched
    if detach:
        return await _detach(here, workflow, given, run_id, queue)
    return await submit_and_follow(here, workflow, given, run_id=run_id, queue=queue)


async def _detach(
    here: Session, workflow: Workflow, given: dict[str, Any], run_id: str | None, queue: str
) -> int:
    """Record the run without driving it: it waits, `pending`, for an engine that claims runs
    (`podium serve`, a worker) to take it."""
    workspace = choose_workspace(workflow, here.workspace)
    await here.rehearse(workflow, given, workspace)
    async with await here.engine(workspace=workspace) as engine:
        rid = await engine.submit(workflow, given, run_id=run_id, start=False, queue=queue)
        record = await engine.store.get_run(rid)
    if here.json:
        here.emit(views.run_document(record))
    else:
        here.out.print(rid, markup=False, highlight=False)
    who = "`podium serve` or a worker" if queue == DEFAULT_QUEUE else f"a worker of queue {queue}"
    here.err.print(f"submitted; {who} runs it: podium show {rid}")
    return 0


def validate(
    ctx: typer.Context,
    file: FileArg,
    db: DbOption = None,
    config: ConfigOption = None,
    agents: AgentsOption = None,
    model: ModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check a workflow and everything its run would use, and list every problem found. That is
    the file, the agents it names, their tools (MCP servers included, without starting them),
    the model each agent would call (provider known or configured, key set) and the project
    configuration; warnings (shell syntax in a `run:` without `shell:`) do not fail it."""
    here = session(ctx, db, as_json, config=config, agents=agents, model=model)
    execute(here, _validate(here, file))


async def _validate(here: Session, file: Path) -> int:
    workspace = choose_workspace(file)  # what `podium run FILE` would use
    how: dict[str, Any] = {"workspace": workspace, "agents_dir": here.agents}
    how["default_model"] = here.model
    if here.json:
        try:
            how["config"] = load_config(workspace, path=here.config)
        except PodiumError as exc:
            here.emit(views.validation_document(None, None, problems_of(exc)))
            return EXIT_BAD_INPUT
        workflow, problems, warnings = await validation(file, **how)
        name, count = (workflow.name, len(workflow.steps)) if workflow else (None, None)
        here.emit(views.validation_document(name, count, problems, warnings))
        return 0 if workflow is not None else EXIT_BAD_INPUT
    workflow = await check_workflow(file, config=load_config(workspace, path=here.config), **how)
    _warn(here, workflow)
    count = len(workflow.steps)
    here.note(f"ok: {workflow.name} ({count} step{'s' if count != 1 else ''})")
    return 0


def _warn(here: Session, workflow: Workflow) -> None:
    """Print what is valid but probably not meant, on stderr; warnings never change the exit."""
    for warning in workflow_warnings(workflow):
        here.err.print(Text(f"warning: {warning}"), soft_wrap=True)


def resume(
    ctx: typer.Context,
    run_id: RunRef,
    db: DbOption = None,
    agents: AgentsOption = None,
    model: ModelOption = None,
    config: ConfigOption = None,
) -> None:
    """Take over a run nobody drives (after a crash or Ctrl-C) and finish it. It uses the project
    configuration recorded on the run unless --config is given."""
    here = session(ctx, db, agents=agents, model=model, config=config)
    execute(here, _resume(here, run_id))


async def _resume(here: Session, run_id: str) -> int:
    run_id = await resolved(here, run_id)
    async with await here.engine(run_id=run_id) as engine:
        state = await engine.resume(run_id)
        if engine.is_driving(run_id):
            state = await follow(here, engine, run_id)
        else:
            here.note(f"run {run_id} already {state.status}")
        return await finish(here, engine, state)
