"""A run's secrets in this process: the values its redactor replaces (secret inputs, provider
keys, `[secrets] env`, the variables shell steps name in `secrets:`, MCP servers' env and header
values), gathered from what the run recorded plus this process's memory and environment, never
from a stored value; and `reveal`, which puts a secret input's value in place of its placeholder
at the execution boundary, just before an executor uses the step."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from podium.config import ProjectConfig
from podium.core.redact import Redactor
from podium.core.state import RunState
from podium.errors import StepExecutionError
from podium.spec.loop import walk
from podium.spec.model import ShellStep, StepBase
from podium.spec.secrets import default_env, is_placeholder, placeholders

# the keys the built-in model adapters read (llm/openai.py, llm/anthropic.py)
WELL_KNOWN_ENV = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "ANTHROPIC_API_KEY")


@dataclass(frozen=True, slots=True)
class SecretInput:
    """A `type: secret` input of the run: its placeholder, the variable it is read from and its
    value here (None: neither this process's memory nor its environment has it)."""

    name: str
    env: str
    value: str | None


@dataclass(frozen=True, slots=True)
class RunSecrets:
    redactor: Redactor
    inputs: Mapping[str, SecretInput] = field(default_factory=dict)  # by placeholder


def run_secrets(
    state: RunState, config: ProjectConfig, memory: Mapping[str, str] | None = None
) -> RunSecrets:
    """The secrets of `state`'s run as this process knows them. `memory` maps a placeholder to
    the value the submitting process was given."""
    inputs = _secret_inputs(state, memory or {})
    named = {i.name: i.value for i in inputs.values() if i.value is not None}
    env_names = [*config.secret_env(), *WELL_KNOWN_ENV, *_shell_secrets(state)]
    for name in dict.fromkeys(env_names):
        value = os.environ.get(name)
        if value:
            named.setdefault(name, value)
    redactor = Redactor(named, config.secret_values())
    return RunSecrets(redactor, inputs)


def _secret_inputs(state: RunState, memory: Mapping[str, str]) -> dict[str, SecretInput]:
    found = {}
    for name, spec in state.workflow.inputs.items():
        recorded = state.inputs.get(name)
        if spec.type != "secret" or not isinstance(recorded, str) or not is_placeholder(recorded):
            continue
        env = spec.env or default_env(name)
        value = memory.get(recorded) or os.environ.get(env) or None
        found[recorded] = SecretInput(name, env, value)
    return found


def _shell_secrets(state: RunState) -> list[str]:
    specs = [step for _, step in walk(state.workflow.steps)]
    specs += [s.spec for s in state.steps.values()]  # a plan's children too
    return [name for spec in specs if isinstance(spec, ShellStep) for name in spec.secrets]


def reveal(step: StepBase, secrets: RunSecrets) -> StepBase:
    """`step` with each secret input's value in place of its placeholder; StepExecutionError
    (not retryable) naming the input and the variable to set when the value is not known here."""
    if not secrets.inputs:
        return step
    revealed: StepBase = _swap(step, secrets.inputs)
    return revealed


def _swap(value: Any, inputs: Mapping[str, SecretInput]) -> Any:
    if isinstance(value, str):
        return _swap_text(value, inputs) if "[secret:" in value else value
    if isinstance(value, dict):
        return {k: _swap(v, inputs) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_swap(v, inputs) for v in value)
    if isinstance(value, BaseModel):
        update = {k: _swap(v, inputs) for k, v in value.__dict__.items()}
        return value.model_copy(update=update)
    return value


def _swap_text(text: str, inputs: Mapping[str, SecretInput]) -> str:
    pieces, at = [], 0
    for match in placeholders(text):
        known = inputs.get(match.group(0))
        if known is None:
            continue  # not one of this run's: left as it is
        if known.value is None:
            raise StepExecutionError(
                f"input {known.name} is a secret: set the environment variable {known.env} and "
                "retry the step (its value is never stored, and this process was not given it)",
                retryable=False,
                error_type="secret",
            )
        pieces += [text[at : match.start()], known.value]
        at = match.end()
    return "".join(pieces) + text[at:]


__all__ = ["RunSecrets", "SecretInput", "reveal", "run_secrets"]
