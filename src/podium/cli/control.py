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
    Session,
    execute,
    finish,
    follow,
    owner,
    session,
)
from podium.cli.runref import RunRef, resolved
from podium.errors import UsageError
from podium.runtime.engine import Engine
from podium.runtime.steering import Verb, post_all_but_last


def cancel(
    ctx: typer.Context,
    run_id: RunRef,
    reason: Annotated[str, typer.Option("--reason", help="Why; recorded on the run.")] = "",
    db: DbOption = None,
) -> None:
    """Cancel a run: running steps are stopped (their process groups killed)."""
    here = session(ctx, db)
    execute(here, _cancel(here, run_id, reason))


async def _cancel(here: Session, run_id: str, reason: str) -> int:
    run_id = await resolved(here, run_id)
    async with await here.engine(run_id=run_id) as engine:
        if not await engine.cancel(run_id, reason):
            here.note(f"cancel requested; {await owner(engine, run_id)} will stop it")
            return 0
        here.run_id = run_id
        state = await engine.wait(run_id)
    here.note(f"run {run_id} {state.status}")
    return 0


OptionalStep = Annotated[
    str | None,
    typer.Argument(
        metavar="[STEP]",
        help="The step id (or --all-interrupted / --all-failed).",
        show_default=False,
    ),
]

AllInterrupted = Annotated[
    bool, typer.Option("--all-interrupted", help="Every interrupted step, instead of one STEP.")
]
AllFailed = Annotated[
    bool, typer.Option("--all-failed", help="Every failed step, instead of STEP.")
]


def _step_command(verb: Verb, summary: str) -> Callable[..., None]:
    """`podium retry|skip RUN STEP` or `RUN --all-interrupted|--all-failed`: one body, two
    verbs."""

    def command(
        ctx: typer.Context,
        run_id: RunRef,
        step_id: OptionalStep = None,
        all_interrupted: AllInterrupted = False,
        all_failed: AllFailed = False,
        db: DbOption = None,
        agents: AgentsOption = None,
        model: ModelOption = None,
        config: ConfigOption = None,
    ) -> None:
        here = session(ctx, db, agents=agents, model=model, config=config)
        wanted = {"interrupted": all_interrupted, "failed": all_failed}
        execute(here, _control(here, verb, run_id, step_id, [k for k, v in wanted.items() if v]))

    command.__name__ = command.__qualname__ = verb
    command.__doc__ = summary
    return command


async def _control(
    here: Session, verb: Verb, run_id: str, step_id: str | None, every: list[str]
) -> int:
    named = (step_id is not None) + len(every)
    if named > 1 or (named == 0 and verb == "skip"):
        raise UsageError(
            f"name what to {verb}: a STEP, --all-interrupted or --all-failed (exactly one); "
            f"e.g. `podium {verb} {run_id} --all-interrupted`"
        )
    run_id = await resolved(here, run_id)
    async with await here.engine(run_id=run_id) as engine:
        if step_id is None and not every:
            every = [await _revived(engine, verb, run_id)]
        steps = (
            [step_id]
            if step_id is not None
            else await post_all_but_last(engine, verb, run_id, every[0])
        )
        command = engine.retry if verb == "retry" else engine.skip
        if len(steps) > 1:
            here.note(f"{verb}: {', '.join(steps)}")
        if not await command(run_id, steps[-1]):
            driver = await owner(engine, run_id)
            which = ", ".join(steps)
            here.note(f"{verb} of {which} requested; {driver} drives the run and picks it up")
            return 0
        state = await follow(here, engine, run_id)
        return await finish(here, engine, state)


async def _revived(engine: Engine, verb: Verb, run_id: str) -> str:
    """`podium retry RUN` alone: a dead-lettered run is revived by retrying the steps its
    dead-lettering interrupted. Any other run needs to be told what to retry."""
    if (await engine.store.get_run(run_id)).status == "dead":
        return "interrupted"
    raise UsageError(
        f"name what to {verb}: a STEP, --all-interrupted or --all-failed (exactly one); e.g. "
        f"`podium {verb} {run_id} --all-interrupted` (`podium retry RUN` alone revives a "
        "dead-lettered run)"
    )


retry = _step_command(
    "retry",
    "Run a failed, interrupted, cancelled or skipped step again, then what waits for it; "
    "--all-interrupted or --all-failed retries every such step at once. `podium retry RUN` "
    "alone brings a dead-lettered run (`podium runs --status dead`) back.",
)
skip = _step_command(
    "skip",
    "Mark a waiting, interrupted or failed step skipped and carry on without it; "
    "--all-interrupted or --all-failed skips every such step at once.",
)
