"""What the shell sandbox costs per step: a chain of `echo` shell steps through the real engine,
sandboxed (the default) and with `sandbox: false`, alternating, on fresh SQLite stores.

    python -m benchmarks.sandbox [--steps 50] [--repeat 3]

Prints one JSON line: the median wall time of each way and the per-step difference in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from podium.runtime.engine import Engine


def chain(steps: int, *, sandbox: bool) -> dict[str, Any]:
    """`steps` shell steps, each needing the one before (so they run one at a time)."""
    nodes: list[dict[str, Any]] = []
    for n in range(steps):
        node: dict[str, Any] = {"id": f"s{n}", "kind": "shell", "run": f"echo {n}"}
        if n:
            node["needs"] = [f"s{n - 1}"]
        if not sandbox:
            node["sandbox"] = False
        nodes.append(node)
    return {"name": f"chain-{'sandboxed' if sandbox else 'unsandboxed'}", "steps": nodes}


async def run_once(workflow: dict[str, Any], folder: Path) -> float:
    engine = await Engine.open(folder / "podium.db", workspace=folder)
    try:
        start = time.perf_counter()
        state = await engine.run(workflow, {})
        elapsed = time.perf_counter() - start
    finally:
        await engine.close()
    if state.status != "succeeded":
        errors = [f"{sid}: {s.error}" for sid, s in state.steps.items() if s.status != "succeeded"]
        raise RuntimeError(f"run {state.run_id} ended {state.status}: {errors[:3]}")
    return elapsed


async def measure(steps: int, repeat: int) -> dict[str, Any]:
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(repeat):
        for sandbox in (True, False):
            with tempfile.TemporaryDirectory(prefix="podium-sandbox-bench-") as folder:
                times[sandbox].append(await run_once(chain(steps, sandbox=sandbox), Path(folder)))
    boxed, plain = statistics.median(times[True]), statistics.median(times[False])
    return {
        "steps": steps,
        "repeat": repeat,
        "sandboxed_s": round(boxed, 3),
        "unsandboxed_s": round(plain, 3),
        "sandboxed_ms_per_step": round(boxed / steps * 1000, 2),
        "unsandboxed_ms_per_step": round(plain / steps * 1000, 2),
        "overhead_ms_per_step": round((boxed - plain) / steps * 1000, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeat < 1:
        parser.error("--steps and --repeat must be at least 1")
    print(json.dumps(asyncio.run(measure(args.steps, args.repeat))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
