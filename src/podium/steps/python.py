"""The `python` executor and its registry: calls a registered name or an importable
`package.module:function` with the step's keyword `args`."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

from podium.errors import StepExecutionError, UsageError
from podium.spec.model import PythonStep, StepBase
from podium.steps.base import DETACHED, StepContext, StepResult, StepServices
from podium.steps.output import json_safe, shape_output

F = TypeVar("F", bound=Callable[..., Any])

_registry: dict[str, Callable[..., Any]] = {}
_imported: dict[str, Callable[..., Any]] = {}
_plans: dict[Callable[..., Any], _CallPlan] = {}
_KEYWORD_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_INJECTED = frozenset({"idempotency_key", "podium_context"})


@overload
def register(name: F, /) -> F: ...
@overload
def register(name: str | None = None, /) -> Callable[[F], F]: ...
def register(name: str | F | None = None, /) -> F | Callable[[F], F]:
    """Register a callable for `call:`; use as `@register`, `@register("name")` or `register(fn)`.

    The name defaults to the function's qualified name.
    """
    if callable(name):
        return _add(name.__qualname__, name)

    def decorate(fn: F) -> F:
        return _add(name or fn.__qualname__, fn)

    return decorate


def _add(name: str, fn: F) -> F:
    taken = _registry.get(name)
    if taken is not None and not _same_function(taken, fn):
        raise UsageError(
            f"python callable name {name!r} is already registered to "
            f"{taken.__module__}.{taken.__qualname__}; register this one under another name"
        )
    _registry[name] = fn
    return fn


def _same_function(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    """The same object, or the same definition imported again (a module reload)."""
    key = ("__module__", "__qualname__")
    return a is b or all(getattr(a, k, None) == getattr(b, k, object()) for k in key)


def registered() -> dict[str, Callable[..., Any]]:
    """A copy of the registry: name -> callable."""
    return dict(_registry)


def resolve_callable(ref: str) -> Callable[..., Any]:
    """A registered name, else `package.module:attr.path` imported with importlib."""
    found = _registry.get(ref)
    if found is None:
        found = _imported.get(ref)
    if found is not None:
        return found
    module_name, sep, attr_path = ref.partition(":")
    if not sep or not module_name or not attr_path:
        known = ", ".join(sorted(_registry)[:20]) or "none"
        raise UsageError(
            f"{ref!r} is neither a registered python callable (registered: {known}) nor an "
            "import path; register it with @podium.steps.python.register or write "
            "'package.module:function'"
        )
    target = _lookup(_import(module_name, ref), attr_path, ref)
    if not callable(target):
        raise UsageError(
            f"{ref!r} names a {type(target).__name__}, not a function; point `call` at a callable"
        )
    fn: Callable[..., Any] = target
    _imported[ref] = fn
    return fn


def _import(module_name: str, ref: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except Exception as exc:
        raise UsageError(
            f"cannot import module {module_name!r} for call {ref!r} ({type(exc).__name__}: {exc}); "
            "check it is installed or on sys.path, in the form 'package.module:function'"
        ) from exc


def _lookup(module: Any, attr_path: str, ref: str) -> Any:
    target = module
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise UsageError(
                f"module {module.__name__!r} has no attribute {attr_path!r} (looking up {part!r} "
                f"for call {ref!r}); check the name after the ':'"
            ) from None
    return target


@dataclass(frozen=True, slots=True)
class _CallPlan:
    """What a function's signature allows, worked out once per function."""

    signature: inspect.Signature
    is_async: bool
    names: frozenset[str]
    required: frozenset[str]
    var_keyword: bool
    positional_only: bool
    wants_key: bool
    wants_context: bool

    def check(self, args: dict[str, Any]) -> None:
        names_ok = self.var_keyword or self.names.issuperset(args)
        if names_ok and self.required.issubset(args) and not self.positional_only:
            return
        probe = dict.fromkeys(_INJECTED & self.names) | args
        try:
            self.signature.bind(**probe)
            problem = "positional-only parameters cannot be given by name"
        except TypeError as exc:
            problem = str(exc)
        raise StepExecutionError(
            f"bad arguments: {problem}; expected parameters: {_describe(self.signature)}",
            retryable=False,
            error_type="usage",
        )


def _describe(signature: inspect.Signature) -> str:
    """`a, b=0, *, c` — the parameters without annotations, as a step's `args` sees them."""
    plain = [p.replace(annotation=inspect.Parameter.empty) for p in signature.parameters.values()]
    bare = signature.replace(parameters=plain, return_annotation=inspect.Signature.empty)
    return str(bare)[1:-1] or "none"


def _plan_for(fn: Callable[..., Any]) -> _CallPlan:
    try:
        return _plans[fn]
    except KeyError:
        plan = _make_plan(fn)
    except TypeError:  # unhashable callable: inspect it every time
        return _make_plan(fn)
    _plans[fn] = plan
    return plan


def _make_plan(fn: Callable[..., Any]) -> _CallPlan:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have none: pass the args, let the call decide
        return _CallPlan(
            signature=inspect.Signature(),
            is_async=False,
            names=frozenset(),
            required=frozenset(),
            var_keyword=True,
            positional_only=False,
            wants_key=False,
            wants_context=False,
        )
    params = signature.parameters.values()
    names = frozenset(p.name for p in params if p.kind in _KEYWORD_KINDS)
    var_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    mandatory = [p for p in params if p.default is inspect.Parameter.empty]
    required = frozenset(p.name for p in mandatory if p.kind in _KEYWORD_KINDS) - _INJECTED
    call = type(fn).__call__  # an object with an async __call__ is async too
    return _CallPlan(
        signature=signature,
        is_async=inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call),
        names=names,
        required=required,
        var_keyword=var_keyword,
        positional_only=any(p.kind is inspect.Parameter.POSITIONAL_ONLY for p in mandatory),
        wants_key="idempotency_key" in names or var_keyword,
        wants_context="podium_context" in names,
    )


@dataclass(frozen=True, slots=True)
class PodiumContext:
    """What a python step's function gets as its `podium_context` argument: the attempt's facts
    (`run_id`, `step_id`, `attempt`, `idempotency_key`, `workspace`, `upstream`), `report` for
    what only the attempt can know (see `StepServices.report`) and `delta` for live output."""

    ctx: StepContext
    services: StepServices

    @property
    def run_id(self) -> str:
        return self.ctx.run_id

    @property
    def step_id(self) -> str:
        return self.ctx.step_id

    @property
    def attempt(self) -> int:
        return self.ctx.attempt

    @property
    def idempotency_key(self) -> str:
        return self.ctx.idempotency_key

    @property
    def workspace(self) -> Path:
        return self.ctx.workspace

    @property
    def upstream(self) -> Mapping[str, Any]:
        return self.ctx.upstream

    def report(self, kind: str, data: Mapping[str, Any]) -> None:
        """Record a model call, tool call, routing, breaker change or progress; anything else
        raises `ReportError`."""
        self.services.report(kind, data)

    async def checkpoint(self, kind: str, data: Mapping[str, Any]) -> None:
        """Report, and return once the run has committed the report."""
        await self.services.checkpoint(kind, data)

    def delta(self, text: str) -> None:
        """Stream live output to the run's subscribers (not stored)."""
        self.services.delta(text)


class PythonExecutor:
    """Runs `PythonStep`s: coroutine functions are awaited, plain functions run in a thread."""

    async def execute(
        self, step: StepBase, ctx: StepContext, services: StepServices = DETACHED
    ) -> StepResult:
        if not isinstance(step, PythonStep):
            raise TypeError(f"PythonExecutor cannot run a {type(step).__name__}")
        fn = _resolve(step.call, ctx.workspace)
        plan = _plan_for(fn)
        kwargs = _arguments(plan, step.args, ctx, services)
        value = await _call(fn, plan, kwargs)
        return StepResult(shape_output(json_safe(value), step.output, step_id=step.id))


def _resolve(ref: str, workspace: Path) -> Callable[..., Any]:
    """Registered names first; import paths are also looked up in the run's workspace."""
    found = _registry.get(ref)
    if found is not None:
        return found
    if ":" in ref and str(workspace) not in sys.path:
        sys.path.append(str(workspace))
    try:
        return resolve_callable(ref)
    except UsageError as exc:
        raise StepExecutionError(str(exc), retryable=False, error_type="usage") from exc


def _arguments(
    plan: _CallPlan, args: dict[str, Any], ctx: StepContext, services: StepServices
) -> dict[str, Any]:
    plan.check(args)
    if not (plan.wants_key or plan.wants_context):
        return args
    kwargs = dict(args)
    if plan.wants_key:
        kwargs.setdefault("idempotency_key", ctx.idempotency_key)
    if plan.wants_context:
        kwargs["podium_context"] = PodiumContext(ctx, services)
    return kwargs


async def _call(fn: Callable[..., Any], plan: _CallPlan, kwargs: dict[str, Any]) -> Any:
    try:
        if plan.is_async:
            return await fn(**kwargs)
        value = await asyncio.to_thread(fn, **kwargs)
        return await value if inspect.isawaitable(value) else value
    except StepExecutionError:
        raise
    except Exception as exc:
        raise StepExecutionError(
            f"{type(exc).__name__}: {exc}", retryable=True, error_type="exception"
        ) from exc
