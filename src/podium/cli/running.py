"""`podium run`, `podium validate` and `podium resume`: start, check and take over workflows."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from podium.cli._session import (
    AgentsOption,
    ConfigOption,
    DbOption,
    FileArg,
    JsonOption,
    ModelOption,
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
from podium.runtime.engine import Engine
from podium.runtime.submission import AgentChecks, check_agent_steps, check_children
from podium.runtime.workspace import choose_workspace
from podium.spec.lint import workflow_warnings
from podium.spec.load import load_workflow
from podium.spec.model import Workflow
from podium.spec.validate import coerce_inputs, parse_input_pairs
from podium.store.memory import MemoryEventStore


def run(
    ctx: typer.Context,
    file: FileArg,
    inputs: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", metavar="NAME=VALUE", help="A workflow input; repeatable."),
    ] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Choose the run id.")] = None,
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
    execute(here, _run(here, file, inputs or [], run_id))


async def _run(here: Session, file: Path, pairs: list[str], run_id: str | None) -> int:
    here.workspace = choose_workspace(file, here.workspace)
    workflow = load_workflow(file)
    _warn(here, workflow)
    given = parse_input_pairs(pairs)
    coerce_inputs(workflow, given)  # bad inputs are refused before the store is touched
    return await submit_and_follow(here, workflow, given, run_id=run_id)


def validate(
    ctx: typer.Context,
    file: FileArg,
    db: DbOption = None,
    config: ConfigOption = None,
    agents: AgentsOption = None,
    model: ModelOption = None,
) -> None:
    """Check a workflow and everything its run would use, and list every problem found. That is
    the file, the agents it names, their tools (MCP servers included, without starting them),
    the model each agent would call (provider known or configured, key set) and the project
    configuration; warnings (shell syntax in a `run:` without `shell:`) do not fail it."""
    here = session(ctx, db, config=config, agents=agents, model=model)
    execute(here, _validate(here, file))


async def _validate(here: Session, file: Path) -> int:
    workspace = choose_workspace(file)  # what `podium run FILE` would use
    config = load_config(workspace, path=here.config)
    async with Engine(
        MemoryEventStore(),
        mode="control",
        agents_dir=here.agents,
        default_model=here.model,
        config=config,
        workspace=workspace,
    ) as engine:  # the agents, MCP servers and models the run would use; no store is touched
        workflow = load_workflow(file, agents=AgentChecks(engine.services))
        check_agent_steps(workflow, engine.services)  # the model checks `run` makes
        check_children(workflow, file, workspace, engine.services, engine.children.workflows)
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
