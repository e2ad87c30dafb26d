"""`podium approvals [RUN]`: what waits for a person, in one run or across every live run; and
`podium answer RUN STEP VALUE` for a `human` step's question."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.text import Text

from podium.cli._session import (
    DbOption,
    JsonOption,
    Session,
    execute,
    finish,
    follow,
    owner,
    session,
)
from podium.cli.render import clock_time, shorten
from podium.cli.runref import HELP, RunRef, resolve_run, resolved
from podium.core.tool_approvals import held_call
from podium.runtime.approvals import LISTED_RUNS, Waiting, parsed_answer, waiting_runs

ASKS_CHARS = 120


def approvals(
    ctx: typer.Context,
    run_id: Annotated[
        str | None, typer.Argument(metavar="[RUN]", help=HELP, show_default=False)
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List what waits for a person (run, step, since when, what it asks), with the command to
    decide each."""
    here = session(ctx, db, as_json)
    execute(here, _approvals(here, run_id))


async def _approvals(here: Session, ref: str | None) -> int:
    more = False
    async with await here.engine("control") as engine:
        run_id = await resolve_run(engine.store, ref) if ref is not None else None
        if run_id is None:
            listed = await waiting_runs(engine)
            found, more = listed.found, listed.more
        else:
            found = await engine.approvals(run_id)
    if more:
        here.err.print(
            f"note: more than {LISTED_RUNS} runs are live; only the newest {LISTED_RUNS} "
            "were read (name a run: podium approvals RUN)"
        )
    if here.json:
        here.emit([w.document() for w in found])
        return 0
    if not found:
        where = f"run {run_id}" if run_id is not None else "any live run"
        here.note(f"nothing in {where} waits for a person")
        return 0
    for w in found:
        why = f"  ({w.reason})" if w.reason else ""
        line = f"{w.run_id}  {w.step_id}  since {clock_time(w.since)}  {asks(w)}{why}"
        here.out.print(Text(line), soft_wrap=True)
    first = found[0]
    rid, sid = first.run_id, first.step_id
    if first.subject == "answer":
        here.note(f"answer: podium answer {rid} {sid} VALUE")
    else:
        here.note(
            f"approve: podium approve {rid} {sid}   refuse: podium reject {rid} {sid} --reason TEXT"
        )
    return 0


def answer(
    ctx: typer.Context,
    run_id: RunRef,
    step_id: Annotated[str, typer.Argument(metavar="STEP", help="The human step.")],
    value: Annotated[
        str,
        typer.Argument(
            metavar="VALUE",
            help="The answer: text, one of the choices, or JSON for a step with a schema.",
        ),
    ],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Answer a human step's question (checked against what it asks), then carry on the run."""
    here = session(ctx, db, as_json)
    execute(here, _answer(here, run_id, step_id, value))


async def _answer(here: Session, ref: str, step_id: str, text: str) -> int:
    run_id = await resolved(here, ref)
    async with await here.engine(run_id=run_id) as engine:
        value = parsed_answer(await engine.state(run_id), step_id, text)
        if not await engine.answer(run_id, step_id, value):
            here.note(f"answer recorded; {await owner(engine, run_id)} drives the run")
            return 0
        state = await follow(here, engine, run_id)
        return await finish(here, engine, state)


def asks(w: Waiting) -> str:
    """What the person is asked, in one short line."""
    if w.subject == "answer":
        return shorten(f"asks: {w.input.get('prompt', '')}", ASKS_CHARS)
    if w.subject == "plan":
        plan: Any = w.input.get("plan") or {}
        count = len(plan.get("steps", [])) if isinstance(plan, dict) else 0
        summary = plan.get("summary", "") if isinstance(plan, dict) else ""
        text = f"plan v{w.version}: {count} step{'s' if count != 1 else ''} {summary}".strip()
        return shorten(text, ASKS_CHARS)
    if w.subject == "tool":  # an agent's call held before it is made
        return held_call(w.input)
    shown = {k: v for k, v in w.input.items() if k != "kind"}
    kind = w.input.get("kind", "step")
    return shorten(f"{kind} {json.dumps(shown, ensure_ascii=False)}", ASKS_CHARS)
