"""Step executors, one per kind, chosen by the step's `kind` and imported lazily."""

from __future__ import annotations

import importlib

from podium.steps.base import Executor, StepContext, StepResult

_MODULES = {
    "shell": ("podium.steps.shell", "ShellExecutor"),
    "python": ("podium.steps.python", "PythonExecutor"),
    "file": ("podium.steps.file", "FileExecutor"),
    "http": ("podium.steps.http", "HttpExecutor"),
    "agent": ("podium.steps.agent", "AgentExecutor"),
    "plan": ("podium.steps.plan", "PlanExecutor"),
}
_cache: dict[str, Executor] = {}


def executor_for(kind: str) -> Executor:
    """The shared executor instance for a step kind."""
    if (found := _cache.get(kind)) is not None:
        return found
    module_name, class_name = _MODULES[kind]
    executor: Executor = getattr(importlib.import_module(module_name), class_name)()
    _cache[kind] = executor
    return executor


__all__ = ["Executor", "StepContext", "StepResult", "executor_for"]
