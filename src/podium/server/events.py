"""Event streams over SSE: one run's (`GET /runs/{id}/events`, ids are sequence numbers) and
every run's (`GET /events`, ids are the store's global positions)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header, Query

from podium.server import sse
from podium.server.auth import require
from podium.server.deps import EngineDep, OptionsDep, existing_run

router = APIRouter(tags=["events"])


@router.get(
    "/runs/{run_id}/events",
    dependencies=[require("read")],
    response_description="text/event-stream: `id` is the event's seq; `delta` events are live "
    "model text, not stored, without an id.",
)
async def run_events(
    run_id: str,
    engine: EngineDep,
    options: OptionsDep,
    last_event_id: str | None = Header(None, alias="Last-Event-ID"),
    after: int | None = Query(None, ge=0, description="Start after this seq (or Last-Event-ID)."),
) -> Any:
    """The run's committed events as they commit, until it ends; reconnect with Last-Event-ID
    to get exactly what was missed."""
    start = sse.last_event_id(last_event_id, after)
    await existing_run(engine, run_id)
    return sse.stream(sse.run_stream(engine, run_id, start), options.heartbeat_seconds)


@router.get(
    "/events",
    dependencies=[require("read")],
    response_description="text/event-stream: `id` is the event's global position in the store.",
)
async def all_events(
    engine: EngineDep,
    options: OptionsDep,
    last_event_id: str | None = Header(None, alias="Last-Event-ID"),
    after: int | None = Query(
        None, ge=0, description="Start after this position (or Last-Event-ID)."
    ),
    tail: bool = Query(
        False,
        description="Start at the newest event: only what commits from now on (a page that "
        "has just read the runs list). Last-Event-ID or `after` win over it.",
    ),
) -> Any:
    """Every run's committed events as they commit, from whichever process commits them;
    reconnect with Last-Event-ID to get exactly what was missed. Live model text is streamed on
    a run's own stream only."""
    start = sse.last_event_id(last_event_id, after)
    if tail and not (last_event_id or "").strip() and after is None:
        start = await engine.store.last_position()
    return sse.stream(sse.all_stream(engine, start), options.heartbeat_seconds)
