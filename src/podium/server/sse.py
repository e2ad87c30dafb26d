"""Server-sent event streams: a run's committed events (SSE `id` = the event's sequence number),
with its live model text as `delta` events that carry no id and are never stored; or every
run's events (SSE `id` = the store's global position of the event). Heartbeats are comment
lines. A client that reconnects with `Last-Event-ID` gets exactly what it missed:
the stream restarts from the store after that id (runtime/reads.py follows it)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent

from podium import views
from podium.aio import cancel_and_wait
from podium.runtime.engine import Engine
from podium.runtime.reads import follow_positions
from podium.server.problems import ApiError
from podium.store.base import StoredEvent

_END = object()
BATCH = 500
ENCODED_LIMIT = 8192  # run events kept encoded (a few MB): what 100 catching-up clients share
_ENCODED: dict[tuple[str, int, datetime], bytes] = {}


def last_event_id(header: str | None, query: int | None) -> int:
    """Where the client is: its Last-Event-ID header, else `?after=`, else the start."""
    if header is None or not header.strip():
        return query or 0
    text = header.strip()
    if not text.isdigit():
        raise ApiError(
            400, "bad_last_event_id", f"Last-Event-ID {text!r} is not an event id (a number)"
        )
    return int(text)


def event_message(stored: StoredEvent, event_id: int) -> ServerSentEvent:
    document = views.event_document(stored)
    return ServerSentEvent(json.dumps(document, ensure_ascii=False), id=str(event_id))


def run_event_bytes(stored: StoredEvent) -> bytes:
    """A run stream's event as sent (its SSE id is its seq), encoded once for all the run's
    subscribers: a hundred clients of one run no longer serialize each event a hundred times.
    The key holds the event's time too, so a run pruned and created again under its id is not
    confused with the old one."""
    key = (stored.run_id, stored.seq, stored.event.at)
    encoded = _ENCODED.get(key)
    if encoded is None:
        encoded = _ENCODED[key] = event_message(stored, stored.seq).encode()
        if len(_ENCODED) > ENCODED_LIMIT:
            del _ENCODED[next(iter(_ENCODED))]  # the oldest entry
    return encoded


def delta_message(step_id: str, text: str) -> ServerSentEvent:
    data = json.dumps({"step_id": step_id, "text": text}, ensure_ascii=False)
    return ServerSentEvent(data, event="delta")


def stream(
    content: AsyncIterator[ServerSentEvent] | AsyncIterator[bytes], heartbeat_seconds: float
) -> Any:
    return EventSourceResponse(
        content,
        ping=heartbeat_seconds,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def run_stream(engine: Engine, run_id: str, after: int) -> AsyncIterator[bytes]:
    """The run's events after `after`, interleaved with its live deltas, until it ends. What
    is ready is sent in one write (a client catching up gets hundreds at once)."""
    queue: asyncio.Queue[Any] = asyncio.Queue()

    async def events() -> None:
        try:
            async for stored in engine.events(run_id, after_seq=after, follow=True):
                await queue.put(run_event_bytes(stored))
        finally:
            queue.put_nowait(_END)

    async def deltas() -> None:
        while True:  # each time this engine drives the run again, its text streams again
            async for step_id, text in engine.deltas(run_id):
                await queue.put(delta_message(step_id, text))
            await asyncio.sleep(0.2)

    tasks = [asyncio.create_task(events()), asyncio.create_task(deltas())]
    try:
        ended = False
        while not ended:
            ready = [await queue.get()]
            while not queue.empty() and len(ready) < BATCH:
                ready.append(queue.get_nowait())
            ended = ready[-1] is _END
            if sent := b"".join(_wire(m) for m in ready if m is not _END):
                yield sent
        await tasks[0]  # it ended: with the run, or with the error it raised
    finally:
        await cancel_and_wait(*tasks)


def _wire(message: bytes | ServerSentEvent) -> bytes:
    return message if isinstance(message, bytes) else message.encode()


async def all_stream(engine: Engine, after: int) -> AsyncIterator[ServerSentEvent]:
    """Every run's events after global position `after`, as they commit, until the client
    goes; each event's SSE id is its position."""
    async for position, stored in follow_positions(engine.store, after=after):
        yield event_message(stored, position)
