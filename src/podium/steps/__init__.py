"""Step executors, one per kind, held by an `Executors` registry; the built-in ones are imported
lazily, on first use of their kind."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from podium.errors import UsageError
from podium.steps.base import (
    DETACHED,
    AgentServices,
    DetachedServices,
    Executor,
    Route,
    StepContext,
    StepResult,
    StepServices,
)

BUILTIN: Mapping[str, tuple[str, str]] = {
    "shell": ("podium.steps.shell", "ShellExecutor"),
    "python": ("podium.steps.python", "PythonExecutor"),
    "file": ("podium.steps.file", "FileExecutor"),
    "http": ("podium.steps.http", "HttpExecutor"),
    "agent": ("podium.steps.agent", "AgentExecutor"),
    "plan": ("podium.steps.plan", "PlanExecutor"),
}


class Executors:
    """Which executor runs each step kind. The engine is given one (injectable in tests); a kind
    not overridden gets its built-in executor, built on first use."""

    def __init__(self, overrides: Mapping[str, Executor] | None = None) -> None:
        unknown = sorted(set(overrides or {}) - set(BUILTIN))
        if unknown:
            raise UsageError(
                f"no step kind {', '.join(map(repr, unknown))}; executors can be given for "
                f"{', '.join(BUILTIN)}"
            )
        self._executors: dict[str, Executor] = dict(overrides or {})

    def get(self, kind: str) -> Executor:
        """The executor for `kind` (UsageError for a kind Podium does not have)."""
        found = self._executors.get(kind)
        if found is not None:
            return found
        if kind not in BUILTIN:
            raise UsageError(f"no executor for step kind {kind!r}; known: {', '.join(BUILTIN)}")
        module_name, class_name = BUILTIN[kind]
        executor: Executor = getattr(importlib.import_module(module_name), class_name)()
        self._executors[kind] = executor
        return executor


_default = Executors()


def executor_for(kind: str) -> Executor:
    """The built-in executor for a step kind (shared by callers that have no engine)."""
    return _default.get(kind)


__all__ = [
    "DETACHED",
    "AgentServices",
    "DetachedServices",
    "Executor",
    "Executors",
    "Route",
    "StepContext",
    "StepResult",
    "StepServices",
    "executor_for",
]
