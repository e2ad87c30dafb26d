"""`resolve_model` picks the adapter by its `provider:` prefix and shares instances per process."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import podium.llm
from podium.errors import UsageError
from podium.llm import Message, ModelRequest, clear_model_cache, resolve_model
from podium.llm.scripted import ScriptedModel
from podium.testing import FunctionModel, register_function_model, unregister_function_model


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    clear_model_cache()
    yield
    clear_model_cache()


def ask(agent: str) -> ModelRequest:
    return ModelRequest(messages=(Message(role="user", content="hi"),), agent=agent)


def script(tmp_path: Path, text: str = "agents: {a: [one, two]}") -> Path:
    path = tmp_path / "script.yaml"
    path.write_text(text)
    return path


def test_openai_models_get_the_name_and_options() -> None:
    from podium.llm.openai import OpenAIModel

    model = resolve_model("openai:gpt-4o-mini", base_url="http://localhost:11434/v1")
    assert isinstance(model, OpenAIModel)
    assert (model.name, model.model) == ("openai:gpt-4o-mini", "gpt-4o-mini")
    same = resolve_model("openai:gpt-4o-mini", base_url="http://localhost:11434/v1")
    assert same is model
    assert resolve_model("openai:gpt-4o-mini") is not model


def test_anthropic_models_resolve_to_the_anthropic_adapter() -> None:
    from podium.llm.anthropic import AnthropicModel

    model = resolve_model("anthropic:claude-3-5-haiku-latest", api_key="test")
    assert isinstance(model, AnthropicModel)
    assert model.name == "anthropic:claude-3-5-haiku-latest"


def test_anthropic_without_its_package_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "anthropic", None)
    with pytest.raises(UsageError, match=r"install podium\[anthropic\]"):
        resolve_model("anthropic:claude-sonnet-4")


async def test_scripted_models_share_turn_counters_per_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = script(tmp_path)
    first = resolve_model(f"scripted:{path}")
    assert isinstance(first, ScriptedModel)
    assert first.name == f"scripted:{path}"
    monkeypatch.chdir(tmp_path)
    second = resolve_model("scripted:./script.yaml", base_url="ignored")
    assert second is first
    assert (await first.complete(ask("a"))).text == "one"
    assert (await second.complete(ask("a"))).text == "two"


async def test_clearing_the_cache_starts_scripts_over(tmp_path: Path) -> None:
    spec = f"scripted:{script(tmp_path)}"
    assert (await resolve_model(spec).complete(ask("a"))).text == "one"
    clear_model_cache()
    assert (await resolve_model(spec).complete(ask("a"))).text == "one"


def test_a_malformed_script_fails_at_resolve_time(tmp_path: Path) -> None:
    path = script(tmp_path, "agents: {a: []}")
    with pytest.raises(UsageError, match=rf"{path.name} is malformed: agents\.a: has no turns"):
        resolve_model(f"scripted:{path}")
    with pytest.raises(UsageError, match="does not exist"):
        resolve_model(f"scripted:{tmp_path / 'missing.yaml'}")


async def test_function_models_come_from_the_testing_registry() -> None:
    model = FunctionModel(lambda request: f"echo {request.agent}")
    register_function_model("echo", model)
    try:
        assert resolve_model("function:echo") is model
        assert (await resolve_model("function:echo").complete(ask("a"))).text == "echo a"
    finally:
        unregister_function_model("echo")
    with pytest.raises(
        UsageError, match=r"no function model named 'echo'.*register_function_model"
    ):
        resolve_model("function:echo")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("gpt-4o-mini", "has no provider prefix"),
        (":gpt-4o", "has no provider prefix"),
        ("openai:", "names no model after 'openai'"),
        ("ollama:llama3", "unknown model provider 'ollama'"),
    ],
)
def test_bad_specs_list_the_accepted_forms(spec: str, expected: str) -> None:
    with pytest.raises(UsageError) as caught:
        resolve_model(spec)
    message = str(caught.value)
    assert expected in message
    for form in ("openai:<model>", "anthropic:<model>", "scripted:<path", "function:<name"):
        assert form in message


def test_all_is_complete() -> None:
    own = {
        name
        for name, value in vars(podium.llm).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("podium.llm")
    }
    assert own == set(podium.llm.__all__)
