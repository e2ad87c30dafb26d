"""`podium serve`: the HTTP API on uvicorn over the store; and `podium token`: the bearer tokens
it accepts (server/auth.py says where they are kept and why)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from podium.cli._session import (
    AgentsOption,
    ConfigOption,
    JsonOption,
    ModelOption,
    Session,
    StoreOption,
    WorkspaceOption,
    execute,
    session,
)
from podium.config import load_config
from podium.errors import UsageError
from podium.runtime.engine import Engine
from podium.runtime.workspace import checked_workspace
from podium.server import MAX_BODY_BYTES
from podium.server.tokens import TokenBook, default_tokens_path, is_loopback
from podium.store import default_store_path

TokensOption = Annotated[
    Path | None,
    typer.Option(
        "--tokens",
        metavar="FILE",
        show_default=False,
        help="The tokens file (default: $PODIUM_TOKENS, else .podium/tokens.json).",
    ),
]


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="The port.")] = 8765,
    control: Annotated[
        bool,
        typer.Option(
            "--control",
            help="Drive no run here (a worker does): only read, submit and post decisions.",
        ),
    ] = False,
    tokens: TokensOption = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--cors-origin",
            metavar="ORIGIN",
            help="Let pages from this origin call the API (repeatable; default: none).",
        ),
    ] = None,
    max_body: Annotated[
        int, typer.Option("--max-body", metavar="BYTES", min=1, help="The request body cap.")
    ] = MAX_BODY_BYTES,
    db: StoreOption = None,
    agents: AgentsOption = None,
    model: ModelOption = None,
    config: ConfigOption = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Serve the HTTP API (OpenAPI at /openapi.json, docs at /docs) and drive its runs. Unless
    --control, it drives the runs it starts and claims every runnable run of the store (`podium
    run --detach` ones too). Binding anything but loopback needs tokens (`podium token`)."""
    here = session(ctx, db, agents=agents, model=model, config=config, workspace=workspace)
    book = TokenBook(tokens or default_tokens_path())
    limits = _Limits(control, cors_origin or [], max_body)
    execute(here, _serve(here, host, port, book, limits))


@dataclass(frozen=True, slots=True)
class _Limits:
    control: bool
    cors: list[str]
    max_body: int


async def _serve(here: Session, host: str, port: int, book: TokenBook, limits: _Limits) -> int:
    # FastAPI and uvicorn take a third of a second to import: only `podium serve` pays for them,
    # not every other command
    from podium.server.app import create_app
    from podium.server.serving import make_server
    from podium.server.serving import serve as serve_app

    if not is_loopback(host) and not book.records():
        raise UsageError(
            f"refusing to serve on {host} without tokens: anyone who reaches it could start "
            f"runs; create one with `podium token create --scope write --tokens {book.path}` "
            "(or serve on 127.0.0.1)"
        )
    where = checked_workspace(here.workspace) if here.workspace else Path.cwd().resolve()
    project = load_config(where, path=here.config)
    named = here.named_store()
    engine = await Engine.open(
        named if named is not None else default_store_path(),
        mode="control" if limits.control else "worker",
        agents_dir=here.agents,
        default_model=here.model,
        config=project,
        workspace=where,
    )
    try:
        app = create_app(
            engine,
            tokens=book,
            require_tokens=bool(book.records()) or not is_loopback(host),
            max_body_bytes=limits.max_body,
            cors_origins=limits.cors,
            workspace=where,
            config=project,
            agents_dir=here.agents,
            default_model=here.model,
        )
        server = make_server(app, host, port)
        shown = f"[{host}]" if ":" in host else host
        auth = "tokens required" if app.state.auth.required else "no token needed (loopback)"
        here.note(f"serving http://{shown}:{port} ({auth}); docs at http://{shown}:{port}/docs")
        await serve_app(server)
    finally:
        await engine.close()
    return 0


ActionArg = Annotated[
    str, typer.Argument(metavar="ACTION", help="create, list or revoke.", show_default=False)
]
WhichArg = Annotated[
    str | None,
    typer.Argument(metavar="[TOKEN]", help="revoke: the token's id or name.", show_default=False),
]
ScopeOption = Annotated[
    list[str] | None,
    typer.Option("--scope", metavar="SCOPE", help="create: read, write or approve; repeatable."),
]
NameOption = Annotated[str | None, typer.Option("--name", help="create: a name to know it by.")]


def token(
    action: ActionArg,
    which: WhichArg = None,
    scope: ScopeOption = None,
    name: NameOption = None,
    tokens: TokensOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create, list or revoke the bearer tokens `podium serve` accepts; a new token is printed
    once (only its SHA-256 is kept)."""
    here = Session(db=None, json=as_json)
    book = TokenBook(tokens or default_tokens_path())
    execute(here, _token(here, book, action, which, (scope or [], name)))


async def _token(
    here: Session,
    book: TokenBook,
    action: str,
    which: str | None,
    new: tuple[list[str], str | None],
) -> int:
    if action not in ("create", "list", "revoke"):
        raise UsageError(f"token {action!r}: say create, list or revoke")
    if (which is not None) != (action == "revoke"):
        raise UsageError("name the token to revoke (its id or name); only `revoke` takes one")
    if action == "create":
        _create(here, book, *new)
    elif action == "revoke":
        gone = book.revoke(which or "")
        here.note(f"revoked token {gone.id} ({gone.name})")
    else:
        _list(here, book)
    return 0


def _create(here: Session, book: TokenBook, scopes: list[str], name: str | None) -> None:
    secret, record = book.create(scopes, name)
    shown = {"token": secret, "id": record.id, "name": record.name, "scopes": list(record.scopes)}
    if here.json:
        here.emit(shown)
        return
    sys.stdout.write(secret + "\n")
    here.err.print(
        Text(
            f"token {record.id} ({record.name}; scope {', '.join(record.scopes)}) saved hashed "
            f"in {book.path}; it is shown only now: send it as `Authorization: Bearer <token>`"
        ),
        soft_wrap=True,
    )


def _list(here: Session, book: TokenBook) -> None:
    listed = [
        {"id": r.id, "name": r.name, "scopes": list(r.scopes), "created_at": r.created_at}
        for r in book.records()
    ]
    if here.json:
        here.emit(listed)
        return
    if not listed:
        here.note(f"no tokens in {book.path}; create one with `podium token create --scope read`")
    for row in listed:
        line = f"{row['id']}  {row['name']}  {','.join(row['scopes'])}  {row['created_at']}"
        here.out.print(Text(line), soft_wrap=True)
