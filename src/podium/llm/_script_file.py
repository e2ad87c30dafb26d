"""Reading scripted-model scripts: the YAML or JSON document, checked with every problem's path,
into `Script` values that `podium.llm.scripted.ScriptedModel` serves."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from podium.errors import UsageError
from podium.llm.base import ToolCall, Usage

PROVIDER = "scripted"
ANY_AGENT = "*"
_TOP_KEYS = frozenset({"model", "agents", "steps"})
STEP_KEY_PREFIX = "step:"  # served-turn counters of `steps:` entries, beside the agents' own
_AGENT_KEYS = frozenset({"turns", "repeat_last"})
_TURN_KEYS = frozenset({"content", "json", "tool_calls", "error", "usage", "delay_seconds"})
_CALL_KEYS = frozenset({"name", "arguments", "id"})
_ERROR_KEYS = frozenset({"status", "message", "retryable", "type"})
_USAGE_KEYS = frozenset({"input_tokens", "output_tokens"})


# -- the script, parsed ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScriptedFailure:
    message: str
    retryable: bool
    error_type: str
    status: int | None = None


@dataclass(frozen=True, slots=True)
class ScriptedTurn:
    """One scripted reply: text and/or tool calls, or a failure to raise."""

    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()  # an empty id is filled in per turn
    failure: ScriptedFailure | None = None
    usage: Usage | None = None
    delay_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class AgentScript:
    turns: tuple[ScriptedTurn, ...]
    repeat_last: bool = False


@dataclass(frozen=True, slots=True)
class Script:
    """A parsed script. `agents` is keyed by lower-cased agent name (or `"*"`); `steps` by step
    id (as written): a step listed there gets its own turns, in the order it asks, whatever agent
    it runs — what `podium script RUN` writes, so a replay does not depend on which of several
    concurrent steps asks first."""

    source: str
    model: str
    agents: Mapping[str, AgentScript]
    steps: Mapping[str, AgentScript] = field(default_factory=dict)


class _Malformed(Exception):
    """Raised while parsing; `parse_script` turns it into a UsageError naming the script."""


def _fail(where: str, problem: str) -> NoReturn:
    raise _Malformed(f"{where}: {problem}")


def parse_script(data: object, *, source: str) -> Script:
    """Check and convert a loaded script; a malformed one is a UsageError naming `source`."""
    try:
        return _script(data, source)
    except _Malformed as exc:
        raise UsageError(f"scripted model script {source} is malformed: {exc}") from None


def load_script(path: str | Path) -> Script:
    """Read and parse a script file (`.json` as JSON, anything else as YAML)."""
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"scripted model script {file} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read scripted model script {file}: {exc}") from None
    return parse_script(_decode(text, file), source=str(file))


def _decode(text: str, file: Path) -> object:
    try:
        return json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if file.suffix.lower() == ".json" else "YAML"
        raise UsageError(f"scripted model script {file} is not valid {kind}: {exc}") from None


def _script(data: object, source: str) -> Script:
    top = _mapping(data, "script", "a mapping with `agents:` (and optionally `model:`)")
    _known_keys(top, _TOP_KEYS, "script")
    model = top.get("model", PROVIDER)
    if not isinstance(model, str) or not model:
        _fail("model", "must be a non-empty string (the model name reported in responses)")
    if "agents" not in top and "steps" not in top:
        _fail("script", "has no `agents:`; add `agents: {<agent>: [<turns>]}`")
    agents = _agents(top["agents"]) if "agents" in top else {}
    steps = _steps(top["steps"]) if "steps" in top else {}
    return Script(source=source, model=model, agents=agents, steps=steps)


def _steps(raw: object) -> dict[str, AgentScript]:
    entries = _mapping(raw, "steps", "a mapping of step id to its list of turns")
    steps: dict[str, AgentScript] = {}
    for key, value in entries.items():
        if not isinstance(key, str) or not key.strip():
            _fail("steps", f"step id {key!r} must be a non-empty string")
        steps[key] = _agent(value, f"steps.{key}")
    return steps


def _agents(raw: object) -> dict[str, AgentScript]:
    entries = _mapping(raw, "agents", "a mapping of agent name to its list of turns")
    agents: dict[str, AgentScript] = {}
    for key, value in entries.items():
        if not isinstance(key, str) or not key.strip():
            _fail("agents", f"agent name {key!r} must be a non-empty string")
        name = key.strip().lower()
        if name in agents:
            _fail(f"agents.{key}", "repeats an agent name (agent names ignore case)")
        agents[name] = _agent(value, f"agents.{key}")
    if not agents:
        _fail("agents", "is empty; script at least one agent (or `*` for any agent)")
    return agents


def _agent(raw: object, where: str) -> AgentScript:
    repeat_last = False
    if isinstance(raw, Mapping):
        _known_keys(raw, _AGENT_KEYS, where)
        repeat_last = _bool(raw.get("repeat_last", False), f"{where}.repeat_last")
        raw, where = raw.get("turns"), f"{where}.turns"
    if not isinstance(raw, list):
        _fail(where, "must be a list of turns (or a mapping with `turns:` and `repeat_last:`)")
    turns: list[ScriptedTurn] = []
    for item in raw:
        if isinstance(item, Mapping) and set(item) == {"repeat_last"}:
            repeat_last = _bool(item["repeat_last"], f"{where}.repeat_last")
        else:
            turns.append(_turn(item, f"{where} turn {len(turns) + 1}"))
    if not turns:
        _fail(where, "has no turns; list at least one reply")
    return AgentScript(tuple(turns), repeat_last)


def _turn(raw: object, where: str) -> ScriptedTurn:
    if isinstance(raw, str):
        return ScriptedTurn(content=raw)
    turn = _mapping(raw, where, "a mapping with content, json, tool_calls or error")
    _known_keys(turn, _TURN_KEYS, where)
    _check_turn_shape(turn, where)
    return ScriptedTurn(
        content=_content(turn, where),
        tool_calls=_calls(turn.get("tool_calls", []), f"{where}.tool_calls"),
        failure=_failure(turn["error"], f"{where}.error") if "error" in turn else None,
        usage=_usage(turn["usage"], f"{where}.usage") if "usage" in turn else None,
        delay_seconds=_seconds(turn.get("delay_seconds", 0), f"{where}.delay_seconds"),
    )


def _check_turn_shape(turn: Mapping[str, Any], where: str) -> None:
    replies = [key for key in ("content", "json", "tool_calls") if key in turn]
    if "content" in turn and "json" in turn:
        _fail(where, "has both content and json; keep one")
    if "error" in turn and replies:
        _fail(where, f"has error together with {', '.join(replies)}; an error turn replies nothing")
    if not replies and "error" not in turn:
        _fail(where, "needs one of content, json, tool_calls or error")


def _content(turn: Mapping[str, Any], where: str) -> str:
    if "json" in turn:
        try:
            return json.dumps(turn["json"], ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            _fail(f"{where}.json", f"cannot be serialised as JSON ({exc}); quote the value")
    content = turn.get("content", "")
    if not isinstance(content, str):
        _fail(f"{where}.content", f"must be a string, got {content!r}; quote it in the script")
    return content


def _calls(raw: object, where: str) -> tuple[ToolCall, ...]:
    if not isinstance(raw, list):
        _fail(where, "must be a list of {name, arguments} mappings")
    return tuple(_call(item, f"{where}[{index}]") for index, item in enumerate(raw))


def _call(raw: object, where: str) -> ToolCall:
    call = _mapping(raw, where, "a mapping with name and arguments")
    _known_keys(call, _CALL_KEYS, where)
    name, call_id = call.get("name"), call.get("id")
    if not isinstance(name, str) or not name:
        _fail(f"{where}.name", "is required: the name of the tool to call")
    if call_id is not None and not isinstance(call_id, str):
        _fail(f"{where}.id", f"must be a string, got {call_id!r}")
    arguments = _mapping(call.get("arguments", {}), f"{where}.arguments", "a mapping")
    return ToolCall(call_id or "", name, dict(arguments))


def _failure(raw: object, where: str) -> ScriptedFailure:
    spec = {"message": raw} if isinstance(raw, str) else _mapping(raw, where, "a mapping")
    _known_keys(spec, _ERROR_KEYS, where)
    status = spec.get("status")
    if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
        _fail(f"{where}.status", f"must be an HTTP status code such as 429, got {status!r}")
    error_type = spec.get("type") or _error_type(status)
    if not isinstance(error_type, str):
        _fail(f"{where}.type", "must be a string such as rate_limit, timeout or server")
    message = spec.get("message") or f"scripted failure ({error_type})"
    default = _retryable(status, error_type)
    retryable = _bool(spec.get("retryable", default), f"{where}.retryable")
    return ScriptedFailure(str(message), retryable, error_type, status)


def _error_type(status: int | None) -> str:
    """The same classes the provider adapters report."""
    if status is None:
        return "model"
    named = {408: "timeout", 429: "rate_limit", 401: "auth", 403: "auth", 404: "not_found"}
    return named.get(status) or ("server" if status >= 500 else "bad_request")


def _retryable(status: int | None, error_type: str) -> bool:
    if status is None:
        return error_type in {"timeout", "connection", "rate_limit", "server"}
    return status in {408, 429} or status >= 500


def _usage(raw: object, where: str) -> Usage:
    usage = _mapping(raw, where, "a mapping with input_tokens and output_tokens")
    _known_keys(usage, _USAGE_KEYS, where)
    counts = {key: usage.get(key, 0) for key in _USAGE_KEYS}
    for key, count in counts.items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            _fail(f"{where}.{key}", f"must be a whole number of tokens, got {count!r}")
    return Usage(input_tokens=counts["input_tokens"], output_tokens=counts["output_tokens"])


def _seconds(raw: object, where: str) -> float:
    if not isinstance(raw, int | float) or isinstance(raw, bool) or raw < 0:
        _fail(where, f"must be a number of seconds ≥ 0, got {raw!r}")
    return float(raw)


def _bool(raw: object, where: str) -> bool:
    if not isinstance(raw, bool):
        _fail(where, f"must be true or false, got {raw!r}")
    return raw


def _mapping(raw: object, where: str, expected: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        _fail(where, f"must be {expected}, got {type(raw).__name__}")
    return raw


def _known_keys(raw: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(str(key) for key in raw if key not in allowed)
    if unknown:
        _fail(where, f"unknown key {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


# -- shared by the fakes -----------------------------------------------------------------------
