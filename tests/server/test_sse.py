"""SSE against a real server: ids are sequence numbers (one run) or global positions (all
runs); a client that reconnects with Last-Event-ID gets exactly what it missed; heartbeats are
comments; and 100 clients reconnecting at random moments during a 500-step run each end with
every event exactly once."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from podium.core.events import StepStarted
from podium.server import sse
from podium.store.base import StoredEvent

from .conftest import GATED, QUICK, Served


@dataclass
class Message:
    id: str | None
    event: str | None
    data: Any


async def messages(
    reply: httpx.Response, comments: list[str] | None = None
) -> AsyncIterator[Message]:
    """Parse a text/event-stream body as it arrives (comments go to `comments`)."""
    fields: dict[str, str] = {}
    async for line in reply.aiter_lines():
        if not line:
            if "data" in fields:
                yield Message(fields.get("id"), fields.get("event"), json.loads(fields["data"]))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def chain(count: int) -> str:
    lines = ["name: chain", "steps:"]
    lines.append('  - {id: s0, kind: python, call: "helper:greet"}')
    for i in range(1, count):
        lines.append(f'  - {{id: s{i}, kind: python, call: "helper:greet", needs: [s{i - 1}]}}')
    return "\n".join(lines) + "\n"


async def _read(
    client: httpx.AsyncClient, path: str, last: str | None, take: int | None
) -> tuple[list[Message], bool]:
    """Up to `take` events (None: until the stream ends); True if the stream ended."""
    headers = {"Last-Event-ID": last} if last is not None else {}
    got: list[Message] = []
    async with client.stream("GET", path, headers=headers) as reply:
        assert reply.status_code == 200, await reply.aread()
        async for message in messages(reply):
            if message.event == "delta":
                continue
            got.append(message)
            if take is not None and len(got) >= take:
                return got, False
    return got, True


async def test_a_run_stream_resumes_after_its_last_event_id(served: Served) -> None:
    run_id = await served.submit(chain(20))
    path = f"/runs/{run_id}/events"
    first, ended = await _read(served.client, path, None, 5)
    assert not ended
    assert [m.id for m in first] == ["1", "2", "3", "4", "5"]
    assert first[0].data["kind"] == "run.created"
    rest, ended = await _read(served.client, path, first[-1].id, None)
    assert ended  # the stream ends with the run
    seqs = [int(m.id or 0) for m in first + rest]
    stored = await served.engine.store.read(run_id)
    assert seqs == [s.seq for s in stored]
    assert rest[-1].data["kind"] == "run.completed"
    assert [m.data["seq"] for m in rest] == seqs[5:]
    after, _ = await _read(served.client, f"{path}?after=3", None, 2)
    assert [m.id for m in after] == ["4", "5"]


async def test_a_quiet_stream_gets_heartbeats(served: Served) -> None:
    run_id = await served.submit(GATED)
    await served.until(run_id, lambda d: len(d["approvals"]) == 2)
    async with served.client.stream("GET", f"/runs/{run_id}/events") as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        async with asyncio.timeout(10):
            async for line in reply.aiter_lines():
                if line.startswith(":"):
                    break
    assert line.startswith(": ping")


async def test_the_all_runs_stream_uses_global_positions(served: Served) -> None:
    runs = [await served.submit(QUICK) for _ in range(3)]
    for run_id in runs:
        await served.until(run_id, lambda d: d["status"] == "succeeded")
    expected = [(p, s.run_id, s.seq) for p, s in await served.engine.store.read_all(limit=10_000)]
    first, _ = await _read(served.client, "/events", None, 4)
    rest, _ = await _read(served.client, "/events", first[-1].id, len(expected) - 4)
    got = [(int(m.id or 0), m.data["run_id"], m.data["seq"]) for m in first + rest]
    assert got == expected
    assert {r for _, r, _ in got} == set(runs)
    late = await served.submit(QUICK)  # a live client sees what commits after it connected
    more, _ = await _read(served.client, "/events", rest[-1].id, 2)
    assert [(m.data["run_id"], m.data["seq"]) for m in more] == [(late, 1), (late, 2)]


async def test_the_all_runs_stream_can_start_at_the_newest_event(served: Served) -> None:
    """`?tail=true`: a page that has just read the runs list gets only what commits next, not
    every run's history; a Last-Event-ID still resumes where it says."""
    old = await served.submit(QUICK)
    await served.until(old, lambda d: d["status"] == "succeeded")
    head = await served.engine.store.last_position()
    async with served.client.stream("GET", "/events?tail=true") as reply:
        assert reply.status_code == 200
        late = await served.submit(QUICK)
        got = []
        async for message in messages(reply):
            got.append(message)
            if len(got) == 2:
                break
    assert [(m.data["run_id"], m.data["seq"]) for m in got] == [(late, 1), (late, 2)]
    assert all(int(m.id or 0) > head for m in got)
    resumed, _ = await _read(served.client, "/events?tail=true", "1", 1)
    assert (resumed[0].data["run_id"], resumed[0].data["seq"]) == (old, 2)


@pytest.mark.slow
async def test_a_hundred_clients_reconnecting_at_random_get_every_event_once(
    served: Served,
) -> None:
    run_id = await served.submit(chain(500))
    path = f"/runs/{run_id}/events"
    rng = random.Random(11)

    async def client(number: int) -> list[int]:
        seen: list[int] = []
        last: str | None = None
        async with httpx.AsyncClient(base_url=served.url, timeout=60) as own:
            await asyncio.sleep(rng.random() * 0.5)
            while True:
                got, ended = await _read(own, path, last, rng.randint(20, 300))
                seen += [int(m.id or 0) for m in got]
                last = got[-1].id if got else last
                if ended:
                    return seen
                await asyncio.sleep(rng.random() * 0.05)

    results = await asyncio.wait_for(asyncio.gather(*(client(n) for n in range(100))), 240)
    total = (await served.engine.store.get_run(run_id)).last_seq
    assert (await served.engine.store.get_run(run_id)).status == "succeeded"
    assert total > 1000
    for seen in results:
        assert seen == list(range(1, total + 1))


TALKER = """\
import asyncio


async def talk(podium_context):
    await asyncio.sleep(0.5)  # time for the client to connect
    podium_context.delta("hello ")
    await asyncio.sleep(0.2)
    return "done"
"""


async def test_live_text_streams_as_delta_events_without_ids(served: Served) -> None:
    (served.folder / "talker.py").write_text(TALKER)
    run_id = await served.submit(
        'name: t\nsteps:\n  - {id: talk, kind: python, call: "talker:talk"}\n'
    )
    got: list[Message] = []
    async with served.client.stream("GET", f"/runs/{run_id}/events") as reply:
        got = [message async for message in messages(reply)]
    deltas = [m for m in got if m.event == "delta"]
    assert [(m.id, m.data) for m in deltas] == [(None, {"step_id": "talk", "text": "hello "})]
    events = [m for m in got if m.event is None]
    assert [int(m.id or 0) for m in events] == [
        s.seq for s in await served.engine.store.read(run_id)
    ]
    assert "delta" not in {s.event.kind for s in await served.engine.store.read(run_id)}


def test_an_event_is_encoded_once_for_every_subscriber_of_its_run() -> None:
    at = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    first = StoredEvent("run_x", 2, StepStarted(at=at, step_id="a", attempt=1))
    same = StoredEvent("run_x", 2, StepStarted(at=at, step_id="a", attempt=1))
    assert sse.run_event_bytes(first) is sse.run_event_bytes(same)  # one encoding, shared
    assert sse.run_event_bytes(first).startswith(b"id: 2\r\n")
    again = StoredEvent("run_x", 2, StepStarted(at=at + timedelta(1), step_id="b", attempt=1))
    assert b'"step_id": "b"' in sse.run_event_bytes(again)  # a run pruned and made again
