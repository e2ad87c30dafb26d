"""The offline `scripted:PATH` model: replays a YAML or JSON script of replies by agent and turn.

The script lists, per agent (matched case-insensitively; `"*"` serves any agent without its own
list), the replies to its 1st, 2nd, … call: text, tool calls, JSON, or an error raised like a
provider's. Demos and tests use it so that whole workflows run without a network.
"""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path

from podium.errors import ModelError
from podium.llm._script_file import (
    ANY_AGENT,
    PROVIDER,
    STEP_KEY_PREFIX,
    AgentScript,
    Script,
    ScriptedFailure,
    ScriptedTurn,
    load_script,
    parse_script,
)
from podium.llm.base import (
    DeltaSink,
    Message,
    ModelRequest,
    ModelResponse,
    ToolCall,
    caller,
    estimate_usage,
)

_WORD_CHUNK = re.compile(r"(?<=\s)(?=\S)")

__all__ = [
    "AgentScript",
    "Script",
    "ScriptedFailure",
    "ScriptedModel",
    "ScriptedTurn",
    "load_script",
    "parse_script",
    "word_chunks",
]


def word_chunks(text: str) -> list[str]:
    """Split text into word-sized fragments (each with its trailing space) that join back to it."""
    return [chunk for chunk in _WORD_CHUNK.split(text) if chunk]


# -- the model ---------------------------------------------------------------------------------


class ScriptedModel:
    """Replays a script. Turn numbers count this instance's calls per agent, from 1."""

    def __init__(self, script: Script, *, name: str | None = None) -> None:
        self.script = script
        self.name = name or f"{PROVIDER}:{script.source}"
        self._served: dict[str, int] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_path(cls, path: str | Path) -> ScriptedModel:
        return cls(load_script(path), name=f"{PROVIDER}:{path}")

    @classmethod
    def from_data(cls, data: object, *, source: str = "<inline script>") -> ScriptedModel:
        return cls(parse_script(data, source=source))

    def turns_served(self, agent: str | None) -> int:
        return self._served.get(_agent_key(agent), 0)

    def reset(self) -> None:
        """Start every agent over at turn 1."""
        with self._lock:
            self._served.clear()

    async def complete(
        self, request: ModelRequest, *, on_delta: DeltaSink | None = None
    ) -> ModelResponse:
        agent = _agent_key(request.agent)
        key = self._key(request, agent)
        turn_number = self._next_turn(key)
        turn = self._turn_for(request, key, turn_number)
        await self._wait(turn, request, on_delta)
        if turn.failure is not None:
            raise self._error(request, turn_number, turn.failure)
        message = _message(turn, agent, turn_number)
        return ModelResponse(
            message=message,
            usage=turn.usage or estimate_usage(request, message),
            model=self.script.model,
            finish_reason="tool_calls" if message.tool_calls else "stop",
        )

    def _next_turn(self, agent: str) -> int:
        with self._lock:
            self._served[agent] = self._served.get(agent, 0) + 1
            return self._served[agent]

    def _key(self, request: ModelRequest, agent: str) -> str:
        """A step the script lists by id is served its own turns; any other, its agent's."""
        if request.step_id is not None and request.step_id in self.script.steps:
            return STEP_KEY_PREFIX + request.step_id
        return agent

    def _turn_for(self, request: ModelRequest, key: str, number: int) -> ScriptedTurn:
        if key.startswith(STEP_KEY_PREFIX):
            script: AgentScript | None = self.script.steps[key.removeprefix(STEP_KEY_PREFIX)]
        else:
            script = self.script.agents.get(key) or self.script.agents.get(ANY_AGENT)
        if script is None:
            raise self._unknown_agent(request)
        if number <= len(script.turns):
            return script.turns[number - 1]
        if script.repeat_last:
            return script.turns[-1]
        raise self._exhausted(request, number, len(script.turns))

    async def _wait(
        self, turn: ScriptedTurn, request: ModelRequest, on_delta: DeltaSink | None
    ) -> None:
        limit = request.options.timeout_seconds
        if limit is not None and turn.delay_seconds > limit:
            await asyncio.sleep(limit)
            raise self._timeout(request, limit)
        if on_delta is None or turn.failure is not None:
            await asyncio.sleep(turn.delay_seconds)
        else:
            await _stream(turn.content, on_delta, turn.delay_seconds)

    def _model_error(
        self,
        request: ModelRequest,
        text: str,
        *,
        retryable: bool = False,
        error_type: str = "script",
        status: int | None = None,
    ) -> ModelError:
        return ModelError(
            f"{caller(self.name, request)}: {text}",
            retryable=retryable,
            provider=PROVIDER,
            status=status,
            error_type=error_type,
        )

    def _error(self, request: ModelRequest, number: int, failure: ScriptedFailure) -> ModelError:
        status = f"HTTP {failure.status} " if failure.status is not None else ""
        text = f"{status}{failure.message} (scripted failure, turn {number})"
        return self._model_error(
            request,
            text,
            retryable=failure.retryable,
            error_type=failure.error_type,
            status=failure.status,
        )

    def _timeout(self, request: ModelRequest, limit: float) -> ModelError:
        text = f"timed out after {limit:g}s (the scripted delay is longer)"
        return self._model_error(request, text, retryable=True, error_type="timeout")

    def _unknown_agent(self, request: ModelRequest) -> ModelError:
        known = ", ".join(sorted(self.script.agents))
        who = f"agent {request.agent!r}" if request.agent else "a request with no agent"
        return self._model_error(
            request,
            f"the script {self.script.source} has no turns for {who}; it scripts: {known}. "
            "Add the agent under `agents:`, or a `*` entry for any agent",
        )

    def _exhausted(self, request: ModelRequest, number: int, count: int) -> ModelError:
        agent = request.agent or ANY_AGENT
        return self._model_error(
            request,
            f"agent {agent!r} ran out of scripted turns at turn {number}; the script "
            f"{self.script.source} has {count} for it. Add turns, or set `repeat_last: true` "
            "for the agent",
        )


def _agent_key(agent: str | None) -> str:
    return (agent or "").strip().lower()


def _message(turn: ScriptedTurn, agent: str, number: int) -> Message:
    label = re.sub(r"\W+", "_", agent).strip("_") or "agent"
    calls = tuple(
        ToolCall(call.id or f"call_{label}_{number}_{index}", call.name, call.arguments)
        for index, call in enumerate(turn.tool_calls, start=1)
    )
    return Message(role="assistant", content=turn.content, tool_calls=calls)


async def _stream(text: str, on_delta: DeltaSink, delay_seconds: float) -> None:
    """Send the text in word-sized deltas, spreading the scripted delay between them."""
    chunks = word_chunks(text)
    pause = delay_seconds / (len(chunks) + 1)
    for chunk in chunks:
        await asyncio.sleep(pause)
        on_delta(chunk)
    await asyncio.sleep(pause)
