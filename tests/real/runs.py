"""What the real tier's tests share: running a workflow through an Engine with a folder's
podium.toml, reading its model calls, and turning them into a row of the figures table."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from podium.config import load_config
from podium.llm import resolve_model
from podium.runtime.engine import Engine

from .conftest import Figure


def calls(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == "model.called"]


def figure(
    server: str, test: str, called: list[dict[str, Any]], outcome: str, mode: str = "-"
) -> Figure:
    """A row of the summary table from the run's `model.called` events."""
    estimated = any(c.get("estimated") for c in called)
    return Figure(
        server=server,
        test=test,
        mode=mode,
        input_tokens=sum(c["input_tokens"] for c in called),
        output_tokens=sum(c["output_tokens"] for c in called),
        latency_seconds=sum(c["latency_seconds"] for c in called),
        outcome=outcome,
        usage="estimated" if estimated else "server" if called else "-",
    )


def seconds(step: Any) -> float:
    if step.started_at is None or step.finished_at is None:
        return 0.0
    return float((step.finished_at - step.started_at).total_seconds())


Ran = tuple[Any, list[dict[str, Any]], list[str]]  # (final state, its events, the deltas)


async def run(folder: Path, workflow: dict[str, Any], models: Iterable[str]) -> Ran:
    """Run `workflow` through an Engine with the folder's podium.toml: (final state, its events
    as dicts, the text deltas streamed while it ran). The engine's `models` are shared
    (resolve_model caches them): their HTTP clients are closed in this loop afterwards."""
    config = load_config(path=folder / "podium.toml")
    async with await Engine.open(folder / "p.db", workspace=folder, config=config) as engine:
        run_id = await engine.submit(workflow, start=False)
        await engine.resume(run_id)
        deltas = [text async for _, text in engine.deltas(run_id)]
        state = await engine.wait(run_id)
        events = [stored.event.model_dump(mode="json") async for stored in engine.events(run_id)]
    for model in set(models):
        await resolve_model(model, providers=config.providers).aclose()  # type: ignore[attr-defined]
    return state, events, deltas
