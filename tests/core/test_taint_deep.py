"""Untrusted text through a long chain: the taint of step N is worked out without recursing once
per step (a chain of thousands of templated steps must not hit Python's recursion limit)."""

from __future__ import annotations

from podium.core.taint import splice, untrusted

from .sim import make_state


def test_a_chain_of_3000_templated_steps_is_worked_out_without_deep_recursion() -> None:
    steps: list[dict[str, object]] = [{"id": "s0", "kind": "http", "url": "https://example.com/"}]
    for n in range(1, 3000):
        prev = f"s{n - 1}"
        steps.append(
            {
                "id": f"s{n}",
                "kind": "python",
                "call": "json:dumps",
                "needs": [prev],
                "args": {"obj": f"${{{{ steps.{prev}.output }}}}"},
            }
        )
    steps.append(
        {"id": "last", "kind": "shell", "needs": ["s2999"], "run": "echo ${{ steps.s2999.output }}"}
    )
    state = make_state({"name": "deep", "steps": steps})
    assert untrusted(state, "s2999")
    assert splice(state, state.steps["last"]) == ("steps.s2999.output", "run")
