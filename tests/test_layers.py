"""The layers of docs/DESIGN.md ("Layers"), enforced on the source: every module of src/podium has
a layer, imports go downward only, adapter packages never import each other, and no two modules
import each other, directly or round a cycle.

`LAYERS` below is the same table as the "Layers" section of docs/DESIGN.md, held as data (a test
checks the two agree): change both together. Every import counts, wherever it is written: at
module level, inside a function, or under `if TYPE_CHECKING:` (a type-only dependency is still a
dependency). Imports by string (`importlib.import_module("podium.x")`) are not seen. The
graph itself is read by tests/import_graph.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest
from tests.import_graph import Import, all_imports, cycles, import_time_edges, module_names

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
DESIGN = ROOT / "docs" / "DESIGN.md"

LAYER_NAMES = {
    0: "L0 kernel",
    1: "L1 spec",
    2: "L2 core",
    3: "L3 ports",
    4: "L4 adapters",
    5: "L5 services",
    6: "L6 edges",
}

# The table of docs/DESIGN.md "Layers". A key is a module (`podium.tools` is the package's
# __init__) or `pkg.*` for every module below `pkg`; an exact name beats a pattern and a longer
# pattern beats a shorter one.
LAYERS: dict[str, int] = {
    "podium.errors": 0,
    "podium.ids": 0,
    "podium.clock": 0,
    "podium.aio": 0,
    "podium.spec": 1,
    "podium.spec.*": 1,
    "podium.agents": 1,
    "podium.config": 1,
    "podium.core": 2,
    "podium.core.*": 2,
    "podium.store.base": 3,
    "podium.llm.base": 3,
    "podium.steps.base": 3,
    "podium.steps.output": 3,
    "podium.tools.base": 3,
    "podium.telemetry": 3,
    "podium.store": 4,
    "podium.store.*": 4,
    "podium.llm": 4,
    "podium.llm.*": 4,
    "podium.steps": 4,
    "podium.steps.*": 4,
    "podium.tools.*": 4,
    "podium.tools": 5,
    "podium.runtime": 5,
    "podium.runtime.*": 5,
    "podium.planner": 5,
    "podium.views": 5,
    "podium.stepviews": 5,
    "podium.recording": 5,
    "podium.pictures": 5,
    "podium.svg": 5,
    "podium": 6,
    "podium.cli": 6,
    "podium.cli.*": 6,
    "podium.server": 6,
    "podium.server.*": 6,
    "podium.testing": 6,
    "podium.reference": 6,
    "podium.reference.*": 6,
}

# Adapters of one package never import another's; they may import the L3 ports of any.
ADAPTER_PACKAGES = ("podium.store", "podium.llm", "podium.steps", "podium.tools")

# Wrong-way imports in modules being rewritten by the seams work (runtime/, core/, steps/), as
# (importer, imported): they are being removed there. This list only shrinks: a new violation
# fails the test, and so does an entry here that no longer occurs (delete it then). Empty now:
# the last one, podium.steps.agent -> podium.runtime.services (the Route type), moved to
# podium.steps.base with the seams work.
KNOWN_VIOLATIONS: frozenset[tuple[str, str]] = frozenset()

HOW_TO_FIX = (
    "move the code that needs it up a layer, or hand it in from above (a parameter, a protocol "
    "in a port, a registry the upper layer fills); if the table itself is wrong, change the "
    '"Layers" section of docs/DESIGN.md and LAYERS in tests/test_layers.py together'
)


# ------------------------------------------------------------------------------- the rules, as code


def layer_of(module: str, table: Mapping[str, int] = LAYERS) -> int | None:
    if module in table:
        return table[module]
    parts = module.split(".")
    for size in range(len(parts) - 1, 0, -1):
        found = table.get(".".join(parts[:size]) + ".*")
        if found is not None:
            return found
    return None


def adapter_package(module: str) -> str | None:
    return next((p for p in ADAPTER_PACKAGES if module.startswith(p + ".") or module == p), None)


def upward(imports: list[Import], table: Mapping[str, int] = LAYERS) -> list[Import]:
    """Imports of a higher layer than the importer's."""
    return [
        i
        for i in imports
        if (low := layer_of(i.importer, table)) is not None
        and (high := layer_of(i.imported, table)) is not None
        and high > low
    ]


def across_adapters(imports: list[Import], table: Mapping[str, int] = LAYERS) -> list[Import]:
    """Imports from an adapter of one package to an adapter (not a port) of another."""
    return [
        i
        for i in imports
        if layer_of(i.importer, table) == 4
        and layer_of(i.imported, table) == 4
        and adapter_package(i.importer) != adapter_package(i.imported)
    ]


def describe(i: Import, table: Mapping[str, int] = LAYERS) -> str:
    low, high = layer_of(i.importer, table), layer_of(i.imported, table)
    return (
        f"{i.where}: {i.importer} ({LAYER_NAMES.get(low or 0)}) imports {i.imported} "
        f"({LAYER_NAMES.get(high or 0)})"
    )


def _lines(items: Iterable[str]) -> str:
    return "".join(f"\n  {item}" for item in items)


# ------------------------------------------------------------------------------------- the rules

IMPORTS = all_imports(SRC)


def test_every_module_has_a_layer() -> None:
    missing = sorted(m for m in module_names(SRC) if layer_of(m) is None)
    assert not missing, (
        f'modules in no layer: {", ".join(missing)}; add each to the "Layers" table of '
        "docs/DESIGN.md and to LAYERS in tests/test_layers.py"
    )


def test_imports_go_down_only() -> None:
    wrong = [i for i in upward(IMPORTS) if (i.importer, i.imported) not in KNOWN_VIOLATIONS]
    assert not wrong, (
        "imports of a higher layer (a module may import only its own layer and the ones below):"
        + _lines(describe(i) for i in wrong)
        + f"\nTo fix: {HOW_TO_FIX}"
    )


def test_adapter_packages_do_not_import_each_other() -> None:
    known = KNOWN_VIOLATIONS
    wrong = [i for i in across_adapters(IMPORTS) if (i.importer, i.imported) not in known]
    assert not wrong, (
        "adapters of one package import another package's adapters (they may import only the "
        "ports: store.base, llm.base, steps.base, steps.output, tools.base):"
        + _lines(describe(i) for i in wrong)
        + "\nTo fix: depend on the port, or let an L5 module hand one adapter to the other"
    )


def test_no_import_cycles() -> None:
    found = cycles(IMPORTS)
    assert not found, (
        "modules that import each other (round a cycle):"
        + _lines(" -> ".join(cycle) for cycle in found)
        + "\nTo fix: move what both need into a lower module that neither imports back "
        "(shared helpers, a protocol), or pass it in"
    )


def test_nothing_imports_itself_at_import_time() -> None:
    """The cycle the rule above misses: a port imports a port whose package `__init__` eagerly
    imports an adapter that imports the first port, still half-initialised."""
    found = cycles(import_time_edges(IMPORTS))
    assert not found, (
        "modules whose import reaches back to themselves while they are being imported (counting "
        "the package __init__ that Python runs before a package's module):"
        + _lines(" -> ".join(cycle) for cycle in found)
        + "\nTo fix: move what both need lower, or make one of the imports (usually the one in a "
        "package __init__) happen inside the function that needs it"
    )


def test_known_violations_still_occur() -> None:
    """So the list only shrinks: an entry whose import is gone must be deleted."""
    present = {(i.importer, i.imported) for i in upward(IMPORTS) + across_adapters(IMPORTS)}
    gone = sorted(KNOWN_VIOLATIONS - present)
    assert not gone, (
        "KNOWN_VIOLATIONS lists imports that no longer break a rule: "
        f"{', '.join(f'{a} -> {b}' for a, b in gone)}; delete them from tests/test_layers.py"
    )


def test_the_table_is_the_one_in_docs_design() -> None:
    assert design_table() == LAYERS, (
        'the "Layers" table of docs/DESIGN.md and LAYERS in tests/test_layers.py differ; '
        "make them say the same thing"
    )


def design_table() -> dict[str, int]:
    """The `| L<n> name | modules | why |` rows of the "Layers" section, as LAYERS reads them."""
    text = DESIGN.read_text()
    section = text.partition("\n## Layers\n")[2].partition("\n## ")[0]
    assert section, 'docs/DESIGN.md has no "## Layers" section'
    table: dict[str, int] = {}
    for row in re.findall(r"^\| L(\d) [^|]*\|([^|]*)\|", section, flags=re.MULTILINE):
        for module in re.findall(r"`([a-z_.*]+)`", row[1]):
            table[module] = int(row[0])
    return table


# --------------------------------------------------------------------------- the checker itself


def _tree(tmp_path: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path / "src"


def test_the_checker_sees_type_only_local_and_relative_imports(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "podium/__init__.py": "",
            "podium/errors.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from podium.core.state import State\n",
            "podium/core/__init__.py": "",
            "podium/core/state.py": "def f():\n    from podium.runtime import engine\n",
            "podium/runtime/__init__.py": "",
            "podium/runtime/engine.py": "from . import bus\nfrom ..core import state\n",
            "podium/runtime/bus.py": "import podium.clock\n",
            "podium/clock.py": "",
        },
    )
    found = {(i.importer, i.imported) for i in all_imports(src)}
    assert found == {
        ("podium.errors", "podium.core.state"),
        ("podium.core.state", "podium.runtime.engine"),
        ("podium.runtime.engine", "podium.runtime.bus"),
        ("podium.runtime.engine", "podium.core.state"),
        ("podium.runtime.bus", "podium.clock"),
    }
    assert {(i.importer, i.imported) for i in upward(all_imports(src))} == {
        ("podium.errors", "podium.core.state"),
        ("podium.core.state", "podium.runtime.engine"),
    }
    assert cycles(all_imports(src)) == [
        ["podium.core.state", "podium.runtime.engine", "podium.core.state"]
    ]


def test_the_checker_sees_a_cycle_through_a_package_init(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "podium/__init__.py": "",
            "podium/steps/__init__.py": "",
            "podium/steps/base.py": "from podium.tools.base import Tool\n",
            "podium/tools/__init__.py": "from podium.tools import builtin\n",
            "podium/tools/base.py": "Tool = object\n",
            "podium/tools/builtin.py": "from typing import TYPE_CHECKING\n"
            "from podium.steps.base import Executor\n"
            "if TYPE_CHECKING:\n    from podium.tools import mcp\n",
            "podium/tools/mcp.py": "import podium.tools.builtin\n",
        },
    )
    imports = all_imports(src)
    assert cycles(imports) == [["podium.tools.builtin", "podium.tools.mcp", "podium.tools.builtin"]]
    assert cycles(import_time_edges(imports)) == [
        ["podium.steps.base", "podium.tools", "podium.tools.builtin", "podium.steps.base"]
    ]


@pytest.mark.parametrize(
    ("importer", "imported", "crosses"),
    [
        ("podium.tools.builtin", "podium.steps", True),
        ("podium.tools.mcp", "podium.steps.output", False),  # a port
        ("podium.tools.mcp", "podium.tools.base", False),
        ("podium.store.sqlite", "podium.store._sql", False),
        ("podium.tools", "podium.steps", False),  # L5 wiring
    ],
)
def test_adapter_rule(importer: str, imported: str, crosses: bool) -> None:
    assert bool(across_adapters([Import(importer, imported, "x:1")])) is crosses
