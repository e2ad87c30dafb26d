"""The python executor and registry, driven through real callables in `sample_callables`."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from podium.errors import StepExecutionError, UsageError
from podium.spec.model import PythonStep
from podium.steps import executor_for
from podium.steps.base import StepContext
from podium.steps.python import PythonExecutor, register, registered, resolve_callable

from . import sample_callables

MOD = sample_callables.__name__


async def run(ctx: StepContext, call: str, output: Any = "text", **args: Any) -> Any:
    step = PythonStep(id="s", call=call, args=args, output=output)
    result = await PythonExecutor().execute(step, ctx)
    assert result.meta is None
    return result.output


async def test_registered_name(ctx: StepContext) -> None:
    assert await run(ctx, "tests.add", a=2, b=3) == {"sum": 5}
    assert registered()["tests.add"] is sample_callables.add


async def test_registered_by_qualname_async(ctx: StepContext) -> None:
    assert await run(ctx, "echo_async_sample", value=[1, "x"]) == [1, "x"]


async def test_import_path(ctx: StepContext) -> None:
    assert await run(ctx, f"{MOD}:add", a=1) == {"sum": 1}
    assert await run(ctx, f"{MOD}:Namespace.nested", x=4) == 8
    assert await run(ctx, f"{MOD}:async_callable", x=4) == 5


async def test_the_registry_is_what_executor_for_uses(ctx: StepContext) -> None:
    step = PythonStep(id="s", call="tests.add", args={"a": 1, "b": 1})
    assert (await executor_for("python").execute(step, ctx)).output == {"sum": 2}


async def test_sync_functions_run_in_a_thread(ctx: StepContext) -> None:
    name = await run(ctx, f"{MOD}:thread_name")
    assert name != threading.current_thread().name


async def test_idempotency_key_is_injected(ctx: StepContext) -> None:
    assert await run(ctx, f"{MOD}:with_key", order="o1") == {"order": "o1", "key": "run-1:s:1"}
    assert await run(ctx, f"{MOD}:with_kwargs", a=1) == {"a": 1, "idempotency_key": "run-1:s:1"}


async def test_context_is_injected_when_declared(ctx: StepContext) -> None:
    assert await run(ctx, f"{MOD}:with_context") == {"run": "run-1", "attempt": 1}


@pytest.mark.parametrize("args", [{}, {"a": 1, "c": 2}])  # a missing, c unknown
async def test_bad_arguments_are_permanent(ctx: StepContext, args: dict[str, Any]) -> None:
    with pytest.raises(StepExecutionError) as info:
        await run(ctx, "tests.add", **args)
    assert info.value.retryable is False
    assert info.value.error_type == "usage"
    # Podium's frame around Python's own explanation (whose words are Python's, not checked)
    assert str(info.value).startswith("bad arguments: ")
    assert str(info.value).endswith("; expected parameters: a, b=0")


async def test_positional_only_parameters_cannot_be_bound(ctx: StepContext) -> None:
    with pytest.raises(StepExecutionError, match="positional") as info:
        await run(ctx, f"{MOD}:positional_only", a=1)
    assert info.value.retryable is False


async def test_exceptions_are_retryable_failures(ctx: StepContext) -> None:
    with pytest.raises(StepExecutionError, match=r"^ValueError: boom$") as info:
        await run(ctx, f"{MOD}:fails")
    assert info.value.retryable is True
    assert info.value.error_type == "exception"


async def test_step_execution_errors_pass_through(ctx: StepContext) -> None:
    with pytest.raises(StepExecutionError, match="card declined") as info:
        await run(ctx, f"{MOD}:fails_permanently")
    assert info.value.retryable is False
    assert info.value.error_type == "declined"


async def test_non_json_return_is_refused(ctx: StepContext) -> None:
    with pytest.raises(StepExecutionError, match="set") as info:
        await run(ctx, f"{MOD}:returns_set")
    assert info.value.retryable is False


async def test_return_value_is_validated_against_the_schema(ctx: StepContext) -> None:
    schema = {"type": "object", "properties": {"sum": {"type": "integer", "maximum": 10}}}
    assert await run(ctx, "tests.add", output=schema, a=4) == {"sum": 4}
    with pytest.raises(StepExecutionError, match=r"\$\.sum") as info:
        await run(ctx, "tests.add", output=schema, a=40)
    assert info.value.retryable is False


async def test_json_output_parses_a_returned_string(ctx: StepContext) -> None:
    assert await run(ctx, "echo_async_sample", output="json", value='{"a": 1}') == {"a": 1}


async def test_cancellation_propagates(ctx: StepContext) -> None:
    started = sample_callables.STARTED["cancel"] = asyncio.Event()
    task = asyncio.create_task(run(ctx, f"{MOD}:sleeps", seconds=30, started="cancel"))
    await asyncio.wait_for(started.wait(), timeout=10)  # the call is running: cancel it now
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize(
    ("ref", "says"),
    [
        ("nothing_registered_like_this", "package.module:function"),
        ("no_such_module_xyz:fn", "cannot import module 'no_such_module_xyz'"),
        (f"{MOD}:missing", "has no attribute 'missing'"),
        (f"{MOD}:NOT_CALLABLE", "not a function"),
    ],
)
async def test_unresolvable_calls(ctx: StepContext, ref: str, says: str) -> None:
    with pytest.raises(UsageError) as info:
        resolve_callable(ref)
    assert says in str(info.value)
    with pytest.raises(StepExecutionError) as failed:
        await run(ctx, ref)
    assert failed.value.retryable is False
    assert says in str(failed.value)


def test_register_forms_and_conflicts() -> None:
    def first() -> int:
        return 1

    def second() -> int:
        return 2

    assert register("tests.conflict")(first) is first
    assert register("tests.conflict")(first) is first  # the same function again is fine
    with pytest.raises(UsageError, match="already registered"):
        register("tests.conflict")(second)
    assert register(second) is second
    assert resolve_callable(second.__qualname__) is second


async def test_callables_without_a_signature_still_run(ctx: StepContext) -> None:
    assert await run(ctx, "builtins:dict", a=1) == {"a": 1}
