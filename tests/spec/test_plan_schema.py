"""The plan and verdict schemas fit OpenAI's strict structured-output subset as the openai adapter
sends them, and still accept the replies of servers that leave optional fields out."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from podium.llm._structured import drop_added_nulls, strict_form
from podium.spec.plan import PLAN_SCHEMA, VERDICT_SCHEMA, plan_schema

SCHEMAS = {
    "plan": PLAN_SCHEMA,
    "verdict": VERDICT_SCHEMA,
    "plan of shell steps": plan_schema(["shell"]),
    "plan of every kind": plan_schema(["agent", "shell", "http", "file", "workflow"]),
}


def objects(schema: Mapping[str, Any], path: str = "$") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every object schema inside `schema`, with where it is."""
    if schema.get("type") == "object" or "object" in (schema.get("type") or []):
        yield path, schema
    for name, sub in (schema.get("properties") or {}).items():
        yield from objects(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), Mapping):
        yield from objects(schema["items"], f"{path}[]")


def types(schema: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield schema
    for sub in (schema.get("properties") or {}).values():
        yield from types(sub)
    if isinstance(schema.get("items"), Mapping):
        yield from types(schema["items"])


@pytest.mark.parametrize("name", SCHEMAS)
def test_the_schema_as_sent_is_in_the_strict_subset(name: str) -> None:
    sent = strict_form(SCHEMAS[name])
    assert sent is not None, f"the {name} schema cannot be sent strict"
    found = list(objects(sent))
    assert found, "the root is an object"
    for path, schema in found:
        assert schema["additionalProperties"] is False, path
        assert set(schema["required"]) == set(schema["properties"]), path
    for schema in types(sent):
        assert "type" in schema, f"every schema names its type: {schema}"
    Draft202012Validator.check_schema(sent)


@pytest.mark.parametrize("name", SCHEMAS)
def test_only_the_optional_properties_change_going_nullable(name: str) -> None:
    original, sent = SCHEMAS[name], strict_form(SCHEMAS[name])
    assert sent is not None
    for (path, before), (_, after) in zip(objects(original), objects(sent), strict=True):
        assert before["additionalProperties"] is False, path
        for prop, schema in before["properties"].items():
            if prop in before["required"]:
                assert after["properties"][prop]["type"] == schema["type"]
            else:
                assert after["properties"][prop]["type"] == [schema["type"], "null"]


def test_a_strict_reply_validates_against_the_plan_schema_once_nulls_are_dropped() -> None:
    strict_reply = {
        "summary": None,
        "steps": [{"id": "a", "agent": "writer", "task": "write", "needs": None}],
    }
    sent = strict_form(PLAN_SCHEMA)
    assert sent is not None
    Draft202012Validator(sent).validate(strict_reply)
    plain = drop_added_nulls(strict_reply, PLAN_SCHEMA)
    assert plain == {"steps": [{"id": "a", "agent": "writer", "task": "write"}]}
    Draft202012Validator(PLAN_SCHEMA).validate(plain)


def test_a_verdict_without_reasons_still_fits() -> None:
    Draft202012Validator(VERDICT_SCHEMA).validate({"verdict": "pass"})
    with pytest.raises(Exception, match="Additional properties"):
        Draft202012Validator(VERDICT_SCHEMA).validate({"verdict": "pass", "mood": "good"})


def test_a_strict_reply_with_every_kind_validates_once_nulls_are_dropped() -> None:
    schema = plan_schema(["agent", "shell", "http", "file"])
    sent = strict_form(schema)
    assert sent is not None
    fields = sent["properties"]["steps"]["items"]["properties"]
    shell = dict.fromkeys(fields) | {"id": "ls", "kind": "shell", "run": "ls"}
    strict_reply = {"summary": None, "steps": [shell]}
    Draft202012Validator(sent).validate(strict_reply)
    plain = drop_added_nulls(strict_reply, schema)
    assert plain == {"steps": [{"id": "ls", "kind": "shell", "run": "ls"}]}
    Draft202012Validator(schema).validate(plain)
    with pytest.raises(Exception, match="'run' was unexpected"):  # shell is not offered
        Draft202012Validator(plan_schema(["agent", "file"])).validate(plain)
