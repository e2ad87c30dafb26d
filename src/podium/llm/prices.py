"""What model calls cost, in USD: the user's prices first, then the `genai-prices` catalog.

Users add or override prices (USD per million tokens, matched by model-name prefix) in a YAML file
named by `PODIUM_PRICES` (else `~/.config/podium/prices.yaml`, if it exists), shaped
`{prices: {"my-model": {input: 0.5, output: 1.5}}}`, or with `register_price()`. Other models are
priced from `genai-prices`, the catalog the Pydantic team maintains (its snapshot in the installed
package: no network). Local, scripted and unknown models cost 0, and `cost()` says they were not
priced; a cost computed from estimated usage says so too.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import genai_prices
import yaml

from podium.errors import UsageError
from podium.llm.base import Usage

PRICES_ENV = "PODIUM_PRICES"
USER_PRICES_PATH = Path("~/.config/podium/prices.yaml")
_PROVIDERS = frozenset({"openai", "anthropic", "scripted", "function"})
_UNPRICED_PROVIDERS = frozenset({"scripted", "function"})
_MILLION = 1_000_000


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million input and output tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def of(self, usage: Usage) -> float:
        spent = (
            usage.input_tokens * self.input_per_mtok + usage.output_tokens * self.output_per_mtok
        )
        return spent / _MILLION


@dataclass(frozen=True, slots=True)
class Cost:
    """A call's cost. `priced` is False when no price applies (local, scripted or unknown model)
    and `usd` is then 0; `matched` is the user's prefix that applied, or `genai-prices:` and the
    catalog's model id; `estimated` is True when the usage it was computed from was estimated."""

    usd: float
    priced: bool
    matched: str | None = None
    estimated: bool = False


CATALOG = "genai-prices"


class PriceTable:
    """Prices by model-name prefix (the longest matching prefix wins), over the `genai-prices`
    catalog unless `catalog=False`."""

    def __init__(self, prices: Mapping[str, Price] | None = None, *, catalog: bool = True) -> None:
        self._catalog = catalog
        self._prices: dict[str, Price] = {}
        for prefix, price in (prices or {}).items():
            self.register(prefix, price.input_per_mtok, price.output_per_mtok)

    def register(self, prefix: str, input_per_mtok: float, output_per_mtok: float) -> None:
        """Add or replace the price of every model whose name starts with `prefix`."""
        if not prefix.strip():
            raise UsageError("a price needs a non-empty model-name prefix, such as 'gpt-4o'")
        for label, value in (("input", input_per_mtok), ("output", output_per_mtok)):
            if not _is_price(value):
                raise UsageError(
                    f"price for {prefix!r}: {label} must be a number ≥ 0 (USD per million "
                    f"tokens), got {value!r}"
                )
        self._prices[prefix.strip().lower()] = Price(float(input_per_mtok), float(output_per_mtok))

    def lookup(self, model_name: str) -> tuple[str, Price] | None:
        """The (prefix, price) for a model name, with or without `provider:`; None if unpriced."""
        provider, model = split_provider(model_name)
        if provider in _UNPRICED_PROVIDERS:
            return None
        for candidate in dict.fromkeys((model, model.rsplit("/", 1)[-1])):
            match = self._longest_prefix(candidate)
            if match is not None:
                return match, self._prices[match]
        return None

    def cost(self, model_name: str, usage: Usage) -> Cost:
        found = self.lookup(model_name)
        if found is not None:
            prefix, price = found
            return Cost(price.of(usage), priced=True, matched=prefix, estimated=usage.estimated)
        if self._catalog:
            return _catalog_cost(model_name, usage)
        return Cost(usd=0.0, priced=False, estimated=usage.estimated)

    def load(self, path: str | Path) -> None:
        """Register every price in a YAML file; a bad file is a UsageError naming it."""
        for prefix, price in read_price_file(path).items():
            self.register(prefix, price.input_per_mtok, price.output_per_mtok)

    def _longest_prefix(self, model: str) -> str | None:
        matches = [prefix for prefix in self._prices if model.startswith(prefix)]
        return max(matches, key=len) if matches else None


def _catalog_cost(model_name: str, usage: Usage) -> Cost:
    """The `genai-prices` price, or an unpriced 0 for a model it does not know."""
    provider, model = split_provider(model_name)
    unpriced = Cost(usd=0.0, priced=False, estimated=usage.estimated)
    if provider in _UNPRICED_PROVIDERS:
        return unpriced
    tokens = genai_prices.Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
    for candidate in dict.fromkeys((model, model.rsplit("/", 1)[-1])):
        try:
            found = genai_prices.calc_price(tokens, model_ref=candidate, provider_id=provider)
        except (LookupError, ValueError):
            continue
        matched = f"{CATALOG}:{found.model.id}"
        return Cost(
            float(found.total_price), priced=True, matched=matched, estimated=usage.estimated
        )
    return unpriced


def split_provider(model_name: str) -> tuple[str | None, str]:
    """`("openai", "gpt-4o")` from `"openai:gpt-4o"`; a name without a known provider is kept
    whole (so Ollama tags such as `llama3:8b` survive). The model part is lower-cased."""
    head, sep, rest = model_name.partition(":")
    if sep and head.strip().lower() in _PROVIDERS:
        return head.strip().lower(), rest.strip().lower()
    return None, model_name.strip().lower()


def read_price_file(path: str | Path) -> dict[str, Price]:
    """Parse `{prices: {<prefix>: {input: <usd/Mtok>, output: <usd/Mtok>}}}`."""
    file = Path(path).expanduser()
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"price file {file} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read price file {file}: {exc}") from None
    return _prices_from(data, file)


def _prices_from(data: object, file: Path) -> dict[str, Price]:
    entries = data.get("prices") if isinstance(data, Mapping) else None
    if not isinstance(data, Mapping) or set(data) != {"prices"} or not isinstance(entries, Mapping):
        raise UsageError(
            f"price file {file} must hold one key, `prices:`, mapping model-name prefixes to "
            "`{input: <USD per 1M tokens>, output: <USD per 1M tokens>}`"
        )
    prices: dict[str, Price] = {}
    for prefix, entry in entries.items():
        if not isinstance(prefix, str) or not prefix.strip():
            raise UsageError(f"price file {file}: model-name prefix {prefix!r} must be a string")
        prices[prefix] = _price_entry(entry, f"price file {file}: prices.{prefix}")
    return prices


def _price_entry(entry: object, where: str) -> Price:
    if not isinstance(entry, Mapping) or set(entry) != {"input", "output"}:
        raise UsageError(f"{where} must be `{{input: <number>, output: <number>}}`, got {entry!r}")
    if not (_is_price(entry["input"]) and _is_price(entry["output"])):
        raise UsageError(f"{where}: input and output must be numbers ≥ 0 (USD per 1M tokens)")
    return Price(float(entry["input"]), float(entry["output"]))


def _is_price(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def user_prices_path() -> Path | None:
    """The user's price file: `$PODIUM_PRICES` (which must exist), else the default if present."""
    named = os.environ.get(PRICES_ENV)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise UsageError(f"{PRICES_ENV} names {path}, which is not a file; fix or unset it")
        return path
    default = USER_PRICES_PATH.expanduser()
    return default if default.is_file() else None


def builtin_table() -> PriceTable:
    """A table with no prices of its own, over the `genai-prices` catalog."""
    return PriceTable()


_default: PriceTable | None = None
_default_lock = threading.Lock()


def default_table() -> PriceTable:
    """The process's table: the user's file over the catalog, loaded on first use."""
    global _default
    with _default_lock:
        if _default is None:
            table = builtin_table()
            path = user_prices_path()
            if path is not None:
                table.load(path)
            _default = table
        return _default


def reset_prices() -> None:
    """Forget registered prices; the next lookup reloads the user's file."""
    global _default
    with _default_lock:
        _default = None


def register_price(prefix: str, input_per_mtok: float, output_per_mtok: float) -> None:
    """Add or override a price (USD per million tokens) in the process's table."""
    default_table().register(prefix, input_per_mtok, output_per_mtok)


def cost(model_name: str, usage: Usage) -> Cost:
    return default_table().cost(model_name, usage)


def cost_usd(model_name: str, usage: Usage) -> float:
    """The USD cost of `usage` on `model_name`; 0.0 for local, scripted and unknown models."""
    return cost(model_name, usage).usd
