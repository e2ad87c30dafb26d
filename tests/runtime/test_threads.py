"""Threads through the engine and a real SQLite store: a message sees the thread's earlier
exchanges, within limits; an unknown thread is refused; new input on a busy thread is rejected
(also when two asks race), queued (and the queue survives the asker's engine) or interrupts the
live run."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from podium.errors import ThreadBusyError, UsageError
from podium.runtime.engine import Engine
from podium.store.base import StoredEvent

from ._threads import Model, conversation, model, open_engine

__all__ = ["model"]  # the fixture


async def test_a_second_message_sees_the_first_exchange(tmp_path: Path, model: Model) -> None:
    async with await open_engine(tmp_path, routing={"default": "assistant"}) as engine:
        first = await engine.ask("What is 2+2?")
        assert first.new_thread
        assert first.thread.startswith("th_")
        assert (await engine.wait(first.run_id)).status == "succeeded"

        second = await engine.ask("And doubled?", thread=first.thread)
        state = await engine.wait(second.run_id)

    assert state.status == "succeeded"
    assert state.steps["answer"].output == "assistant: And doubled?"
    assert not second.new_thread
    assert second.thread == first.thread
    assert conversation(model.calls[-1]) == [
        ("system", "You are assistant."),
        ("user", "What is 2+2?"),
        ("assistant", "assistant: What is 2+2?"),
        ("user", "And doubled?"),
    ]
    assert state.thread is not None
    assert state.thread["id"] == first.thread
    assert state.thread["message"] == "And doubled?"
    assert state.thread["routing"] == {"requested": None, "agent": "assistant", "by": "default"}


async def test_history_keeps_the_newest_exchanges_and_says_what_was_left_out(
    tmp_path: Path, model: Model
) -> None:
    config = {"routing": {"default": "assistant"}, "threads": {"history_messages": 2}}
    async with await open_engine(tmp_path, **config) as engine:
        asked = await engine.ask("one", new_thread="t1")
        await engine.wait(asked.run_id)
        for text in ("two", "three", "four"):
            await engine.wait((await engine.ask(text, thread="t1")).run_id)
        await engine.wait((await engine.ask("five", thread="t1")).run_id)

    said = conversation(model.calls[-1])[1:]
    assert [content for _, content in said] == [
        "[2 earlier exchanges of this thread left out to stay within the context limit]\n\nthree",
        "assistant: three",
        "four",
        "assistant: four",
        "five",
    ]


async def test_a_long_history_is_cut_to_the_character_limit(tmp_path: Path, model: Model) -> None:
    config = {"routing": {"default": "assistant"}, "threads": {"history_chars": 300}}
    async with await open_engine(tmp_path, **config) as engine:
        await engine.wait((await engine.ask("x" * 1000, new_thread="t1")).run_id)
        await engine.wait((await engine.ask("short", thread="t1")).run_id)

    earlier = model.calls[-1].messages[1:-1]
    assert sum(len(m.content) for m in earlier) < 400
    assert earlier[0].content.startswith("[cut: the first ")


async def test_an_unknown_thread_is_refused_and_nothing_is_created(
    tmp_path: Path, model: Model
) -> None:
    async with await open_engine(tmp_path, routing={"default": "assistant"}) as engine:
        with pytest.raises(UsageError, match=r"no thread nope; `podium threads` lists them"):
            await engine.ask("hello", thread="nope")
        asked = await engine.ask("hello", new_thread="mine")
        await engine.wait(asked.run_id)
        with pytest.raises(UsageError, match="thread mine already exists; continue it"):
            await engine.ask("again", new_thread="mine")
        with pytest.raises(UsageError, match="not valid"):
            await engine.ask("again", new_thread="has space")
        with pytest.raises(UsageError, match="the message is empty"):
            await engine.ask("  ", thread="mine")
        assert len(await engine.list_runs()) == 1
    assert len(model.calls) == 1


async def test_threads_lists_each_thread_with_its_newest_message(
    tmp_path: Path, model: Model
) -> None:
    async with await open_engine(tmp_path, routing={"default": "assistant"}) as engine:
        await engine.wait((await engine.ask("a1", new_thread="a")).run_id)
        await engine.wait((await engine.ask("b1", new_thread="b")).run_id)
        await engine.wait((await engine.ask("a2", thread="a")).run_id)
        await engine.submit({"name": "other", "steps": [{"id": "s", "kind": "shell", "run": ":"}]})
        listed = await engine.threads()

    assert [(t.thread, t.runs, t.status, t.last_message) for t in listed] == [
        ("a", 2, "succeeded", "a2"),
        ("b", 1, "succeeded", "b1"),
    ]


async def _events(tmp_path: Path, run_id: str) -> list[StoredEvent]:
    async with await Engine.open(tmp_path / "podium.db", mode="control") as reader:
        return await reader.store.read(run_id)


async def _busy_thread(engine: Engine, model: Model) -> str:
    """A thread whose first run is live: its answer waits until `model.release()`."""
    model.hold()
    asked = await engine.ask("first", new_thread="t")
    assert model.started is not None
    await asyncio.wait_for(model.started.wait(), 10)
    return asked.run_id


async def test_new_input_on_a_busy_thread_is_rejected(tmp_path: Path, model: Model) -> None:
    async with await open_engine(tmp_path, routing={"default": "assistant"}) as engine:
        live = await _busy_thread(engine, model)
        with pytest.raises(ThreadBusyError, match=f"thread t is busy: its run {live} is still"):
            await engine.ask("second", thread="t")
        assert [r.run_id for r in await engine.list_runs()] == [live]
        model.release()
        assert (await engine.wait(live)).status == "succeeded"
        after = await engine.ask("second", thread="t")
        assert (await engine.wait(after.run_id)).status == "succeeded"


async def test_two_asks_at_once_under_reject_start_exactly_one(
    tmp_path: Path, model: Model
) -> None:
    async with await open_engine(tmp_path, routing={"default": "assistant"}) as engine:
        await engine.wait((await engine.ask("hello", new_thread="t")).run_id)
    engines = [await open_engine(tmp_path, routing={"default": "assistant"}) for _ in range(4)]
    try:
        results = await asyncio.gather(
            *(e.ask(f"at once {i}", thread="t") for i, e in enumerate(engines)),
            return_exceptions=True,
        )
        started = [r for r in results if not isinstance(r, BaseException)]
        assert len(started) == 1, results
        assert all(isinstance(r, ThreadBusyError) for r in results if r not in started)
        owner = engines[results.index(started[0])]
        assert (await owner.wait(started[0].run_id)).status == "succeeded"
        assert len(await owner.store.list_runs(thread="t")) == 2
    finally:
        for opened in engines:
            await opened.close()


async def test_queued_input_starts_after_the_live_run_ends(tmp_path: Path, model: Model) -> None:
    async with await open_engine(tmp_path, routing={"default": "assistant"}) as engine:
        live = await _busy_thread(engine, model)
        queued = await engine.ask("second", thread="t", on_busy="queue")
        assert queued.waits_for == (live,)
        await asyncio.sleep(0.3)
        assert (await engine.store.get_run(queued.run_id)).status == "pending"
        assert len(model.calls) == 1
        model.release()
        state = await engine.wait(queued.run_id)

    assert state.status == "succeeded"
    assert state.thread is not None
    assert state.thread["on_busy"] == "queue"
    assert [c.messages[-1].content for c in model.calls] == ["first", "second"]
    assert conversation(model.calls[-1])[1:3] == [  # the answer it waited for, not a note
        ("user", "first"),
        ("assistant", "assistant: first"),
    ]
    events = [e.event for e in await _events(tmp_path, queued.run_id)]
    [caught_up] = [e for e in events if e.kind == "thread.caught_up"]
    assert caught_up.history[1] == {"role": "assistant", "content": "assistant: first"}
    assert events[0].workflow["steps"][0]["history"][1]["content"].startswith("[no answer yet")


async def test_a_queued_run_waits_for_its_predecessor_in_whichever_engine_drives_it(
    tmp_path: Path, model: Model
) -> None:
    """The asker leaves the queued run to the store (a control engine: it never drives); a
    worker claims it and still waits for the live run before it starts."""
    async with await open_engine(tmp_path, routing={"default": "assistant"}) as engine:
        live = await _busy_thread(engine, model)
        control = await Engine.open(
            tmp_path / "podium.db",
            mode="control",
            agents_dir=tmp_path,
            config=engine.services.config,
        )
        async with control:
            queued = await control.ask("second", thread="t", on_busy="queue")
        worker = await Engine.open(tmp_path / "podium.db", mode="worker", agents_dir=tmp_path)
        async with worker:
            for _ in range(50):
                if worker.is_driving(queued.run_id):
                    break
                await asyncio.sleep(0.1)
            assert worker.is_driving(queued.run_id)
            await asyncio.sleep(0.3)
            assert (await worker.store.get_run(queued.run_id)).status == "pending"
            model.release()
            assert (await engine.wait(live)).status == "succeeded"
            state = await worker.wait(queued.run_id)

    assert state.status == "succeeded"
    assert [c.messages[-1].content for c in model.calls] == ["first", "second"]


async def test_new_input_interrupts_the_live_run(tmp_path: Path, model: Model) -> None:
    config = {"routing": {"default": "assistant"}, "threads": {"on_busy": "interrupt"}}
    async with await open_engine(tmp_path, **config) as engine:
        live = await _busy_thread(engine, model)
        asked = await engine.ask("never mind, this instead", thread="t")
        assert asked.interrupted == (live,)
        stopped = await engine.wait(live)
        model.release()
        state = await engine.wait(asked.run_id)

    assert stopped.status == "cancelled"
    assert stopped.cancel_reason == "interrupted by new input on thread t"
    assert state.status == "succeeded"
    assert state.steps["answer"].output == "assistant: never mind, this instead"
    said = conversation(model.calls[-1])
    assert said[1] == ("user", "first")
    assert said[2] == ("assistant", f"[no answer: run {live} was interrupted by the next message]")
