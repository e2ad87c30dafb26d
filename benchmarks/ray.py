"""What dispatching a step to Ray costs: a chain of trivial `python` steps through the real engine,
in process (`execution: local`) and as Ray tasks on a local Ray (`execution: ray`), alternating,
each run on a fresh SQLite store.

    python -m benchmarks.ray [--steps 50] [--repeat 3] [--cpus 2]

Prints one JSON line: the median wall time per step of each way and their difference, the Ray
dispatch overhead per step in ms. A warm-up run on each way comes first (Ray starts its workers
then); starting Ray is timed on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ray

import podium
from benchmarks import sandbox

ROOT = Path(__file__).resolve().parent.parent


def noop(n: int) -> int:
    return n


def chain(steps: int, execution: str) -> dict[str, Any]:
    """`steps` python steps, each needing the one before (so dispatches do not overlap)."""
    nodes: list[dict[str, Any]] = []
    for n in range(steps):
        node: dict[str, Any] = {"id": f"s{n}", "kind": "python", "call": "benchmarks.ray:noop"}
        node["args"] = {"n": n}
        if n:
            node["needs"] = [f"s{n - 1}"]
        nodes.append(node)
    return {"name": f"chain-{execution}", "execution": execution, "steps": nodes}


async def run_once(workflow: dict[str, Any]) -> float:
    with tempfile.TemporaryDirectory(prefix="podium-ray-bench-") as folder:
        return await sandbox.run_once(workflow, Path(folder))


def start_ray(cpus: int) -> float:
    """A local Ray whose workers import this checkout (None if this process already joined one)."""
    if ray.is_initialized():
        return 0.0
    paths = [str(ROOT), str(Path(podium.__file__).resolve().parents[1])]
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")])
    start = time.perf_counter()
    ray.init(
        num_cpus=cpus, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False
    )
    return time.perf_counter() - start


async def measure(steps: int, repeat: int, cpus: int = 2) -> dict[str, Any]:
    started = start_ray(cpus)
    for execution in ("local", "ray"):  # warm-up: Ray's first worker starts here
        await run_once(chain(min(steps, 5), execution))
    times: dict[str, list[float]] = {"local": [], "ray": []}
    for _ in range(repeat):
        for execution in times:
            times[execution].append(await run_once(chain(steps, execution)))
    local, remote = (statistics.median(times[way]) / steps * 1000 for way in ("local", "ray"))
    return {
        "steps": steps,
        "repeat": repeat,
        "ray_start_s": round(started, 2),
        "local_ms_per_step": round(local, 2),
        "ray_ms_per_step": round(remote, 2),
        "ray_overhead_ms_per_step": round(remote - local, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeat < 1 or args.cpus < 1:
        parser.error("--steps, --repeat and --cpus must be at least 1")
    print(json.dumps(asyncio.run(measure(args.steps, args.repeat, args.cpus))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
