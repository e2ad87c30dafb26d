"""What a RUN argument may say: a run id, a unique prefix of one (with or without `run_`), or
`@latest` (the newest run). `resolve_run` turns it into the run id, or exits 2 saying why not."""

from __future__ import annotations

from typing import Annotated

import typer

from podium.cli._session import Session
from podium.errors import RunNotFoundError, UsageError
from podium.store.base import EventStore

LATEST = "@latest"
RUN_PREFIX = "run_"
PAGE = 500
SHOWN = 10
HELP = "The run: its id, a unique prefix of it (`run_` may be left out), or @latest."

RunRef = Annotated[str, typer.Argument(metavar="RUN", help=HELP, show_default=False)]
"""A command's RUN argument; pass it through `resolve_run` before using it."""


async def resolve_run(store: EventStore, ref: str) -> str:
    """The id of the run `ref` names. An exact id wins over a prefix; an ambiguous prefix is a
    UsageError listing the runs it matches; a prefix of no run is RunNotFoundError."""
    ref = ref.strip()
    if not ref:
        raise UsageError("give a run id (or a prefix of one, or @latest); `podium runs` lists them")
    if ref == LATEST:
        return await _latest(store)
    for candidate in dict.fromkeys((ref, RUN_PREFIX + ref)):
        try:
            return (await store.get_run(candidate)).run_id
        except RunNotFoundError:
            pass
    matches = await _matching(store, ref)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RunNotFoundError(ref)
    shown = ", ".join(matches[:SHOWN]) + (", …" if len(matches) > SHOWN else "")
    raise UsageError(f"run id prefix {ref!r} matches several runs ({shown}); give more of the id")


async def resolved(here: Session, ref: str) -> str:
    """`resolve_run` for a command whose engine needs the run id first (it reads the project
    configuration recorded on the run): a read-only look before that engine is made."""
    async with await here.engine("control") as reader:
        return await resolve_run(reader.store, ref)


async def _latest(store: EventStore) -> str:
    newest = await store.list_runs(limit=1)
    if not newest:
        raise UsageError("@latest: this store has no runs yet; start one with `podium run`")
    return newest[0].run_id


async def _matching(store: EventStore, ref: str) -> list[str]:
    """Run ids that begin with `ref` or `run_<ref>`, newest first; stops after SHOWN + 1."""
    prefixes = (ref, RUN_PREFIX + ref)
    found: list[str] = []
    after: str | None = None
    while len(found) <= SHOWN:
        page = await store.list_runs(limit=PAGE, after=after)
        found += [r.run_id for r in page if r.run_id.startswith(prefixes)]
        if len(page) < PAGE:
            break
        after = page[-1].run_id
    return found
