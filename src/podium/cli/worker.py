"""`podium worker`: claim the store's runnable runs and drive them, until told to stop; then take
no more, let the runs in hand finish or park for a while, and give back the rest."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Annotated

import typer

from podium.cli._session import (
    AgentsOption,
    ConfigOption,
    ModelOption,
    Session,
    StoreOption,
    execute,
    queue_names,
    session,
)
from podium.config import CONFIG_ENV, load_config
from podium.core.events import DEFAULT_QUEUE
from podium.core.happenings import MAX_RECOVERIES
from podium.runtime.engine import Engine
from podium.runtime.runner import LeasePolicy
from podium.store import default_store_path


def worker(
    ctx: typer.Context,
    concurrency: Annotated[
        int,
        typer.Option("--concurrency", min=1, help="How many runs to drive at once."),
    ] = 64,
    drain: Annotated[
        float,
        typer.Option(
            "--drain",
            metavar="SECONDS",
            min=0,
            help="On SIGTERM or Ctrl-C: how long the runs in hand get to finish or park.",
        ),
    ] = 30.0,
    lease_ttl: Annotated[
        float,
        typer.Option(
            "--lease-ttl",
            metavar="SECONDS",
            min=1,
            help="How long a run's lease outlives this worker's last heartbeat (renewed every "
            "third of it): how soon another worker takes over the runs of one that died.",
        ),
    ] = LeasePolicy().ttl_seconds,
    max_recoveries: Annotated[
        int,
        typer.Option(
            "--max-recoveries",
            metavar="N",
            min=0,
            help="Takeovers in a row from workers that died while a run's steps ran (none "
            "finishing in between) before the run is dead-lettered: `podium runs --status "
            "dead` lists it, `podium retry RUN` brings it back.",
        ),
    ] = MAX_RECOVERIES,
    queues: Annotated[
        list[str] | None,
        typer.Option(
            "--queue",
            metavar="NAME",
            callback=queue_names,
            help="Claim only runs on this queue (`podium run --queue`); repeatable. "
            "Default: the runs submitted without one (queue `default`).",
        ),
    ] = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            show_default=False,
            help="The Ray cluster for steps with `execution: ray`: auto, ray://HOST:PORT or "
            "HOST:PORT (default: $PODIUM_RAY_ADDRESS, else the configuration's ray_address, "
            "else a local Ray started when a step needs it). Joined at start.",
        ),
    ] = None,
    store: StoreOption = None,
    agents: AgentsOption = None,
    model: ModelOption = None,
    config: ConfigOption = None,
) -> None:
    """Drive the store's runs: new ones (`podium run --detach`, a `serve --control` server's),
    parked ones when they are due, signalled ones, and any whose driver died (its lease expired).
    On SIGTERM or Ctrl-C it claims nothing more, gives its runs --drain seconds to finish or
    park, then stops the rest and releases their leases: another worker takes them over. Each
    run uses the configuration and agents it was started with, unless --config or --agents say
    otherwise."""
    here = session(ctx, store, agents=agents, model=model, config=config)
    lease = LeasePolicy(
        ttl_seconds=lease_ttl, heartbeat_seconds=lease_ttl / 3, max_recoveries=max_recoveries
    )
    execute(here, _work(here, concurrency, drain, lease, queues or [DEFAULT_QUEUE], ray))


async def _work(
    here: Session,
    concurrency: int,
    drain_seconds: float,
    lease: LeasePolicy,
    queues: list[str],
    ray: str | None,
) -> int:
    named = here.named_store()
    engine = await Engine.open(
        named if named is not None else default_store_path(),
        mode="worker",
        max_concurrent_runs=concurrency,
        lease=lease,
        queues=queues,
        ray_address=ray,
        agents_dir=here.agents,
        default_model=here.model,
        config=load_config(path=here.config) if here.config or os.environ.get(CONFIG_ENV) else None,
    )
    try:
        on = ", ".join(queues)
        here.note(
            f"worker driving up to {concurrency} runs at once from queue {on}; "
            "SIGTERM or Ctrl-C to stop"
        )
        await _until_stopped()
        here.note(f"stopping: no more runs taken; the runs in hand get {drain_seconds:g} s")
        left = await engine.drain(drain_seconds)
        if left:
            here.note(f"gave back {len(left)} runs for another worker: {', '.join(left)}")
    finally:
        await engine.close()
    return 0


async def _until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
