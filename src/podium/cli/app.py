"""The `podium` command line: the Typer app and its commands, in the order `--help` lists them.

Each command lives in a module of its own kind (running, reading, control, planning, prune,
script) and is a plain function; this module only registers them. Nothing imports this module
back, so `python -m podium.cli.app` and the `podium` script build the same app. Exit codes: see
`podium.cli._session`.
"""

from __future__ import annotations

from collections.abc import Callable

import typer

from podium.cli import control, graph, planning, prune, reading, running, script
from podium.cli._session import ConfigOption, DbOption

COMMANDS: tuple[Callable[..., None], ...] = (
    running.run,
    running.validate,
    reading.runs,
    reading.show,
    reading.events,
    running.resume,
    control.cancel,
    control.retry,
    control.skip,
    planning.plan,
    planning.approve,
    planning.reject,
    prune.prune,
    script.script,
    graph.graph,
)

app = typer.Typer(
    name="podium",
    help="Podium: durable workflows. Run, inspect and steer runs recorded in an event store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(ctx: typer.Context, db: DbOption = None, config: ConfigOption = None) -> None:
    ctx.obj = {"db": db, "config": config}


for _command in COMMANDS:
    app.command(name=_command.__name__)(_command)


def main() -> None:
    """The `podium` console script."""
    app()


__all__ = ["COMMANDS", "app", "main"]

if __name__ == "__main__":
    main()
