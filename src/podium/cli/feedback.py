"""`podium feedback RUN STEP --up|--down [--comment TEXT]`: rate a finished step, on a live run
or a finished one; `podium show` lists the ratings. The engine checks everything before it
records anything (a bad request exits 2); see runtime/feedback.py for how it is written."""

from __future__ import annotations

from typing import Annotated

import typer

from podium import views
from podium.cli._session import DbOption, JsonOption, Session, StepArg, execute, owner, session
from podium.cli.runref import RunRef, resolved
from podium.errors import UsageError

UpOption = Annotated[bool, typer.Option("--up", help="The step did well.")]
DownOption = Annotated[bool, typer.Option("--down", help="The step did badly.")]
CommentOption = Annotated[
    str | None,
    typer.Option(
        "--comment", metavar="TEXT", help="What you think of it (at most 2,000 characters)."
    ),
]


def feedback(
    ctx: typer.Context,
    run_id: RunRef,
    step_id: StepArg,
    up: UpOption = False,
    down: DownOption = False,
    comment: CommentOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Rate a finished step up or down, with an optional comment: recorded on the run (as your
    OS user name) and listed by `podium show`."""
    here = session(ctx, db, as_json)
    execute(here, _feedback(here, run_id, step_id, (up, down), comment))


async def _feedback(
    here: Session, ref: str, step_id: str, up_down: tuple[bool, bool], comment: str | None
) -> int:
    if up_down[0] == up_down[1]:
        given = "both --up and --down" if up_down[0] else "neither --up nor --down"
        raise UsageError(
            f"give exactly one of --up or --down (got {given}); "
            f"e.g. `podium feedback {ref} {step_id} --up`"
        )
    rating = "up" if up_down[0] else "down"
    run_id = await resolved(here, ref)
    async with await here.engine(run_id=run_id) as engine:
        recorded = await engine.feedback(run_id, step_id, rating, comment)
        notes = (await engine.state(run_id)).feedback.get(step_id, [])
        driver = await owner(engine, run_id)
    if recorded:
        counts = ", ".join(f"{r} {n}" for r, n in views.feedback_counts(notes).items() if n)
        here.note(f"feedback {rating} on step {step_id} of run {run_id} recorded ({counts})")
    else:
        here.note(f"feedback {rating} on step {step_id} posted; {driver} records it")
    if here.json:
        here.emit(
            views.feedback_document(
                run_id, step_id, rating, comment, recorded=recorded, notes=notes
            )
        )
    return 0
