"""Shared fixtures for the executor tests: a StepContext on a fresh workspace."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from podium.steps.base import StepContext

ContextFactory = Callable[..., StepContext]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


@pytest.fixture
def make_ctx(workspace: Path) -> ContextFactory:
    def make(**overrides: Any) -> StepContext:
        fields: dict[str, Any] = {
            "run_id": "run-1",
            "step_id": "s",
            "attempt": 1,
            "idempotency_key": "run-1:s:1",
            "workspace": workspace,
            "output_limit_bytes": 1024 * 1024,
        }
        return StepContext(**(fields | overrides))

    return make


@pytest.fixture
def ctx(make_ctx: ContextFactory) -> StepContext:
    return make_ctx()
