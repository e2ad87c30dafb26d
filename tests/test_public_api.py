"""The public surface: everything users need is exported, and nothing exported is missing."""

from __future__ import annotations

import inspect

import podium


def test_all_is_complete_and_sorted_names_resolve() -> None:
    public = {
        name
        for name, value in vars(podium).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and name not in {"annotations", "Any", "Coroutine", "TypeVar", "T", "asyncio"}
    }
    assert public == set(podium.__all__) - {"__version__"}
    for name in podium.__all__:
        assert hasattr(podium, name), name


def test_builder_runs_through_the_engine(tmp_path: object) -> None:
    wb = podium.WorkflowBuilder("api-demo")
    first = wb.shell("hello", "echo hello")
    wb.python(
        "shout",
        "tests.runtime.callables:echo",
        args={"value": "${{ steps.hello.output }}!"},
        needs=[first],
    )

    async def main() -> podium.RunState:
        async with await podium.Engine.open("memory:") as engine:
            return await engine.run(wb.build())

    state = podium.run_sync(main())
    assert state.status == "succeeded", {s.id: (s.status, s.error) for s in state.steps.values()}
    assert state.steps["shout"].output == "hello!"
