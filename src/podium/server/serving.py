"""Running the app on uvicorn inside the caller's event loop: `serve(app, host, port)` until
SIGINT or SIGTERM (or `stop`), then a graceful shutdown that lets the caller close its engine
(uvicorn's own signal capture would re-raise the signal and end the process before that)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI


class Server(uvicorn.Server):
    """uvicorn's server, stopped by `stop()` or by the signals `serve` installs in the loop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the loop's handlers (see `serve`) set should_exit instead

    def stop(self) -> None:
        self.should_exit = True


def make_server(app: FastAPI, host: str, port: int, *, log_level: str = "info") -> Server:
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, lifespan="off", access_log=False
    )
    return Server(config)


async def serve(server: Server, sockets: list[socket.socket] | None = None) -> None:
    """Serve until stopped; SIGINT and SIGTERM stop it gracefully."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.stop)
    try:
        await server.serve(sockets=sockets)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def bound_port(server: Server) -> int:
    """The port the started server listens on (what port 0 became)."""
    for listener in server.servers:
        for sock in listener.sockets:
            return int(sock.getsockname()[1])
    raise RuntimeError("the server is not listening yet")
