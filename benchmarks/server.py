"""The HTTP server's figures, against a real `podium serve` in its own process (durable SQLite
on a fresh temporary folder), with real HTTP clients in this one.

    python -m benchmarks.server sse [--subscribers 100] [--steps 500]
    python -m benchmarks.server show [--steps 50] [--seconds 5] [--concurrency 8]

`sse`: a run waits on an approval while every subscriber connects to `GET /runs/{id}/events`;
then it is approved and its `--steps` python steps run. An event's latency is the time a client
read it minus the event's `at` (the engine's clock when it made the event, just before its
commit: so an upper bound of commit-to-client). Reports p50/p99/max over every client and
event, and whether each client got every event exactly once.
`show`: requests per second and p50/p99 of `GET /runs/{id}` over a finished run of `--steps`
steps, `--concurrency` keep-alive clients for `--seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

PODIUM = [sys.executable, "-m", "podium.cli.app"]
HELPER = "def greet() -> str:\n    return 'hi'\n"


def chain(steps: int, *, gated: bool) -> str:
    lines = ["name: bench", "steps:"]
    if gated:
        lines.append("  - {id: gate, kind: file, op: write, path: g.txt, content: ok,")
        lines.append("     approval: required}")
    for i in range(steps):
        needs = f"s{i - 1}" if i else ("gate" if gated else "")
        after = f", needs: [{needs}]" if needs else ""
        lines.append(f'  - {{id: s{i}, kind: python, call: "helper:greet"{after}}}')
    return "\n".join(lines) + "\n"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def served(folder: Path) -> AsyncIterator[httpx.AsyncClient]:
    """`podium serve` on a free loopback port over `folder`'s store, until the block ends."""
    (folder / "helper.py").write_text(HELPER)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "PODIUM_DB"}
    command = [*PODIUM, "serve", "--db", str(folder / "podium.db"), "--port", str(port)]
    process = await asyncio.create_subprocess_exec(
        *command, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            for _ in range(300):
                try:
                    if (await client.get("/runs")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.returncode is not None:
                    assert process.stderr is not None
                    raise SystemExit(f"podium serve exited: {await process.stderr.read()!r}")
                await asyncio.sleep(0.05)
            yield client
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


async def submit(client: httpx.AsyncClient, folder: Path, text: str) -> str:
    (folder / "bench.yaml").write_text(text)
    reply = await client.post("/runs", json={"path": "bench.yaml"})
    if reply.status_code != 201:
        raise SystemExit(f"submit refused: {reply.text}")
    run_id: str = reply.json()["run_id"]
    return run_id


async def until(client: httpx.AsyncClient, run_id: str, *statuses: str) -> None:
    while (await client.get(f"/runs/{run_id}")).json()["status"] not in statuses:
        await asyncio.sleep(0.02)


async def subscriber(
    url: str, run_id: str, connected: asyncio.Event, got: list[tuple[int, float, float]]
) -> None:
    """Read the run's stream to its end: (seq, read at, made at) of each event."""
    async with (
        httpx.AsyncClient(base_url=url, timeout=120) as client,
        client.stream("GET", f"/runs/{run_id}/events") as reply,
    ):
        connected.set()
        data = None
        async for line in reply.aiter_lines():
            if line.startswith("data:"):
                data = line[5:].strip()
            elif not line and data is not None:
                document = json.loads(data)
                data = None
                if "seq" in document:
                    made = datetime.fromisoformat(document["at"]).timestamp()
                    got.append((document["seq"], time.time(), made))


async def sse(subscribers: int, steps: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as where:
        folder = Path(where)
        async with served(folder) as client:
            run_id = await submit(client, folder, chain(steps, gated=True))
            await until(client, run_id, "waiting")
            url = str(client.base_url)
            streams: list[tuple[asyncio.Event, list[tuple[int, float, float]]]] = [
                (asyncio.Event(), []) for _ in range(subscribers)
            ]
            tasks = [
                asyncio.create_task(subscriber(url, run_id, ready, got)) for ready, got in streams
            ]
            await asyncio.gather(*(ready.wait() for ready, _ in streams))
            await asyncio.sleep(0.5)  # every backlog read
            backlog = max(len(got) for _, got in streams)
            approved = await client.post(f"/runs/{run_id}/steps/gate/approve", json={})
            if approved.status_code != 202:
                raise SystemExit(f"approve refused: {approved.text}")
            await asyncio.gather(*tasks)
            last = (await client.get(f"/runs/{run_id}")).json()
    latencies = sorted(
        (read - made) * 1000 for _, got in streams for seq, read, made in got if seq > backlog
    )
    seqs = [[seq for seq, _, _ in got] for _, got in streams]
    complete = all(s == list(range(1, len(seqs[0]) + 1)) for s in seqs)
    return {
        "figure": "sse",
        "subscribers": subscribers,
        "steps": steps,
        "status": last["status"],
        "events_per_client": len(seqs[0]),
        "every_event_exactly_once": complete and len({len(s) for s in seqs}) == 1,
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
        "max_ms": round(latencies[-1], 2),
    }


async def show(steps: int, seconds: float, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as where:
        folder = Path(where)
        async with served(folder) as client:
            run_id = await submit(client, folder, chain(steps, gated=False))
            await until(client, run_id, "succeeded")
            timings: list[float] = []
            deadline = time.perf_counter() + seconds

            async def reader() -> None:
                async with httpx.AsyncClient(base_url=client.base_url, timeout=60) as mine:
                    while time.perf_counter() < deadline:
                        start = time.perf_counter()
                        reply = await mine.get(f"/runs/{run_id}")
                        reply.raise_for_status()
                        timings.append(time.perf_counter() - start)

            began = time.perf_counter()
            await asyncio.gather(*(reader() for _ in range(concurrency)))
            wall = time.perf_counter() - began
    timings.sort()
    return {
        "figure": "show",
        "steps": steps,
        "concurrency": concurrency,
        "requests": len(timings),
        "requests_per_s": round(len(timings) / wall, 1),
        "p50_ms": round(statistics.median(timings) * 1000, 2),
        "p99_ms": round(timings[int(len(timings) * 0.99) - 1] * 1000, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.server", description=__doc__)
    figures = parser.add_subparsers(dest="figure", required=True)
    streams = figures.add_parser("sse", help="commit-to-client latency of SSE subscribers")
    streams.add_argument("--subscribers", type=int, default=100)
    streams.add_argument("--steps", type=int, default=500)
    reads = figures.add_parser("show", help="requests per second of GET /runs/{id}")
    reads.add_argument("--steps", type=int, default=50)
    reads.add_argument("--seconds", type=float, default=5.0)
    reads.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    for name in ("subscribers", "steps", "concurrency"):
        if getattr(args, name, 1) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.figure == "sse":
        result = asyncio.run(sse(args.subscribers, args.steps))
    else:
        result = asyncio.run(show(args.steps, args.seconds, args.concurrency))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
