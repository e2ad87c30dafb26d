"""Language models behind one `Model` protocol, chosen by a `provider:model` string.

`function:<name>` resolves to a model registered here under that name (`podium.testing`'s
`register_function_model` is the usual way in): the registry lives with the resolver, so this
package never imports the test fakes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any

from podium.agents import AgentOptions
from podium.config import ProviderConfig
from podium.errors import UsageError
from podium.llm.base import (
    AzureSettings,
    Message,
    Model,
    ModelOptions,
    ModelRequest,
    ModelResponse,
    ToolCall,
    ToolSpec,
    Usage,
)
from podium.llm.base import model_options as _model_options

__all__ = [
    "AzureSettings",
    "Message",
    "Model",
    "ModelOptions",
    "ModelRequest",
    "ModelResponse",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "clear_model_cache",
    "function_model",
    "is_known_provider",
    "register_function_model",
    "resolve_model",
    "unknown_provider",
    "unregister_function_model",
]

_FORMS = (
    "openai:<model> (also vLLM, Ollama, LM Studio… with base_url), anthropic:<model>, "
    "scripted:<path to a YAML or JSON script>, function:<name> (see register_function_model)"
)

_cache: dict[Hashable, Model] = {}
_cache_lock = threading.Lock()


def resolve_model(
    spec: str,
    *,
    providers: Mapping[str, ProviderConfig] | None = None,
    agent: str | None = None,
    step: str | None = None,
    **options: Any,
) -> Model:
    """The model for `provider:model`, built on first use and shared afterwards.

    `providers` are the project's named providers (`podium.config`): `local:smollm2` is model
    smollm2 of the provider `local`, built with its settings and its key variable read now
    (UsageError naming `agent`, `step`, the provider and the variable if it is not set).
    `options` go to the adapter's constructor (`base_url`, `api_key`, `timeout_seconds`, …);
    the scripted and function models take none and ignore them. One instance is shared per spec
    and options (per script file, for `scripted:`), so its clients and turn counters are too.
    """
    provider, target = _split(spec)
    named = (providers or {}).get(provider)
    if named is not None:
        options = {**_named_options(provider, named, agent, step), **options}
        provider = "openai"  # azure too: the OpenAI adapter with `azure` settings
    if provider == "function":
        return function_model(target)
    build = _BUILDERS.get(provider)
    if build is None:
        raise UsageError(unknown_provider(provider, spec, providers))
    key = _cache_key(provider, target, options)
    with _cache_lock:
        model = _cache.get(key)
        if model is None:
            model = _cache[key] = build(target, options)
    return model


def unknown_provider(
    provider: str, spec: str, providers: Mapping[str, ProviderConfig] | None = None
) -> str:
    """The error for a model string whose provider is neither built in nor configured."""
    configured = ", ".join(sorted(providers or {})) or "none"
    return (
        f"unknown model provider {provider!r} in {spec!r}; use one of: {_FORMS}; or a provider "
        f"configured in podium.toml [providers] (configured: {configured})"
    )


def is_known_provider(provider: str, providers: Mapping[str, ProviderConfig] | None) -> bool:
    return provider in _BUILDERS or provider == "function" or provider in (providers or {})


def _named_options(
    name: str, provider: ProviderConfig, agent: str | None, step: str | None
) -> dict[str, Any]:
    """The adapter's constructor arguments for a configured provider."""
    options: dict[str, Any] = {"api_key": provider.api_key(name, agent=agent, step=step)}
    if provider.base_url is not None:
        options["base_url"] = provider.base_url
    if provider.headers:
        options["headers"] = dict(provider.headers)
    if provider.options != AgentOptions():
        options["defaults"] = _model_options(provider.options)
    if provider.images is not None:
        options["images"] = provider.images
    if provider.structured_output is not None:
        options["structured_output"] = provider.structured_output
    if provider.type == "azure" and provider.endpoint and provider.api_version:  # both validated
        options["azure"] = AzureSettings(
            endpoint=provider.endpoint,
            api_version=provider.api_version,
            deployment=provider.deployment,
        )
    return options


def clear_model_cache() -> None:
    """Forget resolved models: the next `resolve_model` builds fresh ones (fresh turn counters)."""
    with _cache_lock:
        _cache.clear()


# -- the registry behind "function:NAME" -------------------------------------------------------

_FUNCTION_PREFIX = "function:"
_functions: dict[str, Model] = {}


def register_function_model(name: str, model: Model) -> None:
    """Make `resolve_model("function:<name>")` return `model` (a later call replaces it)."""
    key = _function_key(name)
    with _cache_lock:
        _functions[key] = model


def unregister_function_model(name: str) -> None:
    with _cache_lock:
        _functions.pop(_function_key(name), None)


def function_model(name: str) -> Model:
    """The model registered under `name` (with or without the `function:` prefix)."""
    key = _function_key(name)
    with _cache_lock:
        model = _functions.get(key)
        known = ", ".join(sorted(_functions)) or "none"
    if model is None:
        raise UsageError(
            f"no function model named {key!r} (registered: {known}); call "
            f"podium.testing.register_function_model({key!r}, FunctionModel(fn)) first"
        )
    return model


def _function_key(name: str) -> str:
    key = name.removeprefix(_FUNCTION_PREFIX).strip()
    if not key:
        raise UsageError("a function model needs a name, as in 'function:echo'")
    return key


# -- resolving --------------------------------------------------------------------------------


def _split(spec: str) -> tuple[str, str]:
    provider, sep, target = spec.partition(":")
    provider, target = provider.strip().lower(), target.strip()
    if not sep or not provider:
        raise UsageError(f"model {spec!r} has no provider prefix; write it as one of: {_FORMS}")
    if not target:
        raise UsageError(f"model {spec!r} names no model after {provider!r}; use one of: {_FORMS}")
    return provider, target


def _cache_key(provider: str, target: str, options: Mapping[str, Any]) -> Hashable:
    if provider == "scripted":
        return provider, str(Path(target).expanduser().resolve())
    return provider, target, _freeze(options)


def _freeze(value: Any) -> Hashable:
    """A hashable stand-in for an options value; unhashable objects count by identity."""
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple | set | frozenset):
        return type(value).__name__, tuple(_freeze(item) for item in value)
    try:
        hash(value)
    except TypeError:
        return "id", id(value)
    return type(value).__name__, value


def _openai(model: str, options: Mapping[str, Any]) -> Model:
    from podium.llm.openai import OpenAIModel

    return OpenAIModel(model, **options)


def _anthropic(model: str, options: Mapping[str, Any]) -> Model:
    try:
        import anthropic  # noqa: F401
    except ImportError:
        raise UsageError(
            f"anthropic:{model} needs the anthropic package; install podium[anthropic] "
            "(pip install 'podium[anthropic]')"
        ) from None
    from podium.llm.anthropic import AnthropicModel

    return AnthropicModel(model, **options)


def _scripted(path: str, options: Mapping[str, Any]) -> Model:
    from podium.llm.scripted import ScriptedModel

    return ScriptedModel.from_path(path)


_BUILDERS: dict[str, Callable[[str, Mapping[str, Any]], Model]] = {
    "openai": _openai,
    "anthropic": _anthropic,
    "scripted": _scripted,
}
