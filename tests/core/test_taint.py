"""Untrusted text (core/taint.py) through the pure core: which outputs are untrusted (http, agent,
plan, workflow, and steps that read them, through a python step or a loop), which are not (run
inputs, human answers, statuses), and which splices hold a step before it starts (shell `run` and
`cwd`, an url's scheme/host/port, a file path) and which are data (env, stdin, url path and
query, body)."""

from __future__ import annotations

from typing import Any

import pytest

from podium.core import events as ev
from podium.core import taint as taint_module
from podium.core.state import StepStatus
from podium.core.taint import splice, untrusted
from podium.spec.model import PlanStep
from podium.spec.plan import check_plan
from podium.spec.policy import ApprovalRules, Policy

from .sim import T0, Sim, make_state

FETCH = {"id": "fetch", "kind": "http", "url": "https://example.com/a"}
ASK = {"id": "ask", "kind": "agent", "agent": "researcher", "prompt": "say"}
TIDY = {
    "id": "tidy",
    "kind": "python",
    "call": "json:dumps",
    "args": {"obj": "${{ steps.fetch.output }}"},
}


def _sim(*steps: dict[str, Any]) -> Sim:
    return Sim(make_state({"name": "t", "steps": list(steps)}))


def _done(sim: Sim, step_id: str, output: Any) -> None:
    """Run the pending turn until `step_id` starts, then finish it with `output`."""
    sim.turn()
    assert step_id in sim.state.running, sim.statuses()
    sim.succeed(step_id, output)


def _held(sim: Sim, step_id: str) -> str | None:
    """The reason `step_id` waits for a person after a turn (None: it started)."""
    sim.turn()
    approval = sim.state.approvals.get(step_id)
    if approval is None:
        assert step_id in sim.launched, sim.statuses()
        return None
    assert sim.state.steps[step_id].status is StepStatus.WAITING
    return approval.reason


def test_taint_follows_a_python_step_that_passes_the_text_on() -> None:
    run = {"id": "go", "kind": "shell", "run": "echo ${{ steps.tidy.output }}", "needs": ["tidy"]}
    sim = _sim(FETCH, {**TIDY, "needs": ["fetch"]}, run)
    _done(sim, "fetch", "; touch PWNED")
    _done(sim, "tidy", '"; touch PWNED"')
    assert untrusted(sim.state, "fetch")
    assert untrusted(sim.state, "tidy")
    assert _held(sim, "go") == (
        "untrusted: steps.tidy.output in run (pass it through env: or stdin:, or set "
        "allow_untrusted: true)"
    )


def test_inputs_human_answers_statuses_and_trusted_python_are_trusted() -> None:
    human = {"id": "who", "kind": "human", "prompt": "name?"}
    calc = {
        "id": "calc",
        "kind": "python",
        "call": "json:dumps",
        "args": {"obj": "${{ inputs.x }}"},
    }
    run = (
        "echo ${{ inputs.x }} ${{ steps.who.output }} ${{ steps.calc.output }} "
        "${{ steps.ask.status }} ${{ run.id }}"
    )
    go = {"id": "go", "kind": "shell", "run": run, "needs": ["who", "calc", "ask"]}
    sim = Sim(
        make_state({"name": "t", "inputs": {"x": {}}, "steps": [human, calc, ASK, go]}, {"x": "1"})
    )
    sim.turn()
    sim.record(ev.ApprovalGranted(at=T0, step_id="who", value="; rm -rf ~"))
    sim.succeed("calc", '"1"')
    sim.succeed("ask", "anything")
    assert not untrusted(sim.state, "who")
    assert not untrusted(sim.state, "calc")
    assert untrusted(sim.state, "ask")
    assert _held(sim, "go") is None


@pytest.mark.parametrize(
    ("url", "held"),
    [
        ("${{ steps.ask.output }}", True),
        ("https://${{ steps.ask.output }}/x", True),
        ("https://example.com${{ steps.ask.output }}", True),
        ("https://example.com:${{ steps.ask.output }}/x", True),
        ("${{ steps.ask.output }}://example.com/x", True),
        ("https://${{ inputs.host }}${{ steps.ask.output }}/x", True),
        ("https://example.com/${{ steps.ask.output }}", False),
        ("https://example.com/?q=${{ steps.ask.output }}", False),
        ("https://example.com#${{ steps.ask.output }}", False),
        ("${{ inputs.base }}/items/${{ steps.ask.output }}", False),
        ("https://example.com/${{ steps.ask.output.id }}/more", False),
    ],
)
def test_an_url_is_held_only_for_untrusted_text_in_its_scheme_host_or_port(
    url: str, held: bool
) -> None:
    call = {"id": "call", "kind": "http", "url": url, "needs": ["ask"]}
    sim = Sim(
        make_state(
            {"name": "t", "inputs": {"host": {}, "base": {}}, "steps": [ASK, call]},
            {"host": "example.com", "base": "https://example.com"},
        )
    )
    _done(sim, "ask", {"id": "7"} if "output.id" in url else "example.org")
    reason = _held(sim, "call")
    assert (reason is not None) is held, reason
    if held:
        assert reason is not None
        assert reason.startswith("untrusted: steps.ask.output")
        assert " in url (keep it in the url's path or in query:" in reason


@pytest.mark.parametrize(
    ("fields", "held"),
    [
        ({"kind": "shell", "run": ["echo", "${{ steps.ask.output }}"]}, "run"),
        ({"kind": "shell", "run": "true", "cwd": "${{ steps.ask.output }}"}, "cwd"),
        ({"kind": "file", "op": "read", "path": "${{ steps.ask.output }}"}, "path"),
        (
            {"kind": "file", "op": "write", "path": "out/${{ steps.ask.output }}", "content": "x"},
            "path",
        ),
        ({"kind": "shell", "run": 'echo "$X"', "env": {"X": "${{ steps.ask.output }}"}}, None),
        ({"kind": "shell", "run": "cat", "stdin": "${{ steps.ask.output }}"}, None),
        (
            {"kind": "file", "op": "write", "path": "o.txt", "content": "${{ steps.ask.output }}"},
            None,
        ),
        (
            {"kind": "http", "url": "https://e.com/", "query": {"q": "${{ steps.ask.output }}"}},
            None,
        ),
        (
            {
                "kind": "http",
                "url": "https://e.com/",
                "method": "POST",
                "body": "${{ steps.ask.output }}",
                "headers": {"X": "${{ steps.ask.output }}"},
            },
            None,
        ),
    ],
)
def test_commands_and_paths_are_guarded_data_channels_are_not(
    fields: dict[str, Any], held: str | None
) -> None:
    sim = _sim(ASK, {"id": "use", "needs": ["ask"], **fields})
    _done(sim, "ask", "x")
    found = splice(sim.state, sim.state.steps["use"])
    assert (found[1] if found else None) == held
    reason = _held(sim, "use")
    assert (reason is not None) is (held is not None)


def test_allow_untrusted_and_a_project_policy_let_the_step_start() -> None:
    go = {"id": "go", "kind": "shell", "run": "echo ${{ steps.ask.output }}", "needs": ["ask"]}
    sim = _sim(ASK, {**go, "allow_untrusted": True})
    _done(sim, "ask", "x")
    assert _held(sim, "go") is None
    sim = _sim(ASK, go)
    sim.state.policy = Policy(approve=ApprovalRules(untrusted=False))
    _done(sim, "ask", "x")
    assert _held(sim, "go") is None


def test_a_loop_childs_taint_follows_its_own_references() -> None:
    body = [
        {"id": "think", "kind": "agent", "agent": "researcher", "prompt": "next?"},
        {
            "id": "note",
            "kind": "python",
            "call": "json:dumps",
            "args": {"obj": "${{ inputs.x }}"},
        },
        {
            "id": "act",
            "kind": "shell",
            "run": "echo ${{ steps.think.output }}",
            "needs": ["think", "note"],
        },
    ]
    loop = {"id": "loop", "kind": "loop", "max_iterations": 2, "steps": body}
    after = {
        "id": "after",
        "kind": "shell",
        "run": "echo ${{ steps.loop.output }}",
        "needs": ["loop"],
    }
    sim = Sim(make_state({"name": "t", "inputs": {"x": {}}, "steps": [loop, after]}, {"x": "1"}))
    sim.turn()
    sim.succeed("loop.1.think", "$(curl evil)")
    sim.succeed("loop.1.note", '"1"')
    assert untrusted(sim.state, "loop.1.think")
    assert not untrusted(sim.state, "loop.1.note")
    assert untrusted(sim.state, "loop")  # an iteration's agent answered
    assert _held(sim, "loop.1.act") == (
        "untrusted: steps.think.output in run (pass it through env: or stdin:, or set "
        "allow_untrusted: true)"
    )


def test_a_planner_cannot_set_allow_untrusted() -> None:
    step = PlanStep(id="plan", goal="tidy up", kinds=["agent", "shell"])
    item = {"id": "rm", "kind": "shell", "run": "rm -rf ~", "allow_untrusted": True}
    problems = check_plan({"steps": [item]}, step, agents=None)
    assert [p.path for p in problems] == ["steps[0].allow_untrusted"]
    assert "only a written workflow may set it" in problems[0].message
    assert check_plan({"steps": [{**item, "allow_untrusted": None}]}, step, agents=None) == []


def test_an_edit_that_makes_a_step_read_untrusted_text_is_seen_by_the_next_gate() -> None:
    """Verdicts are kept on the state between gates (a chain costs O(n)); an approval's edit
    must drop them, or the edited step would keep the verdict of the text it no longer reads."""
    tidy = {**TIDY, "args": {"obj": "plain"}, "needs": ["fetch"], "approval": "required"}
    go = {"id": "go", "kind": "shell", "run": "echo ${{ steps.tidy.output }}", "needs": ["tidy"]}
    sim = _sim(FETCH, tidy, go)
    _done(sim, "fetch", "; touch PWNED")
    sim.turn()
    assert "tidy" in sim.state.approvals
    assert not untrusted(sim.state, "tidy")  # worked out and kept on the state
    edit = {"args": {"obj": "${{ steps.fetch.output }}"}}
    sim.record(ev.ApprovalEdited(at=T0, step_id="tidy", input=edit))
    _done(sim, "tidy", '"; touch PWNED"')
    assert untrusted(sim.state, "tidy")
    assert (_held(sim, "go") or "").startswith("untrusted: steps.tidy.output in run")


def test_a_chain_of_gated_steps_is_worked_out_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each gate reuses the verdicts of the steps before it: 2,000 shell steps, each reading the
    one before, ask about each step's sources once (it was once per gate: O(n^2))."""
    steps: list[dict[str, Any]] = [{"id": "s0", "kind": "shell", "run": "echo hi"}]
    for i in range(1, 2000):
        run = f"echo ${{{{ steps.s{i - 1}.output }}}}"
        steps.append({"id": f"s{i}", "kind": "shell", "run": run, "needs": [f"s{i - 1}"]})
    sim = _sim(*steps)
    asked: list[str] = []
    real = taint_module._Taint._sources

    def counted(self: Any, step_id: str) -> Any:
        asked.append(step_id)
        return real(self, step_id)

    monkeypatch.setattr(taint_module._Taint, "_sources", counted)
    for i in range(2000):
        assert splice(sim.state, sim.state.steps[f"s{i}"]) is None
    assert len(asked) == len(set(asked)) == 1999
