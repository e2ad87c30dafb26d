"""Structured output over the OpenAI protocol: which mode asks for JSON, the schema as sent, and
the reply brought back to the caller's schema.

Modes: `json_schema` (response_format with the schema; strict on OpenAI proper when the schema
can be put in its strict subset), `json_object` (response_format JSON mode, the schema in the
prompt), `tool` (a forced `respond` tool whose parameters are the schema) and `prompt` (the
schema in the prompt alone). A schema whose root is not an object (an array, a string…) is
wrapped as `{"value": …}` and unwrapped from the reply; an empty schema becomes `{"type":
"object"}`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

Mode = Literal["json_schema", "json_object", "tool", "prompt"]
Setting = Literal["auto", "json_schema", "json_object", "tool", "prompt"]
SETTINGS: tuple[str, ...] = ("auto", "json_schema", "json_object", "tool", "prompt")
RESPOND_TOOL = "respond"
SCHEMA_NAME = "output"
WRAP_KEY = "value"
# After json_schema is refused, auto mode tries these in turn.
FALLBACKS: Mapping[str, Mode] = {"json_schema": "json_object", "json_object": "prompt"}
# Keywords outside OpenAI's strict subset: a schema using one is sent non-strict.
_NOT_STRICT = frozenset(
    {"patternProperties", "dependentRequired", "dependentSchemas", "if", "then", "else", "not"}
    | {"unevaluatedProperties", "propertyNames", "contains", "allOf", "oneOf"}
    | {"$ref", "$defs", "definitions"}  # references would need resolving: non-strict is safer
)
_REJECTION_WORDS = ("response_format", "json_schema", "json schema", "structured output")
_SERVER_REJECTION_WORDS = ("response_format", "'json_object'")
_INVALID_WORDS = (
    "invalid schema",
    "schema is invalid",
    "invalid json schema",
    "invalid_schema",
    "schema conversion failed",  # llama.cpp, when its grammar cannot express the schema
)


def object_schema(schema: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """(the schema to send, whether it was wrapped): providers want an object at the root."""
    if not schema:
        return {"type": "object"}, False
    if schema.get("type") == "object" or ("type" not in schema and "properties" in schema):
        return dict(schema), False
    wrapped = {
        "type": "object",
        "properties": {WRAP_KEY: dict(schema)},
        "required": [WRAP_KEY],
        "additionalProperties": False,
    }
    return wrapped, True


def unwrap(text: str, wrapped: bool, strict_from: Mapping[str, Any] | None) -> str:
    """The reply as the caller's schema expects it: the `value` taken out of a wrapped reply and
    the nulls a strict form put in for absent optional properties dropped. Text that is not
    JSON is returned as it is (the caller re-asks)."""
    if not wrapped and strict_from is None:
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    if strict_from is not None:
        value = drop_added_nulls(value, strict_from)
    if wrapped:
        if not isinstance(value, dict) or WRAP_KEY not in value:
            return text
        value = value[WRAP_KEY]
    return json.dumps(value, ensure_ascii=False)


# -- OpenAI's strict subset ----------------------------------------------------------------------


def strict_form(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """The schema in OpenAI's strict subset, or None when it cannot be put there: every object
    lists its properties, all required (optional ones made nullable), no extra properties."""
    if _NOT_STRICT & schema.keys():
        return None
    out: dict[str, Any] = dict(schema)
    if "anyOf" in out:
        options = [strict_form(item) for item in out["anyOf"]]
        if any(item is None for item in options):
            return None
        out["anyOf"] = options
    if "items" in out:
        if not isinstance(out["items"], Mapping) or (item := strict_form(out["items"])) is None:
            return None
        out["items"] = item
    return _strict_object(out) if _is_object(out) else out


def _strict_object(out: dict[str, Any]) -> dict[str, Any] | None:
    properties = out.get("properties")
    if not isinstance(properties, Mapping) or out.get("additionalProperties", False) is not False:
        return None
    required = set(out.get("required", ()))
    fixed: dict[str, Any] = {}
    for name, sub in properties.items():
        strict_sub = strict_form(sub) if isinstance(sub, Mapping) else None
        if strict_sub is None:
            return None
        fixed[name] = strict_sub if name in required else _nullable(strict_sub)
    return out | {"properties": fixed, "required": list(fixed), "additionalProperties": False}


def _is_object(schema: Mapping[str, Any]) -> bool:
    kind = schema.get("type")
    return kind == "object" or (kind is None and "properties" in schema)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if isinstance(kind, str) and kind != "null":
        return schema | {"type": [kind, "null"]}
    if isinstance(kind, list) and "null" not in kind:
        return schema | {"type": [*kind, "null"]}
    if "enum" in schema and None not in schema["enum"]:
        return schema | {"enum": [*schema["enum"], None]}
    if kind is None and "anyOf" in schema:
        return schema | {"anyOf": [*schema["anyOf"], {"type": "null"}]}
    return schema


def drop_added_nulls(value: Any, schema: Mapping[str, Any]) -> Any:
    """Undo `strict_form` on a reply: a null for a property the original schema did not require
    means the property was left out."""
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [drop_added_nulls(item, schema["items"]) for item in value]
    properties = schema.get("properties")
    if not isinstance(value, dict) or not isinstance(properties, Mapping):
        return value
    required = set(schema.get("required", ()))
    return {
        key: drop_added_nulls(item, properties.get(key, {}))
        for key, item in value.items()
        if item is not None or key in required
    }


# -- prompts and server replies ------------------------------------------------------------------


def schema_instruction(schema: Mapping[str, Any]) -> str:
    """What the prompt says when the schema cannot go in the request itself."""
    text = json.dumps(schema, sort_keys=True, ensure_ascii=False)
    return f"Reply with one JSON value only, no prose, matching this JSON Schema:\n{text}"


def rejects_response_format(status: int | None, message: str) -> bool:
    """A refusal that names the structured-output request (the server lacks the mode): a
    400-class answer, or a 500 whose message names it (llama-cpp-python validates the request
    after routing and answers 500: "response_format … Input should be 'text' or 'json_object'")."""
    lowered = message.lower()
    if status == 500:
        return any(word in lowered for word in _SERVER_REJECTION_WORDS)
    return (
        status in (400, 422, 501)
        and any(word in lowered for word in _REJECTION_WORDS)
        and not schema_invalid(status, message)
    )


def schema_invalid(status: int | None, message: str) -> bool:
    """The server took the mode but found the schema itself invalid."""
    lowered = message.lower()
    return status in (400, 422) and any(word in lowered for word in _INVALID_WORDS)
