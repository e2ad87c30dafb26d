"""The price table: longest-prefix matching, unpriced models, user price files from real files."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from podium.errors import UsageError
from podium.llm import prices
from podium.llm.base import Usage
from podium.llm.prices import PriceTable, builtin_table, cost, cost_usd, register_price

MILLION = Usage(input_tokens=1_000_000, output_tokens=1_000_000)


@pytest.fixture(autouse=True)
def fresh_default_table(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No user file leaks in from the machine, and registrations do not leak out of a test."""
    monkeypatch.delenv(prices.PRICES_ENV, raising=False)
    monkeypatch.setattr(prices, "USER_PRICES_PATH", tmp_path / "no-such-prices.yaml")
    prices.reset_prices()
    yield
    prices.reset_prices()


def test_known_models_are_priced_per_million_tokens() -> None:
    usage = Usage(input_tokens=2_000, output_tokens=1_000)
    assert cost_usd("openai:gpt-4o-mini", usage) == pytest.approx(0.0003 + 0.0006)
    assert cost_usd("gpt-4o", MILLION) == pytest.approx(12.5)
    assert cost_usd("anthropic:claude-sonnet-4-20250514", MILLION) == pytest.approx(18.0)


@pytest.mark.parametrize(
    ("model", "catalog_id"),
    [
        ("openai:gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai:gpt-4o-2024-08-06", "gpt-4o"),
        ("openai:gpt-4.1-nano", "gpt-4.1-nano"),
        ("openai:o3-mini", "o3-mini"),
        ("anthropic:claude-opus-4-5-20251101", "claude-opus-4-5"),
        ("openai:openai/gpt-4o-mini", "gpt-4o-mini"),  # OpenRouter-style vendor/model
        ("openai:GPT-4o", "gpt-4o"),
    ],
)
def test_other_models_are_priced_from_genai_prices(model: str, catalog_id: str) -> None:
    result = cost(model, MILLION)
    assert result.priced
    assert result.matched == f"genai-prices:{catalog_id}"
    assert result.usd > 0


def test_a_cost_from_estimated_usage_says_so() -> None:
    estimated = Usage(input_tokens=1000, output_tokens=10, estimated=True)
    assert cost("openai:gpt-4o", estimated).estimated
    assert cost("openai:llama3:8b", estimated).estimated
    assert not cost("openai:gpt-4o", MILLION).estimated


def test_the_longest_user_prefix_wins() -> None:
    register_price("house", 1, 1)
    register_price("house-large", 5, 5)
    assert cost("openai:house-large-v2", MILLION).matched == "house-large"
    assert cost("openai:house-small", MILLION).matched == "house"


@pytest.mark.parametrize(
    "model", ["scripted:demo/gpt-4o.yaml", "function:gpt-4o", "openai:llama3:8b", "mystery"]
)
def test_local_scripted_and_unknown_models_cost_nothing_and_say_so(model: str) -> None:
    result = cost(model, MILLION)
    assert (result.usd, result.priced, result.matched) == (0.0, False, None)
    assert cost_usd(model, MILLION) == 0.0


def test_register_price_adds_and_overrides() -> None:
    register_price("llama3", 0.1, 0.2)
    assert cost_usd("openai:llama3:8b", MILLION) == pytest.approx(0.3)
    register_price("gpt-4o", 1, 1)
    assert cost_usd("gpt-4o-2024-08-06", MILLION) == pytest.approx(2.0)
    assert cost_usd("gpt-4o-mini", MILLION) == pytest.approx(2.0)  # the user's price is on top
    assert cost_usd("gpt-4.1", MILLION) == pytest.approx(10.0)  # the catalog's, untouched


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("", 1, 1), "non-empty model-name prefix"),
        (("m", -1, 1), "input must be a number ≥ 0"),
        (("m", 1, float("nan")), "output must be a number ≥ 0"),
    ],
)
def test_register_price_refuses_bad_prices(args: tuple[str, float, float], expected: str) -> None:
    with pytest.raises(UsageError, match=expected):
        register_price(*args)


def test_price_file_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "prices:\n  my-model: {input: 0.5, output: 1.5}\n  gpt-4o: {input: 0, output: 0}\n"
    )
    monkeypatch.setenv(prices.PRICES_ENV, str(path))
    prices.reset_prices()
    assert cost_usd("openai:my-model-v2", MILLION) == pytest.approx(2.0)
    assert cost("openai:gpt-4o", MILLION).priced  # overridden to free, but still priced
    assert cost_usd("openai:gpt-4o", MILLION) == 0.0


def test_price_file_in_the_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "user-prices.yaml"
    path.write_text("prices: {house-model: {input: 1, output: 2}}")
    monkeypatch.setattr(prices, "USER_PRICES_PATH", path)
    prices.reset_prices()
    assert cost_usd("house-model", MILLION) == pytest.approx(3.0)


def test_env_naming_a_missing_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(prices.PRICES_ENV, str(tmp_path / "gone.yaml"))
    prices.reset_prices()
    with pytest.raises(UsageError, match=r"PODIUM_PRICES names .*gone\.yaml, which is not a file"):
        cost_usd("gpt-4o", MILLION)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("prices: [1, 2]", "must hold one key, `prices:`"),
        ("price: {m: {input: 1, output: 1}}", "must hold one key, `prices:`"),
        ("prices: {m: 3}", "prices.m must be `{input: <number>, output: <number>}`"),
        ("prices: {m: {input: 1}}", "prices.m must be `{input: <number>, output: <number>}`"),
        ("prices: {m: {input: cheap, output: 1}}", "prices.m: input and output must be numbers"),
        ("prices: {m: {input: -1, output: 1}}", "prices.m: input and output must be numbers"),
        ("prices: {1: {input: 1, output: 1}}", "prefix 1 must be a string"),
        ("prices: {m: [unclosed", "cannot read price file"),
    ],
)
def test_bad_price_files_name_the_file(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    table = builtin_table()
    with pytest.raises(UsageError) as caught:
        table.load(path)
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_a_bad_user_file_surfaces_on_first_use(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("prices: nope")
    monkeypatch.setenv(prices.PRICES_ENV, str(path))
    prices.reset_prices()
    with pytest.raises(UsageError, match=re.escape(str(path))):
        cost_usd("gpt-4o", MILLION)


def test_separate_tables_do_not_share_prices() -> None:
    table = PriceTable()
    table.register("x", 1, 1)
    assert table.cost("x-1", MILLION).usd == pytest.approx(2.0)
    assert not cost("x-1", MILLION).priced
