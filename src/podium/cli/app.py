"""The `podium` command line: the Typer app and its commands, in the order `--help` lists them.

Each command lives in a module of its own kind (running, reading, control, planning, prune,
script) and is a plain function; this module only registers them. Nothing imports this module
back, so `python -m podium.cli.app` and the `podium` script build the same app. Exit codes: see
`podium.cli._session`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from podium.cli import (
    approvals,
    ask,
    control,
    feedback,
    fork,
    graph,
    logs,
    planning,
    prune,
    reading,
    running,
    script,
    serve,
    threads,
    worker,
)
from podium.cli._session import ConfigOption, DbOption
from podium.cli.examples import EXAMPLES, epilog

COMMANDS: tuple[Callable[..., None], ...] = (
    running.run,
    running.validate,
    reading.runs,
    reading.show,
    logs.logs,
    reading.events,
    running.resume,
    fork.fork,
    control.cancel,
    control.retry,
    control.skip,
    feedback.feedback,
    planning.plan,
    ask.ask,
    threads.threads,
    approvals.approvals,
    approvals.answer,
    planning.approve,
    planning.reject,
    prune.prune,
    script.script,
    graph.graph,
    serve.serve,
    worker.worker,
    serve.token,
)

HELP_OPTIONS = ["-h", "--help"]
TYPE_NAMES = {"str": "TEXT", "int": "INTEGER", "int range": "INTEGER", "float": "NUMBER"}
TYPE_NAMES |= {"float range": "NUMBER", "path": "PATH", "Path": "PATH", "datetime": "TIME"}


class _Argument(TyperArgument):
    """An argument's help names it without a `<str>` type beside the name, and the usage line
    says `RUN` (or `[STEP]` when optional) without braces."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        if not self.required and not name.startswith("["):
            name = f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")


class _Option(TyperOption):
    """A flag shows no `<bool>`; any other option its metavar, else TEXT, INTEGER, a|b|c."""

    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag:
            return None
        if self.metavar is not None:
            return self.metavar
        label = self.display_type(ctx).strip("<>")
        return TYPE_NAMES.get(label, label)


def _tidy(params: list[Any], *, escape_help: bool) -> list[Any]:
    """Our displays for Typer's parameters; help texts are plain text, never Rich markup (so
    `[tool.podium]` is printed as written)."""
    for param in params:
        if isinstance(param, TyperArgument) and not isinstance(param, _Argument):
            param.__class__ = _Argument
        elif isinstance(param, TyperOption) and not isinstance(param, _Option):
            param.__class__ = _Option
        if escape_help and getattr(param, "help", None):
            param.help = escape(param.help)
    return params


class _Command(TyperCommand):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _tidy(self.params, escape_help=True)
        self.help = escape(self.help) if self.help else self.help
        self.epilog = escape(self.epilog) if self.epilog else self.epilog

    def get_params(self, ctx: Any) -> list[Any]:
        return _tidy(super().get_params(ctx), escape_help=False)


class _Group(TyperGroup):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _tidy(self.params, escape_help=True)

    def get_params(self, ctx: Any) -> list[Any]:
        return _tidy(super().get_params(ctx), escape_help=False)


app = typer.Typer(
    name="podium",
    help="Podium: durable workflows. Run, inspect and steer runs recorded in an event store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": HELP_OPTIONS},
    cls=_Group,
)


def podium_version() -> str:
    try:
        return version("podium")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"podium {podium_version()}")
        raise typer.Exit(0)


VersionOption = Annotated[
    bool,
    typer.Option(
        "--version",
        "-V",
        is_eager=True,
        callback=_print_version,
        help="Print the version and exit.",
    ),
]


@app.callback()
def _root(
    ctx: typer.Context,
    db: DbOption = None,
    config: ConfigOption = None,
    show_version: VersionOption = False,
) -> None:
    ctx.obj = {"db": db, "config": config}


SUMMARY_WIDTH = 100


def _register(command: Callable[..., None]) -> None:
    """Every command gets its examples (from `podium.cli.examples`) as its help's epilog, and
    its docstring's first sentence, on one line, as its entry in `podium --help`."""
    name = command.__name__
    if name not in EXAMPLES:
        raise RuntimeError(f"command {name} has no examples; add them to podium/cli/examples.py")
    summary = escape(first_sentence(command.__doc__ or ""))
    app.command(name=name, cls=_Command, epilog=epilog(name), short_help=summary)(command)


def first_sentence(doc: str) -> str:
    """The docstring's first sentence, on one line; cut at its first `:` or `;` when longer
    than `SUMMARY_WIDTH` (what follows such a mark is detail)."""
    text = " ".join(doc.split())
    match = re.search(r"\.(\s|$)", text)
    sentence = text[: match.start()] if match else text
    if len(sentence) > SUMMARY_WIDTH and (clause := re.search(r"[:;](\s|$)", sentence)):
        return sentence[: clause.start()]
    return sentence


for _command in COMMANDS:
    _register(_command)


def main() -> None:
    """The `podium` console script."""
    app()


__all__ = ["COMMANDS", "app", "main", "podium_version"]

if __name__ == "__main__":
    main()
