"""The real CLI with the built-in `write_file` (a tool that says it is destructive) and a scripted
model: `podium run` parks on the held call, `podium approvals` and `podium show RUN STEP` show
it, a bad edit is refused with exit 2 and nothing posted, and `podium approve --set` makes the
call once with the edited arguments from this other process."""

from __future__ import annotations

import json

from .conftest import Cli

AGENT = "---\nname: cleaner\nmodel: scripted:script.yaml\ntools: [write_file]\n---\nWrite.\n"
WORKFLOW = """name: notes
steps:
  - {id: note, kind: agent, agent: cleaner, prompt: Write the note}
"""
ASKS_TO_WRITE = """agents:
  cleaner:
    - tool_calls: [{name: write_file, arguments: {path: a.txt, content: hi}}]
"""
# what the approving process's model says: were turn 1 asked again, it would answer at once
# and nothing would be written
ANSWERS = "agents:\n  cleaner:\n    - content: done\n"


def test_a_held_write_is_listed_shown_edited_and_made_once(cli: Cli) -> None:
    (cli.folder / "agents").mkdir()
    cli.write("agents/cleaner.md", AGENT)
    cli.write("script.yaml", ASKS_TO_WRITE)
    cli.write("wf.yaml", WORKFLOW)
    parked = cli("run", "wf.yaml", "--run-id", "r1")
    assert parked.returncode == 3, parked.stdout + parked.stderr

    listed = cli("approvals", "r1")
    assert listed.returncode == 0, listed.stderr
    assert "note  since" in listed.stdout
    assert 'tool write_file({"content": "hi", "path": "a.txt"})' in listed.stdout
    assert "(policy: destructive_tools)" in listed.stdout

    shown = cli("show", "r1", "note")
    assert shown.returncode == 0, shown.stderr
    assert "waiting for a person" in shown.stdout
    assert "tool write_file, call t1.0, not made yet" in shown.stdout
    detail = json.loads(cli("show", "r1", "note", "--json").stdout)
    assert detail["approval"]["subject"] == "tool"
    assert detail["approval"]["input"]["arguments"] == {"path": "a.txt", "content": "hi"}
    assert [t["outcome"] for t in detail["tries"]] == ["held"]

    bad = cli("approve", "r1", "note", "--set", "path=3")
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "path: 3 is not of type 'string'" in bad.stderr
    assert not (cli.folder / "a.txt").exists()

    cli.write("script.yaml", ANSWERS)
    approved = cli("approve", "r1", "note", "--set", "path=b.txt")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert (cli.folder / "b.txt").read_text() == "hi"  # made, with the edited path
    assert not (cli.folder / "a.txt").exists()
    doc = cli.show("r1")
    assert (doc["status"], doc["approvals"]) == ("succeeded", [])


def test_the_project_configuration_turns_the_rule_off(cli: Cli) -> None:
    (cli.folder / "agents").mkdir()
    cli.write("agents/cleaner.md", AGENT)
    cli.write("script.yaml", ASKS_TO_WRITE + "    - content: done\n")
    cli.write("wf.yaml", WORKFLOW)
    cli.write("podium.toml", "[policy.approve]\ndestructive_tools = false\n")
    result = cli("run", "wf.yaml", "--run-id", "r2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (cli.folder / "a.txt").read_text() == "hi"  # made unasked
