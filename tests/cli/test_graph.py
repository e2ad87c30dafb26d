"""`podium graph` as a real process: a workflow file and recorded runs (a plan run too) drawn as
Mermaid, dot and SVG, each checked for the syntax the tools reading them need."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from podium.pictures import Edge, Node, Picture, dot, mermaid, workflow_picture
from podium.spec.load import load_workflow
from podium.svg import layers, layout, svg

from .conftest import Cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QUICKSTART = EXAMPLES / "quickstart.yaml"
SCRIPT = EXAMPLES / "scripts" / "research.yaml"
SVG = "{http://www.w3.org/2000/svg}"

MIXED = """\
name: mixed
on_failure: collect
steps:
  - id: first
    kind: shell
    run: "true"
  - id: boom
    needs: first
    kind: shell
    run: "false"
  - id: after
    needs: boom
    kind: shell
    run: "true"
  - id: side
    needs: first
    kind: shell
    run: "true"
"""


def _graph(cli: Cli, *args: str) -> str:
    result = cli("graph", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


# -------------------------------------------------------------------- syntax checks, as helpers


def _without_strings(text: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)


def check_dot(text: str) -> tuple[set[str], set[tuple[str, str]]]:
    """Balanced braces outside strings; every edge's endpoints declared as nodes."""
    bare = _without_strings(text)
    assert bare.count("{") == bare.count("}"), text
    assert text.startswith("digraph ")
    assert text.rstrip().endswith("}")
    string = r'"((?:[^"\\]|\\.)*)"'
    nodes = set(re.findall(rf"^\s*{string} \[label=", text, flags=re.MULTILINE))
    edges = set(re.findall(rf"^\s*{string} -> {string}", text, flags=re.MULTILINE))
    assert edges
    assert all(a in nodes and b in nodes for a, b in edges), (nodes, edges)
    return nodes, edges


def check_mermaid(text: str) -> tuple[dict[str, str], set[tuple[str, str]]]:
    """`flowchart TD`, subgraphs closed, labels free of raw quotes, every edge's ends declared."""
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    opened = sum(1 for line in lines if line.strip().startswith("subgraph "))
    assert opened == sum(1 for line in lines if line.strip() == "end")
    labels = dict(re.findall(r'^\s*(n\d+)\[\[?"([^"]*)"\]\]?$', text, flags=re.MULTILINE))
    edges = set(re.findall(r"^\s*(n\d+) -\.?->? (n\d+)$", text, flags=re.MULTILINE))
    declared = sum(1 for line in lines if re.match(r"^\s*n\d+\[", line))
    assert declared == len(labels), "a label holds a raw quote or bracket"
    assert all(a in labels and b in labels for a, b in edges), (labels, edges)
    return labels, edges


def check_svg(text: str) -> ET.Element:
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg"
    return root


def svg_labels(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


# -------------------------------------------------------------------------- a workflow file


def test_quickstart_as_mermaid(cli: Cli) -> None:
    labels, edges = check_mermaid(_graph(cli, str(QUICKSTART)))
    assert len(labels) == 6
    assert len(edges) == 6
    assert "triage<br/>python" in labels.values()
    assert "classDef" not in _graph(cli, str(QUICKSTART))  # a file has no statuses


def test_quickstart_as_dot(cli: Cli) -> None:
    nodes, edges = check_dot(_graph(cli, str(QUICKSTART), "--format", "dot"))
    assert "report" in nodes
    assert ("fetch_issues", "triage") in edges
    assert len(edges) == 6


def test_quickstart_as_svg_written_to_a_file(cli: Cli) -> None:
    out = cli.folder / "quickstart.svg"
    result = cli("graph", str(QUICKSTART), "-f", "svg", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert f"to {out}" in result.stdout
    root = check_svg(out.read_text())
    assert len(list(root.iter(f"{SVG}rect"))) == 1 + 6  # the background and six steps
    assert len(list(root.iter(f"{SVG}path"))) == 1 + 6  # the arrowhead and six edges
    assert {"fetch_issues", "report", "http", "file"} <= set(svg_labels(root))


def test_a_bad_format_is_bad_input(cli: Cli) -> None:
    result = cli("graph", str(QUICKSTART), "--format", "png")
    assert result.returncode == 2
    assert "png" in result.stderr


def test_a_missing_file_or_run_is_bad_input(cli: Cli) -> None:
    missing = cli("graph", "nothere.yaml")
    assert missing.returncode == 2
    assert "no workflow file nothere.yaml" in missing.stderr
    cli.write("wf.yaml", MIXED)
    assert cli("run", "wf.yaml", "--run-id", "r0").returncode == 1  # the store exists
    unknown = cli("graph", "nosuchrun")
    assert unknown.returncode == 2
    assert "no run with id 'nosuchrun'" in unknown.stderr


# ------------------------------------------------------------------------------- a run


def test_a_finished_run_shows_statuses_and_durations(cli: Cli) -> None:
    cli.write("wf.yaml", MIXED)
    assert cli("run", "wf.yaml", "--run-id", "r1").returncode == 1
    text = _graph(cli, "r1")
    labels, _ = check_mermaid(text)
    assert any(label.startswith("first<br/>shell · succeeded · ") for label in labels.values())
    assert any(label.startswith("boom<br/>shell · failed · ") for label in labels.values())
    assert any(label.startswith("after<br/>shell · skipped") for label in labels.values())
    assert any(label.startswith("side<br/>shell · succeeded · ") for label in labels.values())
    assert "classDef failed fill:#fee2e2" in text
    assert "classDef succeeded" in text
    assert _graph(cli, "@latest") == text  # a run reference: @latest, or a unique prefix
    assert _graph(cli, "r") == text
    dot_text = _graph(cli, "r1", "--format", "dot")
    check_dot(dot_text)
    assert re.search(
        r'"boom" \[label="boom\\nshell · failed · (\d+ms|<1ms|\d+\.\ds)", fillcolor="#fee2e2"',
        dot_text,
    )
    root = check_svg(_graph(cli, "r1", "--format", "svg"))
    assert any(label.startswith("shell · failed") for label in svg_labels(root))


def test_a_plan_run_groups_the_children_under_their_plan_step(cli: Cli) -> None:
    shutil.copytree(EXAMPLES / "agents", cli.folder / "agents")
    options = ["--agents", str(cli.folder), "--model", f"scripted:{SCRIPT}"]
    planned = cli("plan", "Brief me", "--aggregator", "writer", "--run-id", "p1", *options)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    text = _graph(cli, "p1")
    labels, edges = check_mermaid(text)
    assert 'subgraph g0["plan.*"]' in text
    inside = text.partition('subgraph g0["plan.*"]')[2].partition("\n  end")[0]
    assert "plan.aggregate<br/>agent · succeeded" in inside
    assert "plan<br/>plan" not in inside
    ids = {label.split("<br/>")[0]: node for node, label in labels.items()}
    assert (ids["plan.draft"], ids["plan.aggregate"]) in edges
    assert f"{ids['plan']} -.-> " in text  # the plan step spawns the children that need nothing
    nodes, dot_edges = check_dot(_graph(cli, "p1", "-f", "dot"))
    assert 'subgraph "cluster_plan"' in _graph(cli, "p1", "-f", "dot")
    assert {"plan", "plan.aggregate"} <= nodes
    assert ("plan.draft", "plan.aggregate") in dot_edges
    root = check_svg(_graph(cli, "p1", "-f", "svg"))
    assert "plan.*" in svg_labels(root)
    assert len(list(root.iter(f"{SVG}g"))) == len(nodes) + 1  # a node each and the group


# --------------------------------------------------------------- escaping, the pure drawers

AWKWARD = 'a "quoted" <b> & c.d #1 `x` \\ {brace}'


def _awkward() -> Picture:
    nodes = (Node(id="p.q", kind="shell", status="failed"), Node(id=AWKWARD, kind="agent"))
    return Picture(title=AWKWARD, nodes=nodes, edges=(Edge("p.q", AWKWARD),))


def test_dot_escapes_quotes_backslashes_and_dots() -> None:
    text = dot(_awkward())
    nodes, edges = check_dot(text)
    escaped = AWKWARD.replace("\\", "\\\\").replace('"', '\\"')
    assert nodes == {"p.q", escaped}
    assert edges == {("p.q", escaped)}


def test_mermaid_escapes_what_would_end_a_label() -> None:
    labels, edges = check_mermaid(mermaid(_awkward()))
    assert edges == {("n0", "n1")}
    assert labels["n1"].startswith("a #quot;quoted#quot; #lt;b#gt; #amp; c.d #35;1 #96;x#96;")
    assert labels["n0"] == "p.q<br/>shell · failed"


def test_svg_escapes_text_and_attributes() -> None:
    root = check_svg(svg(_awkward()))
    assert AWKWARD in svg_labels(root)
    assert f"step-{AWKWARD}" in {g.get("id") for g in root.iter(f"{SVG}g")}


@pytest.mark.parametrize("count", [2, 200])
def test_svg_lays_out_chains_and_fan_outs(count: int) -> None:
    chain = [Node(id=f"s{i}", kind="shell") for i in range(count)]
    edges = tuple(Edge(f"s{i}", f"s{i + 1}") for i in range(count - 1))
    assert [len(layer) for layer in layers(Picture("chain", tuple(chain), edges))] == [1] * count
    fan = (Node(id="top", kind="shell"), *chain)
    spread = tuple(Edge("top", node.id) for node in chain)
    picture = Picture("fan", fan, spread)
    assert [len(layer) for layer in layers(picture)] == [1, count]
    root = check_svg(svg(picture))
    width, height = float(root.get("width") or 0), float(root.get("height") or 0)
    assert width < 3000
    assert height < 2000


def test_svg_edges_bend_round_the_steps_of_the_layers_they_cross() -> None:
    picture = workflow_picture(load_workflow(QUICKSTART))
    placed = layout(picture)
    long_edges = {i: e for i, e in enumerate(picture.edges) if e.target == "report"}
    crossing = [i for i, e in long_edges.items() if e.source in ("python_version", "disk_usage")]
    assert [len(placed.bends[i]) for i in crossing] == [2, 2]
    for index in crossing:
        for x, y in placed.bends[index]:
            same_row = [b for b in placed.boxes.values() if b.y == y]
            assert same_row  # the layer it crosses has steps
            assert all(not (b.x <= x <= b.x + b.width) for b in same_row)
