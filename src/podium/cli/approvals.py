"""`podium approvals [RUN]`: what waits for a person, in one run or across every live run."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.text import Text

from podium.cli._session import DbOption, JsonOption, Session, execute, session
from podium.cli.render import clock_time, shorten
from podium.cli.runref import HELP, resolve_run
from podium.runtime.approvals import Waiting

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
    async with await here.engine("control") as engine:
        run_id = await resolve_run(engine.store, ref) if ref is not None else None
        found = await engine.approvals(run_id)
    if here.json:
        here.emit([w.document() for w in found])
        return 0
    if not found:
        where = f"run {run_id}" if run_id is not None else "any live run"
        here.note(f"nothing in {where} waits for a person")
        return 0
    for w in found:
        line = f"{w.run_id}  {w.step_id}  since {clock_time(w.since)}  {asks(w)}"
        here.out.print(Text(line), soft_wrap=True)
    first = found[0]
    here.note(
        f"approve: podium approve {first.run_id} {first.step_id}   "
        f"refuse: podium reject {first.run_id} {first.step_id} --reason TEXT"
    )
    return 0


def asks(w: Waiting) -> str:
    """What the person is asked, in one short line."""
    if w.subject == "plan":
        plan: Any = w.input.get("plan") or {}
        count = len(plan.get("steps", [])) if isinstance(plan, dict) else 0
        summary = plan.get("summary", "") if isinstance(plan, dict) else ""
        text = f"plan v{w.version}: {count} step{'s' if count != 1 else ''} {summary}".strip()
        return shorten(text, ASKS_CHARS)
    shown = {k: v for k, v in w.input.items() if k != "kind"}
    kind = w.input.get("kind", "step")
    return shorten(f"{kind} {json.dumps(shown, ensure_ascii=False)}", ASKS_CHARS)
