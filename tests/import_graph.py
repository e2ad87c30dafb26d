"""The import graph of a source tree, read with `ast`: which project modules each module imports
(anywhere in its file), and the cycles in it. tests/test_layers.py applies the layer rules."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Import:
    importer: str
    imported: str
    where: str  # path:line
    eager: bool = True  # runs when the importer is imported (not in a function, not type-only)


def module_names(src: Path) -> dict[str, Path]:
    """Every module under `src`, by dotted name (a package's __init__ under the package's name)."""
    modules = {}
    for path in sorted(src.rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: Mapping[str, Path], root: Path) -> Iterator[Import]:
    """The in-project modules `name` imports, each once, from anywhere in its file: at module
    level, in functions, under `if TYPE_CHECKING:`. `eager` if any of them runs at import time."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: dict[str, Import] = {}
    for node, eager in _nodes(tree, eager=True):
        for target in _targets(node, package, modules):
            earlier = found.get(target)
            if target != name and (earlier is None or (eager and not earlier.eager)):
                where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
                found[target] = Import(name, target, where, eager)
    yield from found.values()


def _nodes(node: ast.AST, *, eager: bool) -> Iterator[tuple[ast.AST, bool]]:
    """Every node below `node`, and whether it runs when the module is imported."""
    for child in ast.iter_child_nodes(node):
        yield child, eager
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _nodes(child, eager=False)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for part in child.body:
                yield part, False
                yield from _nodes(part, eager=False)
            for part in child.orelse:
                yield part, eager
                yield from _nodes(part, eager=eager)
        else:
            yield from _nodes(child, eager=eager)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.AST, package: str, modules: Mapping[str, Path]) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            if (found := _known(alias.name, modules)) is not None:
                yield found
    elif isinstance(node, ast.ImportFrom):
        base = _absolute(node, package)
        for alias in node.names:
            found = _known(f"{base}.{alias.name}", modules) if alias.name != "*" else None
            found = found if found in modules else _known(base, modules)
            if found is not None:
                yield found


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def _known(dotted: str, modules: Mapping[str, Path]) -> str | None:
    """The project module `dotted` names (or the nearest project package above it), else None."""
    while dotted:
        if dotted in modules:
            return dotted
        dotted = dotted.rpartition(".")[0]
    return None


def all_imports(src: Path) -> list[Import]:
    modules = module_names(src)
    return [
        found
        for name, path in modules.items()
        for found in imports_of(name, path, modules, src.parent)
    ]


def cycles(imports: list[Import]) -> list[list[str]]:
    """One cycle (a path that returns to its start) per strongly connected group of modules."""
    graph: dict[str, set[str]] = {}
    for i in imports:
        graph.setdefault(i.importer, set()).add(i.imported)
        graph.setdefault(i.imported, set())
    return [_cycle_in(group, graph) for group in _strong_components(graph) if len(group) > 1]


def import_time_edges(imports: list[Import]) -> list[Import]:
    """What runs while a module is imported: its eager imports, and for each, the `__init__` of
    every package above the imported module that is not above the importer too (Python runs a
    package's `__init__` before any of its modules). A cycle here fails at import time."""
    edges = [i for i in imports if i.eager]
    for i in list(edges):
        parts = i.imported.split(".")
        for size in range(2, len(parts)):
            package = ".".join(parts[:size])
            if not (i.importer == package or i.importer.startswith(package + ".")):
                edges.append(Import(i.importer, package, f"{i.where} (runs {package}/__init__)"))
    return edges


def _strong_components(graph: Mapping[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (no recursion limit on a long chain of imports)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.add(member)
                        if member == node:
                            break
                    groups.append(group)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return groups


def _cycle_in(group: set[str], graph: Mapping[str, set[str]]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & group):
                if child == start:
                    return [*paths[node], start]
                if child not in paths:
                    paths[child] = [*paths[node], child]
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(group)}")  # not a component
