"""The page's edit checks (server/static/schema.js) in Chromium, against the schemas the server
really gives: a shell step's fields (pydantic's JSON schema, with $defs and anyOf) and a plan's
schema for the kinds a plan step may generate."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import Page
from tests.server.process import Served

from podium.spec.model import STEP_TYPES
from podium.spec.plan import plan_schema

pytestmark = pytest.mark.browser


def problems(page: Page, function: str, *args: Any) -> list[str]:
    found = page.evaluate(
        """async ([fn, args]) => {
            const schema = await import("/ui/schema.js");
            return schema[fn](...args);
        }""",
        [function, list(args)],
    )
    return [f"{p['path']}: {p['message']}" for p in found]


def test_a_step_edit_is_checked_against_the_steps_fields(server: Served, page: Page) -> None:
    page.goto(server.url + "/ui/style.css")
    shell = STEP_TYPES["shell"].model_json_schema()
    assert problems(page, "checkFields", {"run": ["echo", "hi"], "timeout": 5}, shell) == []
    assert problems(page, "checkFields", {"retry": {"max_attempts": 3}}, shell) == []
    found = problems(
        page,
        "checkFields",
        {"run": 3, "env": {"A": 1}, "shel": "sh", "id": "x", "retry": {"max_attempts": 0}},
        shell,
    )
    assert found[0].startswith("run: not any of the allowed forms")
    assert "env.A: should be string, not number" in found
    assert any(p.startswith("shel: is not a field of this step; the fields are id,") for p in found)
    assert "id: the step's id cannot be edited" in found
    assert "retry.max_attempts: at least 1" in found
    assert problems(page, "checkFields", [1], shell) == [
        ": an edit is an object of the fields to replace"
    ]


def test_a_plan_is_checked_against_its_schema_and_its_own_ids(server: Served, page: Page) -> None:
    page.goto(server.url + "/ui/style.css")
    schema = plan_schema(["agent", "shell"])
    good = {
        "steps": [
            {"id": "a", "kind": "agent", "agent": "writer", "task": "t"},
            {"id": "b", "kind": "shell", "run": "ls", "needs": ["a"]},
        ]
    }
    assert problems(page, "checkPlan", good, schema) == []
    bad = {
        "steps": [
            {"id": "a", "kind": "http", "agent": "writer", "task": "t"},
            {"id": "a", "kind": "shell", "run": "ls", "needs": ["z"]},
            {"id": "bad id!", "kind": "shell"},
        ]
    }
    found = problems(page, "checkPlan", bad, schema)
    assert 'steps[0].kind: should be one of "agent", "shell"' in found
    assert 'steps[1].id: id "a" is used twice' in found
    assert 'steps[1].needs[0]: no step "z" in this plan' in found
    assert any(p.startswith("steps[2].id: should match") for p in found)
    assert problems(page, "checkPlan", {"steps": []}, schema) == ["steps: at least 1 items"]
    assert problems(page, "checkPlan", {}, schema) == ["steps: is required"]


def test_json_errors_say_where(server: Served, page: Page) -> None:
    page.goto(server.url + "/ui/style.css")
    found = page.evaluate(
        """async (text) => (await import("/ui/schema.js")).parseJson(text).problems""",
        json.dumps({"a": 1})[:-1] + ",\n  ]",
    )
    assert len(found) == 1
    assert found[0]["message"].startswith("not JSON (line 2, column 3)")
