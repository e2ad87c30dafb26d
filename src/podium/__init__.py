"""Podium: durable multi-agent workflows.

import podium

async with await podium.Engine.open(".podium/podium.db") as engine:
    state = await engine.run("examples/quickstart.yaml", {"api": "http://127.0.0.1:8000"})
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from podium.core.events import Event
from podium.core.state import RunState, StepState, StepStatus
from podium.errors import (
    ConcurrencyError,
    InputError,
    InvalidTransitionError,
    LeaseHeldError,
    PodiumError,
    Problem,
    RunError,
    RunExistsError,
    RunNotFoundError,
    SpecError,
    StepExecutionError,
    StepNotFoundError,
    StoreError,
    StoreUnavailableError,
    ThreadBusyError,
    UsageError,
)
from podium.ids import RunId
from podium.runtime.engine import Engine, EngineMode
from podium.runtime.runner import LeasePolicy
from podium.spec import (
    RetryPolicy,
    StepRef,
    Workflow,
    WorkflowBuilder,
    load_workflow,
    validate_workflow,
)
from podium.steps import Executors
from podium.steps.base import StepContext, StepResult, StepServices
from podium.steps.python import PodiumContext, register
from podium.store import open_store
from podium.store.base import EventStore, RunRecord, StoredEvent

__version__ = "0.1.0"

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code (scripts, notebooks without a loop)."""
    return asyncio.run(coro)


__all__ = [
    "ConcurrencyError",
    "Engine",
    "EngineMode",
    "Event",
    "EventStore",
    "Executors",
    "InputError",
    "InvalidTransitionError",
    "LeaseHeldError",
    "LeasePolicy",
    "PodiumContext",
    "PodiumError",
    "Problem",
    "RetryPolicy",
    "RunError",
    "RunExistsError",
    "RunId",
    "RunNotFoundError",
    "RunRecord",
    "RunState",
    "SpecError",
    "StepContext",
    "StepExecutionError",
    "StepNotFoundError",
    "StepRef",
    "StepResult",
    "StepServices",
    "StepState",
    "StepStatus",
    "StoreError",
    "StoreUnavailableError",
    "StoredEvent",
    "ThreadBusyError",
    "UsageError",
    "Workflow",
    "WorkflowBuilder",
    "__version__",
    "load_workflow",
    "open_store",
    "register",
    "run_sync",
    "validate_workflow",
]
