"""`podium cancel`, `podium retry` and `podium skip`: steer a run from any process. The engine
checks the run, the step and its state before it posts anything (a bad request exits 2)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from podium.cli._session import (
    AgentsOption,
    ConfigOption,
    DbOption,
    ModelOption,
    RunArg,
    Session,
    StepArg,
    execute,
    finish,
    follow,
    owner,
    session,
)


def cancel(
    ctx: typer.Context,
    run_id: RunArg,
    reason: Annotated[str, typer.Option("--reason", help="Why; recorded on the run.")] = "",
    db: DbOption = None,
) -> None:
    """Cancel a run: running steps are stopped (their process groups killed)."""
    here = session(ctx, db)
    execute(here, _cancel(here, run_id, reason))


async def _cancel(here: Session, run_id: str, reason: str) -> int:
    async with await here.engine(run_id=run_id) as engine:
        if not await engine.cancel(run_id, reason):
            here.note(f"cancel requested; {await owner(engine, run_id)} will stop it")
            return 0
        here.run_id = run_id
        state = await engine.wait(run_id)
    here.note(f"run {run_id} {state.status}")
    return 0


def _step_command(verb: str, summary: str) -> Callable[..., None]:
    """`podium retry|skip RUN STEP`: one body, two verbs."""

    def command(
        ctx: typer.Context,
        run_id: RunArg,
        step_id: StepArg,
        db: DbOption = None,
        agents: AgentsOption = None,
        model: ModelOption = None,
        config: ConfigOption = None,
    ) -> None:
        here = session(ctx, db, agents=agents, model=model, config=config)
        execute(here, _control(here, verb, run_id, step_id))

    command.__name__ = command.__qualname__ = verb
    command.__doc__ = summary
    return command


async def _control(here: Session, verb: str, run_id: str, step_id: str) -> int:
    async with await here.engine(run_id=run_id) as engine:
        command = engine.retry if verb == "retry" else engine.skip
        if not await command(run_id, step_id):
            driver = await owner(engine, run_id)
            here.note(f"{verb} of {step_id} requested; {driver} drives the run and picks it up")
            return 0
        state = await follow(here, engine, run_id)
        return await finish(here, engine, state)


retry = _step_command(
    "retry", "Run a failed, interrupted, cancelled or skipped step again, then what waits for it."
)
skip = _step_command(
    "skip", "Mark a waiting, interrupted or failed step skipped and carry on without it."
)
