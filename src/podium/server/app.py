"""The HTTP API's FastAPI app: `create_app(engine, ...)` wires the routes (one module per
resource), the error shape (server/problems.py), bearer-token auth (server/auth.py), the request
body cap and CORS. `podium serve` runs it on uvicorn; OpenAPI at /openapi.json, docs at /docs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from podium.config import ProjectConfig
from podium.runtime.engine import Engine
from podium.server import MAX_BODY_BYTES, events, people, problems, runs, steps, ui, workflows
from podium.server.auth import AuthPolicy
from podium.server.deps import HEARTBEAT_SECONDS, ServerOptions
from podium.server.problems import error_body
from podium.server.tokens import TokenBook


def create_app(
    engine: Engine,
    *,
    tokens: TokenBook | None = None,
    require_tokens: bool | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    cors_origins: Sequence[str] = (),
    workspace: Path | None = None,
    config: ProjectConfig | None = None,
    agents_dir: Path | None = None,
    default_model: str | None = None,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
) -> FastAPI:
    """The API over `engine`. Tokens are required when `require_tokens` says so, by default when
    `tokens` holds any; without, every request is allowed (`podium serve` refuses to bind
    anything but loopback then). Bodies over `max_body_bytes` are refused with a 413."""
    app = FastAPI(
        title="Podium",
        summary="Durable workflows: submit, watch and steer runs; approve what waits for you.",
        version="1",
        responses=problems.RESPONSES,
    )
    required = bool(tokens and tokens.records()) if require_tokens is None else require_tokens
    app.state.engine = engine
    app.state.auth = AuthPolicy(tokens, required)
    app.state.options = ServerOptions(
        workspace=(workspace or Path.cwd()).resolve(),
        config=config,
        agents_dir=agents_dir,
        default_model=default_model,
        heartbeat_seconds=heartbeat_seconds,
    )
    problems.install(app)
    for module in (workflows, runs, steps, people, events):
        app.include_router(module.router)
    ui.install(app)  # the web UI at /
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            expose_headers=["X-Next-Cursor", "X-More"],  # a page reads the paging headers
        )
    app.add_middleware(BodyCap, limit=max_body_bytes)
    return app


class BodyCap:
    """Refuse a request body over `limit` bytes with a 413, by its Content-Length or, when it
    is streamed, as soon as the bytes read pass the limit (nothing is handled then)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        body = await self._read(receive)
        if body is None:
            await self._refuse(send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> list[Message] | None:
        """The request's messages, None once they exceed the limit."""
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages
            size += len(message.get("body", b""))
            if size > self.limit:
                return None
            if not message.get("more_body", False):
                return messages

    async def _refuse(self, send: Send) -> None:
        message = (
            f"the request body is over {self.limit:,} bytes; send a smaller document "
            "(the server's limit is `podium serve --max-body`)"
        )
        payload = json.dumps(error_body("payload_too_large", message)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A `receive` that gives back the buffered body, then the connection's own messages (its
    disconnect, which a stream listens for)."""
    queue = list(messages)

    async def replayed() -> Message:
        if queue:
            return queue.pop(0)
        return await receive()

    return replayed
