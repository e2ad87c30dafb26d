"""Python step callables of the secrets matrix (importable as tests.security.callables): each
hands back a secret the way a careless step would."""

from __future__ import annotations

import asyncio
import os
from typing import Any


def provider_key(name: str) -> dict[str, Any]:
    """Returns a provider key read from the environment, in an output and in a URL."""
    key = os.environ[name]
    return {"key": key, "dsn": f"postgres://admin:{os.environ['DB_PASSWORD']}@db:5432/app"}


def deploy_failure(name: str) -> None:
    """Fails with the secret in its error message."""
    raise RuntimeError(f"deploy refused token {os.environ[name]}")


async def stream(podium_context: Any, name: str) -> str:
    """Streams a secret split across two live deltas."""
    value = os.environ[name]
    first, second = value[: len(value) // 2], value[len(value) // 2 :]
    podium_context.delta(f"streaming {first}")
    await asyncio.sleep(0.05)
    podium_context.delta(f"{second} done\n")
    await asyncio.sleep(0.05)
    return "streamed"
