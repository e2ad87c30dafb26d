"""The agent catalog against real files: Markdown with front matter, YAML, the project's folder over
the user's, case-insensitive lookup, and every problem of every file reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from podium.agents import AgentCatalog, AgentOptions, AgentSpec
from podium.errors import Problem, SpecError, UsageError
from podium.spec.model import AgentStep


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


WRITER_MD = """---
name: Writer
model: openai:gpt-4o-mini
description: Writes clear prose.
tools: [read_file, "mcp:github", "mcp:github/search_issues"]
temperature: 0.3
max_tokens: 800
fallbacks: [editor]
output:
  type: object
  properties: {title: {type: string}}
  required: [title]
---

# Role

You write things.
"""

EDITOR_YAML = """name: editor
description: Edits.
instructions: |
  Fix the grammar.
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    write(root / "agents", "writer.md", WRITER_MD)
    write(root / "agents", "editor.yaml", EDITOR_YAML)
    return root


def load(project: Path | None, user: Path | None = None) -> AgentCatalog:
    return AgentCatalog.load(project, user)


def test_markdown_front_matter_and_yaml_agents_load(project: Path) -> None:
    catalog = load(project)
    writer = catalog.resolve("Writer")
    assert writer == AgentSpec(
        name="Writer",
        model="openai:gpt-4o-mini",
        description="Writes clear prose.",
        instructions="# Role\n\nYou write things.",
        tools=["read_file", "mcp:github", "mcp:github/search_issues"],
        output={
            "type": "object",
            "properties": {"title": {"type": "string"}},
            "required": ["title"],
        },
        temperature=0.3,
        max_tokens=800,
        fallbacks=["editor"],
        source=str(project / "agents" / "writer.md"),
    )
    editor = catalog.resolve("editor")
    assert editor.instructions == "Fix the grammar.\n"
    assert editor.model is None
    assert catalog.names() == ["editor", "Writer"]


def test_a_yaml_file_may_hold_an_agents_list(tmp_path: Path) -> None:
    write(
        tmp_path / "agents",
        "team.yml",
        "agents:\n  - name: a\n    instructions: one\n  - name: b\n    model: scripted:demo\n",
    )
    catalog = load(tmp_path)
    assert catalog.names() == ["a", "b"]
    assert catalog.resolve("b").model == "scripted:demo"


def test_the_project_agent_wins_over_the_user_agent_case_insensitively(
    project: Path, tmp_path: Path
) -> None:
    user = tmp_path / "user-agents"
    write(user, "writer.yaml", "name: WRITER\ninstructions: the user's\n")
    write(user, "critic.md", "---\nname: critic\n---\nCriticise.\n")
    catalog = load(project, user)
    assert catalog.names() == ["critic", "editor", "Writer"]
    assert catalog.resolve("writer").source == str(project / "agents" / "writer.md")
    assert catalog.resolve("critic").source == str(user / "critic.md")
    assert catalog.searched == (project / "agents", user)


def test_the_user_folder_defaults_to_the_config_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write(tmp_path / ".config" / "podium" / "agents", "mine.md", "---\nname: mine\n---\nHi.\n")
    assert AgentCatalog.load(None).names() == ["mine"]


def test_missing_folders_give_an_empty_catalog(tmp_path: Path) -> None:
    catalog = load(tmp_path / "nowhere", tmp_path / "nothing")
    assert catalog.names() == []
    with pytest.raises(UsageError, match="no agents are defined") as caught:
        catalog.resolve("writer")
    assert str(tmp_path / "nowhere" / "agents") in str(caught.value)


def test_resolve_prefers_the_exact_name_then_a_case_insensitive_match(tmp_path: Path) -> None:
    folder = tmp_path / "agents"
    write(folder, "a.md", "---\nname: Writer\n---\nA\n")
    write(folder, "b.md", "---\nname: writer\n---\nB\n")
    write(folder, "c.md", "---\nname: Critic\n---\nC\n")
    catalog = load(tmp_path)
    assert catalog.resolve("Writer").instructions == "A"
    assert catalog.resolve("writer").instructions == "B"
    assert catalog.resolve("CRITIC").name == "Critic"
    with pytest.raises(UsageError) as caught:
        catalog.resolve("WRITER")
    assert "ambiguous" in str(caught.value)
    assert "'Writer', 'writer'" in str(caught.value)


def test_a_missing_agent_lists_what_is_available_and_where_it_looked(project: Path) -> None:
    catalog = load(project)
    with pytest.raises(UsageError) as caught:
        catalog.resolve("writr")
    message = str(caught.value)
    assert "unknown agent 'writr'" in message
    assert "did you mean 'Writer'?" in message
    assert "available: editor, Writer" in message
    assert str(project / "agents") in message


def test_check_reports_each_bad_reference_at_its_path(tmp_path: Path) -> None:
    folder = tmp_path / "agents"
    write(folder, "a.md", "---\nname: Writer\n---\nA\n")
    write(folder, "b.md", "---\nname: writer\n---\nB\n")
    catalog = load(tmp_path)
    problems = catalog.check(
        [("WRITER", "steps[0].agent"), ("writer", "steps[1].agent"), ("ghost", "steps[2].agent")]
    )
    assert [p.path for p in problems] == ["steps[0].agent", "steps[2].agent"]
    assert "ambiguous" in problems[0].message
    assert "available: Writer, writer" in problems[1].message


def test_every_problem_in_every_file_is_reported_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "agents"
    typo = write(
        folder, "typo.md", "---\nname: a\ntemprature: 0.3\ntools: [read_file, 'bad tool']\n---\nx\n"
    )
    team = write(
        folder,
        "team.yaml",
        "agents:\n  - name: b\n    temperature: 5\n  - description: no name\n"
        "  - name: c\n    model: gpt-4o\n    output: {type: wrong}\n",
    )
    broken = write(folder, "broken.md", "---\nname: [unclosed\n---\n")
    plain = write(folder, "plain.md", "just some text\n")
    unclosed = write(folder, "unclosed.md", "---\nname: d\n")
    both = write(folder, "both.md", "---\nname: e\ninstructions: here\n---\nand here\n")
    sourced = write(folder, "sourced.yaml", "name: f\nsource: elsewhere\n")
    with pytest.raises(SpecError) as caught:
        load(tmp_path)
    got = {(p.path, p.message.split(";")[0].split(":")[0]) for p in caught.value.problems}
    assert got == {
        (f"{typo}:3", "unknown field 'temprature'"),
        (f"{typo}:4", "tools[1]"),
        (f"{team}:3", "agents[0].temperature"),
        (f"{team}:4", "agents[1]"),
        (f"{team}:6", "agents[2].model"),
        (f"{team}:7", "agents[2].output"),
        (f"{broken}:3", "invalid YAML"),
        (f"{plain}:1", "no YAML front matter"),
        (f"{unclosed}:1", "the front matter is not closed"),
        (f"{both}:3", "instructions are given both in the front matter and as the body"),
        (f"{sourced}:2", "unknown field 'source' (the loader sets it)"),
    }
    messages = "\n".join(str(p) for p in caught.value.problems)
    assert "did you mean 'temperature'?" in messages
    assert "missing required field 'name'" in messages
    assert "must be provider:model" in messages
    assert "not a valid JSON Schema" in messages


def test_duplicates_within_a_folder_and_bad_fallbacks_are_problems(tmp_path: Path) -> None:
    folder = tmp_path / "agents"
    first = write(folder, "one.md", "---\nname: same\nfallbacks: [same]\n---\nx\n")
    second = write(folder, "two.yaml", "name: same\n")
    other = write(folder, "other.yaml", "name: other\nfallbacks: [nobody]\n")
    with pytest.raises(SpecError) as caught:
        load(tmp_path)
    problems = caught.value.problems
    assert (
        Problem(
            str(second),
            f"agent 'same' is defined twice in {folder}: also in {first}; rename or remove one",
        )
        in problems
    )
    assert any(p.path == str(other) and "unknown agent 'nobody'" in p.message for p in problems)
    assert any(p.path == str(first) and "lists itself as a fallback" in p.message for p in problems)


def test_readme_and_hidden_files_are_not_agents(project: Path) -> None:
    write(project / "agents", "README.md", "# Our agents\n")
    write(project / "agents", ".draft.md", "not yet\n")
    assert load(project).names() == ["editor", "Writer"]


# ----------------------------------------------------------------------------------- options

OPTIONS_MD = """---
name: careful
model: smollm2
provider: local
tools: [read_file, "mcp:fs"]
temperature: 0.2
max_tokens: 300
reasoning_effort: low
seed: 7
top_p: 0.9
stop: END
tool_choice: fs__read_text
parallel_tool_calls: false
timeout: 30s
stream: false
---
Be careful.
"""


def test_an_agent_file_sets_its_call_options_as_top_level_keys(tmp_path: Path) -> None:
    write(tmp_path / "agents", "careful.md", OPTIONS_MD)
    agent = load(tmp_path).resolve("careful")
    assert agent.options == AgentOptions(
        temperature=0.2,
        max_tokens=300,
        reasoning_effort="low",
        seed=7,
        top_p=0.9,
        stop=["END"],
        tool_choice="fs__read_text",
        parallel_tool_calls=False,
        timeout=30.0,
        provider="local",
        stream=False,
    )
    assert agent.model == "smollm2"  # the provider option names the provider


def test_step_options_are_merged_over_the_agents_and_win() -> None:
    agent = AgentSpec(name="a", model="openai:m", temperature=0.2, max_tokens=100, seed=1)
    step = AgentStep.model_validate(
        {
            "id": "s",
            "agent": "a",
            "prompt": "p",
            "timeout": "5m",
            "options": {"temperature": 0.9, "timeout": "20s", "stop": ["a", "b"]},
        }
    )
    assert step.options is not None
    merged = agent.options.merged(step.options)
    assert (merged.temperature, merged.max_tokens, merged.seed) == (0.9, 100, 1)
    assert (merged.timeout, merged.stop, step.timeout) == (20.0, ["a", "b"], 300.0)
    assert AgentStep.model_validate({"id": "s", "agent": "a", "prompt": "p"}).options is None


@pytest.mark.parametrize(
    ("line", "path", "says"),
    [
        ("temperature: 3", "temperature", "less than or equal to 2"),
        ("top_p: -0.1", "top_p", "greater than or equal to 0"),
        ("max_tokens: 0", "max_tokens", "greater than 0"),
        ("reasoning_effort: extreme", "reasoning_effort", "'minimal', 'low', 'medium' or 'high'"),
        ("stop: [a, b, c, d, e]", "stop", "at most 4"),
        ("timeout: soon", "timeout", "not a duration"),
        ("timeout: 0", "timeout", "greater than 0"),
        ("stream: true", "stream", "only `stream: false`"),
        ("seed: many", "seed", "valid integer"),
        ("parallel_tool_calls: maybe", "parallel_tool_calls", "valid boolean"),
        ("tool_choice: write_file", "tools", "tool_choice 'write_file' is not one of"),
        ("provider: Bad Name", "provider", "must be a provider name"),
        ("model: gpt-4o", "model", "must be provider:model"),
    ],
)
def test_bad_options_are_problems_at_their_key(
    tmp_path: Path, line: str, path: str, says: str
) -> None:
    write(tmp_path / "agents", "a.yaml", f"name: a\ntools: [read_file]\n{line}\n")
    with pytest.raises(SpecError) as caught:
        load(tmp_path)
    (problem,) = caught.value.problems
    assert problem.message.startswith(f"{path}: ")
    assert says in problem.message


def test_tool_choice_may_name_any_tool_the_agent_has() -> None:
    tools = ["read_file", "mcp:fs", "mcp:gh/search"]
    for choice in ("auto", "none", "required", "read_file", "fs__anything", "gh__search"):
        assert AgentSpec(name="a", tools=tools, tool_choice=choice).tool_choice == choice
    with pytest.raises(ValueError, match="gh__other"):
        AgentSpec(name="a", tools=tools, tool_choice="gh__other")


def test_step_options_are_checked_with_their_path() -> None:
    with pytest.raises(ValueError, match=r"options\.temperature"):
        AgentStep.model_validate(
            {"id": "s", "agent": "a", "prompt": "p", "options": {"temperature": 9}}
        )
    with pytest.raises(ValueError, match="names no provider"):
        AgentStep.model_validate({"id": "s", "agent": "a", "prompt": "p", "model": "m"})
    step = AgentStep.model_validate(
        {"id": "s", "agent": "a", "prompt": "p", "model": "m", "options": {"provider": "local"}}
    )
    assert step.options is not None
    assert step.options.provider == "local"
