"""`podium graph FILE|RUN`: the workflow's graph as Mermaid, Graphviz dot or SVG; for a run, with
each step's status and duration and the plan children under their plan step."""

from __future__ import annotations

import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from podium.cli._session import DbOption, OutputOption, Session, execute, session
from podium.cli.runref import resolve_run
from podium.errors import UsageError
from podium.pictures import Picture, dot, mermaid, run_picture, workflow_picture
from podium.spec.load import load_workflow
from podium.spec.model import Workflow
from podium.svg import svg

WORKFLOW_SUFFIXES = (".yaml", ".yml", ".json")


class GraphFormat(StrEnum):
    mermaid = "mermaid"
    dot = "dot"
    svg = "svg"


DRAW: dict[GraphFormat, Callable[[Picture], str]] = {
    GraphFormat.mermaid: mermaid,
    GraphFormat.dot: dot,
    GraphFormat.svg: svg,
}


def graph(
    ctx: typer.Context,
    target: Annotated[
        str,
        typer.Argument(
            metavar="FILE|RUN",
            help="A workflow file, or a run: its id, a unique prefix of it, or @latest.",
            show_default=False,
        ),
    ],
    format: Annotated[
        GraphFormat, typer.Option("--format", "-f", help="What to draw it as.")
    ] = GraphFormat.mermaid,
    output: OutputOption = None,
    db: DbOption = None,
) -> None:
    """Draw a workflow's steps and their needs; for a run, each step's status and duration."""
    here = session(ctx, db)
    execute(here, _graph(here, target, format, output))


async def _graph(here: Session, target: str, format: GraphFormat, output: Path | None) -> int:
    picture = await _picture(here, target)
    text = DRAW[format](picture)
    if output is None:
        sys.stdout.write(text)
        return 0
    _write(output, text)
    here.note(f"wrote the {format} graph of {len(picture.nodes)} steps to {output}")
    return 0


async def _picture(here: Session, target: str) -> Picture:
    """An existing file is a workflow; anything else names a run."""
    workflow = _workflow_at(target)
    if workflow is not None:
        return workflow_picture(workflow)
    async with await here.engine("control") as engine:
        run_id = await resolve_run(engine.store, target)
        return run_picture(await engine.state(run_id))


def _workflow_at(target: str) -> Workflow | None:
    path = Path(target)
    if path.is_file():
        return load_workflow(path)
    if path.suffix.lower() in WORKFLOW_SUFFIXES or "/" in target:
        raise UsageError(f"no workflow file {target}; check the path (or give a run id)")
    return None


def _write(output: Path, text: str) -> None:
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}; check the path") from None
