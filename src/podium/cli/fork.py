"""`podium fork RUN --from STEP`: a new run of RUN's workflow that reuses RUN's committed
outputs of every step not downstream of STEP and runs STEP and what follows anew."""

from __future__ import annotations

from typing import Annotated

import typer

from podium.cli._session import (
    AgentsOption,
    ConfigOption,
    DbOption,
    JsonOption,
    ModelOption,
    Session,
    execute,
    finish,
    follow,
    session,
)
from podium.cli.runref import RunRef, resolve_run
from podium.spec.inputs import parse_input_pairs


def fork(
    ctx: typer.Context,
    run_id: RunRef,
    from_step: Annotated[
        str,
        typer.Option(
            "--from",
            metavar="STEP",
            show_default=False,
            help="The step to run again, with everything downstream of it.",
        ),
    ],
    inputs: Annotated[
        list[str] | None,
        typer.Option(
            "--input", "-i", metavar="NAME=VALUE", help="Change one of RUN's inputs; repeatable."
        ),
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
    agents: AgentsOption = None,
    model: ModelOption = None,
    config: ConfigOption = None,
) -> None:
    """Re-run a run from STEP on (time travel): a new run of RUN's workflow takes over RUN's
    outputs of every step not downstream of STEP and runs STEP and everything after it anew. A
    plan's recorded plan is reused; steps that read a changed input run again too. It is shown
    live like `run`."""
    here = session(ctx, db, as_json, agents=agents, model=model, config=config)
    execute(here, _fork(here, run_id, from_step, inputs or []))


async def _fork(here: Session, ref: str, from_step: str, pairs: list[str]) -> int:
    given = parse_input_pairs(pairs)
    async with await here.engine("control") as reader:  # RUN may be a prefix or @latest
        run_id = await resolve_run(reader.store, ref)
    async with await here.engine(run_id=run_id) as engine:
        new_id = await engine.fork(run_id, from_step, given)
        here.note(f"run {new_id} (forked from {run_id} at {from_step})")
        state = await follow(here, engine, new_id)
        return await finish(here, engine, state)
