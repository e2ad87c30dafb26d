"""`podium ask` and `podium threads` as real subprocesses: the README's thread example (a rule,
then the router, on one thread), `show` naming the thread and the routing, an unknown thread and
a blocked agent refused (exit 2, nothing created), a busy thread rejected and interrupted from
other processes, racing asks of which one starts, and a queued message surviving its asker's
SIGKILL."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

from podium.store import open_store

from .conftest import Cli, wait_until

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "thread"
SLOW_SCRIPT = """
agents:
  slow:
    - {content: "finally", delay_seconds: 30}
  assistant:
    - "quick answer"
"""
AGENT = "---\nname: {name}\ndescription: {name} agent\n---\nYou are {name}.\n"


def _example(cli: Cli) -> list[str]:
    shutil.copytree(EXAMPLE, cli.folder / "thread")
    return ["--config", "thread/podium.toml", "--model", "scripted:thread/script.yaml"]


def _project(cli: Cli, toml: str = "") -> None:
    (cli.folder / "agents").mkdir()
    for name in ("slow", "assistant", "coder"):
        cli.write(f"agents/{name}.md", AGENT.format(name=name))
    cli.write("script.yaml", SLOW_SCRIPT)
    cli.write("podium.toml", f'model = "scripted:script.yaml"\n{toml}')


def test_a_thread_of_two_messages_routed_by_a_rule_then_the_router(cli: Cli) -> None:
    options = _example(cli)
    first = cli("ask", *options, "--new-thread", "demo", "Why does my Python script crash?")
    assert first.returncode == 0, first.stderr
    assert "thread demo (new; continue it with podium ask --thread demo" in first.stdout
    assert "agent coder (routing rule 0:" in first.stdout
    assert "A KeyError means the dict has no such key" in first.stdout

    second = cli("ask", *options, "--thread", "demo", "Now a haiku about it", "--json")
    assert second.returncode == 0, second.stderr
    doc = json.loads(second.stdout)
    assert doc["thread"]["id"] == "demo"
    assert doc["thread"]["message"] == "Now a haiku about it"
    assert doc["thread"]["routing"]["by"] == "router"
    assert doc["thread"]["routing"]["agent"] == "writer"
    assert doc["steps"][0]["output"].startswith("Missing key, dict shrugs")

    shown = cli("show", doc["run_id"])
    assert "demo (agent writer, chosen by the router router)" in shown.stdout
    listed = json.loads(cli("threads", "--json").stdout)
    assert [(t["thread"], t["runs"], t["last_message"]) for t in listed] == [
        ("demo", 2, "Now a haiku about it")
    ]
    runs = json.loads(cli("threads", "demo", "--json").stdout)
    assert [r["agent"] for r in runs] == ["writer", "coder"]


def test_an_unknown_thread_and_a_blocked_agent_are_refused_creating_nothing(cli: Cli) -> None:
    _project(cli, '[policy]\nblock_agents = ["coder"]\n')
    unknown = cli("ask", "--thread", "nope", "hello")
    assert unknown.returncode == 2
    assert "no thread nope; `podium threads` lists them" in unknown.stderr
    blocked = cli("ask", "--agent", "coder", "hello")
    assert blocked.returncode == 2
    assert "agent 'coder' (--agent) is blocked by the project's policy" in blocked.stderr
    assert not cli.db.exists()


def _live_thread(cli: Cli) -> tuple[subprocess.Popen[str], str]:
    """Thread `t` with a live run: the slow agent answers after 30 s."""
    _project(cli, '[routing]\ndefault = "assistant"\n')
    runner = cli.start("ask", "--new-thread", "t", "--agent", "slow", "take your time")
    wait_until(lambda: _statuses(cli) == ["running"], "the slow run on thread t to be running")
    [live] = json.loads(cli("threads", "t", "--json").stdout)
    return runner, live["run_id"]


def test_a_busy_thread_rejects_then_is_interrupted(cli: Cli) -> None:
    runner, live = _live_thread(cli)
    rejected = cli("ask", "--thread", "t", "hello?")
    assert rejected.returncode == 2
    assert f"thread t is busy: its run {live} is still live" in rejected.stderr
    assert "--on-busy queue" in rejected.stderr

    interrupting = cli("ask", "--thread", "t", "--on-busy", "interrupt", "stop that")
    assert interrupting.returncode == 0, interrupting.stderr
    assert f"interrupted run {live}" in interrupting.stdout
    assert "quick answer" in interrupting.stdout
    assert runner.wait(timeout=30) == 1
    stopped = cli.show(live)
    assert stopped["status"] == "cancelled"
    assert stopped["cancel_reason"] == "interrupted by new input on thread t"


def test_two_asks_at_once_on_an_idle_thread_start_exactly_one(cli: Cli) -> None:
    _project(cli, '[routing]\ndefault = "slow"\n')
    cli.write("script.yaml", "agents:\n  '*':\n    - {content: done, delay_seconds: 1}\n")
    first = cli("ask", "--new-thread", "t", "first")
    assert first.returncode == 0, first.stderr
    racers = [cli.start("ask", "--thread", "t", f"racer {i}") for i in range(3)]
    results = [(racer.wait(timeout=30), racer.communicate()) for racer in racers]
    assert sorted(code for code, _ in results) == [0, 2, 2], results
    assert all("thread t is busy" in err for code, (_, err) in results if code == 2)
    assert len(json.loads(cli("threads", "t", "--json").stdout)) == 2


def test_a_queued_message_killed_with_its_asker_still_waits_its_turn_on_resume(cli: Cli) -> None:
    """SIGKILL the process that queued a message; `podium resume` of the queued run holds it
    until the thread's live run has ended, then answers it."""
    _project(cli, '[routing]\ndefault = "assistant"\n')
    cli.write("script.yaml", SLOW_SCRIPT.replace("delay_seconds: 30", "delay_seconds: 5"))
    live_asker = cli.start("ask", "--new-thread", "t", "--agent", "slow", "take your time")
    wait_until(lambda: _statuses(cli) == ["running"], "the slow run to be running")
    queuer = cli.start("ask", "--thread", "t", "--on-busy", "queue", "next, please")
    wait_until(lambda: _statuses(cli) == ["pending", "running"], "the queued run to exist")
    queuer.kill()
    queuer.wait(timeout=10)

    [queued, live] = [r["run_id"] for r in json.loads(cli("threads", "t", "--json").stdout)]
    resumed = cli("resume", queued)
    assert resumed.returncode == 0, resumed.stderr
    assert live_asker.wait(timeout=30) == 0
    first, second = cli.show(live), cli.show(queued)
    assert first["status"] == second["status"] == "succeeded"
    assert first["updated_at"] <= second["steps"][0]["started_at"]
    assert second["steps"][0]["output"] == "quick answer"


def _statuses(cli: Cli) -> list[str]:
    """Thread t's runs' statuses, newest first, read from the store (no subprocess: fast)."""
    return asyncio.run(_read_statuses(cli.db))


async def _read_statuses(db: Path) -> list[str]:
    store = await open_store(db, create=False)
    try:
        return [r.status for r in await store.list_runs(thread="t")]
    finally:
        await store.close()
