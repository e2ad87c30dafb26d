"""`podium plan "GOAL"`, and `podium approve` and `podium reject` of what waits for a person
(a confirmed plan, or any step with `approval:`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from podium.cli._session import (
    AgentsOption,
    ConfigOption,
    DbOption,
    HereWorkspaceOption,
    JsonOption,
    ModelOption,
    Session,
    execute,
    finish,
    follow,
    owner,
    session,
    submit_and_follow,
)
from podium.cli.runref import RunRef, resolved
from podium.errors import SpecError, UsageError
from podium.spec.load import read_document

Mode = Annotated[
    str,
    typer.Option("--mode", help="auto, sequential, parallel or swarm.", show_default=True),
]


def plan(
    ctx: typer.Context,
    goal: Annotated[str, typer.Argument(metavar="GOAL", help="What the agents should achieve.")],
    agents: AgentsOption = None,
    model: ModelOption = None,
    planner: Annotated[str, typer.Option("--planner", help="The supervisor agent.")] = "planner",
    mode: Mode = "auto",
    confirm: Annotated[
        bool, typer.Option("--confirm", help="Wait for `podium approve` before running the plan.")
    ] = False,
    aggregator: Annotated[
        str | None, typer.Option("--aggregator", help="An agent that synthesises the results.")
    ] = None,
    max_replans: Annotated[int, typer.Option("--max-replans", min=0, max=10)] = 2,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Choose the run id.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
    workspace: HereWorkspaceOption = None,
) -> None:
    """Plan a goal with the supervisor agent and run the plan, showing it live."""
    here = session(ctx, db, as_json, agents=agents, model=model, config=config, workspace=workspace)
    step: dict[str, Any] = {
        "id": "plan",
        "kind": "plan",
        "goal": goal,
        "planner": planner,
        "mode": mode,
        "confirm": confirm,
        "max_replans": max_replans,
    }
    if aggregator:
        step["aggregator"] = aggregator
    execute(here, _plan(here, {"name": "goal", "steps": [step]}, run_id))


async def _plan(here: Session, workflow: dict[str, Any], run_id: str | None) -> int:
    return await submit_and_follow(here, workflow, run_id=run_id)


def approve(
    ctx: typer.Context,
    run_id: RunRef,
    step_id: Annotated[
        str | None,
        typer.Argument(
            metavar="[STEP]", help="The step awaiting approval (optional when only one is)."
        ),
    ] = None,
    edit: Annotated[
        Path | None,
        typer.Option(
            "--edit",
            metavar="FILE",
            help="Approve this instead (JSON/YAML): a plan, or the step fields to replace.",
        ),
    ] = None,
    values: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Replace one field of the step (repeatable; a.b reaches into a mapping).",
        ),
    ] = None,
    agents: AgentsOption = None,
    model: ModelOption = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Approve a step or plan a run waits on (optionally as edited), then run it."""
    here = session(ctx, db, agents=agents, model=model, config=config)
    execute(here, _decide(here, run_id, step_id, edit=edit, values=values or [], reason=None))


def reject(
    ctx: typer.Context,
    run_id: RunRef,
    step_id: Annotated[
        str | None,
        typer.Argument(
            metavar="[STEP]", help="The step awaiting approval (optional when only one is)."
        ),
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why; recorded on the run.")] = "",
    db: DbOption = None,
) -> None:
    """Reject a step or plan a run waits on; the step fails with the reason."""
    here = session(ctx, db)
    execute(here, _decide(here, run_id, step_id, edit=None, values=[], reason=reason))


def _read_edit(path: Path) -> dict[str, Any]:
    """The edit in `path`; a file that cannot be read or parsed is one line (exit 2)."""
    try:
        return read_document(path, what="plan")
    except SpecError as exc:
        problem = exc.problems[0] if exc.problems else None
        if problem is None or problem.message.startswith("the document must be a mapping"):
            got = problem.message.rpartition("got ")[2] if problem else "nothing"
            raise UsageError(
                f"plan file {path} holds {got}; a plan is an object with a `steps` list, a "
                "step's edit a mapping of the fields to replace"
            ) from None
        raise UsageError(f"plan file {path}: {problem}") from None


async def _decide(
    here: Session,
    run_id: str,
    step_id: str | None,
    *,
    edit: Path | None,
    values: list[str],
    reason: str | None,
) -> int:
    if edit is not None and values:
        raise UsageError("give either --edit FILE or --set KEY=VALUE, not both")
    edited = _read_edit(edit) if edit is not None else None  # a bad file: exit 2, one line
    run_id = await resolved(here, run_id)
    async with await here.engine(run_id=run_id) as engine:
        if reason is None:
            driving = await engine.approve(run_id, step_id, edit=edited, set=values)
        else:
            driving = await engine.reject(run_id, step_id, reason=reason)
        if not driving:
            driver = await owner(engine, run_id)
            here.note(f"decision recorded; {driver} drives the run and picks it up")
            return 0
        state = await follow(here, engine, run_id)
        return await finish(here, engine, state)
