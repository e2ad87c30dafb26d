"""The project configuration against real files: podium.toml, [tool.podium] in pyproject.toml and
.mcp.json, found by walking up; every bad input reported at its key path; the digest that never
sees a secret value; named providers in the model resolver and the services."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.llm.openai_server import completion, serve

from podium.agents import AgentOptions, AgentSpec
from podium.config import CONFIG_ENV, ProjectConfig, load_config, recorded_config
from podium.errors import SpecError, UsageError
from podium.llm import clear_model_cache, resolve_model
from podium.llm.base import Message, ModelRequest
from podium.runtime.engine import Engine
from podium.runtime.services import AgentServices
from podium.runtime.submission import check_agent_steps
from podium.spec.load import load_workflow
from podium.store.memory import MemoryEventStore

FULL = """
model = "local:smollm2"
agents = "team"

[providers.local]
type = "openai"
base_url = "http://127.0.0.1:8080/v1"
api_key_env = "LOCAL_KEY"
headers = { X-Team = "research" }
options = { temperature = 0.2, max_tokens = 500 }

[providers.work]
type = "azure"
endpoint = "https://example.openai.azure.com"
api_version = "2024-10-21"
api_key_env = "AZURE_OPENAI_API_KEY"
deployment = "gpt-4o-mini"

[mcpServers.fs]
command = "python"
args = ["server.py"]
env = { ROOT = "." }

[mcpServers.web]
type = "http"
url = "https://mcp.example.com/mcp"
headers = { Authorization = "Bearer s3cr3t-token" }
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _no_config_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_API_KEY", "OPENAI_API_VERSION"):
        monkeypatch.delenv(name, raising=False)
    yield
    clear_model_cache()


def test_a_full_podium_toml_loads(tmp_path: Path) -> None:
    file = write(tmp_path / "podium.toml", FULL)
    config = load_config(path=file)
    assert config.path == file
    assert config.model == "local:smollm2"
    assert config.agents_dir == (tmp_path / "team").resolve()
    local = config.providers["local"]
    assert (local.type, local.base_url, local.headers) == (
        "openai",
        "http://127.0.0.1:8080/v1",
        {"X-Team": "research"},
    )
    assert local.options == AgentOptions(temperature=0.2, max_tokens=500)
    work = config.providers["work"]
    assert (work.type, work.api_version, work.deployment) == ("azure", "2024-10-21", "gpt-4o-mini")
    assert config.mcp_servers["fs"].settings() == {
        "command": "python",
        "args": ["server.py"],
        "env": {"ROOT": "."},
    }
    assert config.mcp_servers["web"].settings()["url"] == "https://mcp.example.com/mcp"
    assert config.record() == {
        "path": str(file),
        "digest": config.digest(),
        "model": "local:smollm2",
        "agents": str((tmp_path / "team").resolve()),
        "providers": ["local", "work"],
        "mcp_servers": ["fs", "web"],
    }


def test_discovery_walks_up_and_pyproject_needs_a_tool_podium_table(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert load_config(deep).path is None  # none anywhere: the defaults
    write(tmp_path / "pyproject.toml", '[tool.podium]\nmodel = "openai:gpt-4o-mini"\n')
    assert load_config(deep).model == "openai:gpt-4o-mini"
    write(tmp_path / "a" / "pyproject.toml", "[project]\nname = 'x'\n")  # no [tool.podium]
    assert load_config(deep).path == tmp_path / "pyproject.toml"
    write(tmp_path / "a" / "podium.toml", 'model = "scripted:s.yaml"\n')
    assert load_config(deep).path == tmp_path / "a" / "podium.toml"


def test_the_environment_variable_and_an_explicit_path_override_discovery(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "podium.toml", 'model = "openai:here"\n')
    other = write(tmp_path / "elsewhere" / "other.toml", 'model = "openai:there"\n')
    monkeypatch.setenv(CONFIG_ENV, str(other))
    assert load_config(tmp_path).model == "openai:there"
    assert load_config(tmp_path, path=tmp_path / "podium.toml").model == "openai:here"
    with pytest.raises(UsageError, match="does not exist"):
        load_config(path=tmp_path / "missing.toml")


def test_mcp_json_beside_the_config_merges_and_the_project_file_wins(tmp_path: Path) -> None:
    write(tmp_path / "podium.toml", '[mcpServers.fs]\ncommand = "mine"\n')
    servers = {"fs": {"command": "theirs"}, "gh": {"type": "http", "url": "https://gh/mcp"}}
    write(tmp_path / ".mcp.json", json.dumps({"mcpServers": servers}))
    config = load_config(tmp_path)
    assert config.mcp_servers["fs"].command == "mine"
    assert config.mcp_servers["fs"].source == str(tmp_path / "podium.toml")
    assert config.mcp_servers["gh"].source == str(tmp_path / ".mcp.json")


def test_an_mcp_json_alone_is_a_configuration(tmp_path: Path) -> None:
    write(tmp_path / ".mcp.json", json.dumps({"mcpServers": {"fs": {"command": "x"}}}))
    (tmp_path / "sub").mkdir()
    config = load_config(tmp_path / "sub")
    assert config.path == tmp_path / ".mcp.json"
    assert list(config.mcp_servers) == ["fs"]


@pytest.mark.parametrize(
    ("text", "where", "says"),
    [
        ('modle = "openai:x"', "modle", "did you mean 'model'?"),
        ('model = "gpt-4o"', "model", "should match pattern"),
        ("[servers.fs]\ncommand = 'x'", "servers", "Podium reads MCP servers from `mcpServers`"),
        (
            "[providers.local]\nbase_url = 'http://x'\napi_key = 'sk'",
            "providers.local.api_key",
            "set `api_key_env`",
        ),
        (
            "[providers.local]\nbase_ulr = 'http://x'",
            "providers.local.base_ulr",
            "did you mean 'base_url'?",
        ),
        ("[providers.local]\ntype = 'bedrock'", "providers.local.type", "'openai' or 'azure'"),
        (
            "[providers.local]\noptions = { temperature = 5 }",
            "providers.local.options.temperature",
            "less than or equal to 2",
        ),
        (
            "[providers.az]\ntype = 'azure'\nendpoint = 'https://x'",
            "providers.az",
            "needs `endpoint` and `api_version`",
        ),
        ("[providers.openai]\nbase_url = 'http://x'", "providers.openai", "built-in provider"),
        (
            "[mcpServers.fs]\nurl = 'http://x'\ncwd = 'here'",
            "mcpServers.fs",
            "apply to a `command`",
        ),
        (
            "[mcpServers.fs]\ncommand = 'x'\nautoApprove = []",
            "mcpServers.fs.autoApprove",
            "tools: [mcp:<server>/<tool>]",
        ),
        (
            "[mcpServers.web]\ntype = 'sse'\nurl = 'http://x'",
            "mcpServers.web.type",
            'type = "stdio" or "http"',
        ),
        ("[mcpServers.web]\nurl = 'http://x'\ncommand = 'y'", "mcpServers.web", "either `command`"),
        ("[mcpServers.web]\nserverUrl = 'http://x'", "mcpServers.web.serverUrl", "use `url`"),
        # each policy section hints at its own keys, not at the keys of `policy`
        ("[policy.network]\nallowed = []", "policy.network.allowed", "did you mean 'allow'?"),
        ("[policy.sandbox]\nenable = false", "policy.sandbox.enable", "did you mean 'enabled'?"),
        ("[policy.files]\npodium = true", "policy.files.podium", "did you mean 'podium_state'?"),
        ("[policy.approve]\nuntrust = 1", "policy.approve.untrust", "did you mean 'untrusted'?"),
        ("[policy.files]\nzzz = 1", "policy.files.zzz", "known keys: podium_state"),
    ],
)
def test_every_bad_input_is_a_problem_at_its_key_path(
    tmp_path: Path, text: str, where: str, says: str
) -> None:
    file = write(tmp_path / "podium.toml", text + "\n")
    with pytest.raises(SpecError) as caught:
        load_config(tmp_path)
    paths = [p.path for p in caught.value.problems]
    assert f"{file}: {where}" in paths, caught.value
    assert says in str(caught.value)


def test_problems_in_pyproject_and_mcp_json_name_their_file(tmp_path: Path) -> None:
    pyproject = write(
        tmp_path / "pyproject.toml",
        "[tool.podium]\nmodle = 'openai:x'\nroot = '/'\n[tool.podium.mcpServers.fs]\ncwd = '.'\n"
        "url = 'http://x'\n",
    )
    mcp = write(tmp_path / ".mcp.json", json.dumps({"mcpServers": {"gh": {"httpUrl": "x"}}}))
    with pytest.raises(SpecError) as caught:
        load_config(tmp_path)
    paths = {p.path for p in caught.value.problems}
    assert paths == {
        f"{pyproject}: tool.podium.modle",
        f"{pyproject}: tool.podium.root",
        f"{pyproject}: tool.podium.mcpServers.fs",
        f"{mcp}: mcpServers.gh.httpUrl",
    }
    write(tmp_path / ".mcp.json", '{"servers": {}}')
    with pytest.raises(SpecError, match="only the `mcpServers` object"):
        load_config(tmp_path)
    write(tmp_path / ".mcp.json", "{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        load_config(tmp_path)


def test_the_digest_ignores_secret_values_but_not_names(tmp_path: Path) -> None:
    file = write(tmp_path / "podium.toml", FULL)
    before = load_config(path=file).digest()
    write(
        file,
        FULL.replace("Bearer s3cr3t-token", "Bearer other").replace('ROOT = "."', 'ROOT = "/"'),
    )
    assert load_config(path=file).digest() == before
    assert "s3cr3t" not in json.dumps(load_config(path=file).record())
    write(file, FULL.replace("LOCAL_KEY", "OTHER_KEY"))
    assert load_config(path=file).digest() != before


def test_a_recorded_configuration_is_re_read_noted_when_changed_and_missing_is_an_error(
    tmp_path: Path,
) -> None:
    file = write(tmp_path / "podium.toml", 'model = "openai:a"\n')
    record = load_config(path=file).record()
    assert recorded_config(record) == (load_config(path=file), None)
    write(file, 'model = "openai:b"\n')
    config, note = recorded_config(record)
    assert config is not None
    assert config.model == "openai:b"
    assert note == f"configuration {file} changed since the run started; using the current file"
    file.unlink()
    with pytest.raises(UsageError, match=f"{file} is gone"):
        recorded_config(record)
    assert recorded_config({"path": None}) == (None, None)


def test_a_named_provider_resolves_with_its_settings_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(path=write(tmp_path / "podium.toml", FULL))
    monkeypatch.setenv("LOCAL_KEY", "k-1")
    model = resolve_model("local:smollm2", providers=config.providers)
    assert model.name == "openai:smollm2"
    assert resolve_model("local:smollm2", providers=config.providers) is model
    monkeypatch.delenv("LOCAL_KEY")
    with pytest.raises(UsageError) as caught:
        resolve_model("local:other", providers=config.providers, agent="writer", step="draft")
    message = str(caught.value)
    for part in ("agent 'writer'", "step 'draft'", "provider 'local'", "set LOCAL_KEY"):
        assert part in message
    with pytest.raises(UsageError, match=r"configured: local, work"):
        resolve_model("nowhere:m", providers=config.providers)


def _services(tmp_path: Path, config: ProjectConfig, agent: str) -> AgentServices:
    write(tmp_path / "team" / "a.md", agent)
    return AgentServices(project_dir=tmp_path, config=config)


def test_submission_refuses_unknown_providers_and_missing_keys_of_used_providers_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOCAL_KEY", raising=False)
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    config = load_config(path=write(tmp_path / "podium.toml", FULL.replace("local:", "openai:")))
    services = _services(tmp_path, config, "---\nname: a\nmodel: smollm2\nprovider: local\n---\n")
    step = {"id": "s", "kind": "agent", "agent": "a", "prompt": "hi"}
    workflow = load_workflow({"name": "w", "steps": [step]})
    with pytest.raises(UsageError, match=r"agent 'a' in step 's' uses provider 'local'.*LOCAL_KEY"):
        check_agent_steps(workflow, services)  # the azure key is never asked for
    monkeypatch.setenv("LOCAL_KEY", "k")
    check_agent_steps(workflow, services)
    other = {**step, "model": "ghost:m"}
    with pytest.raises(UsageError, match=r"step 's'.*unknown model provider 'ghost'"):
        check_agent_steps(load_workflow({"name": "w", "steps": [other]}), services)
    assert services.model_string(AgentSpec(name="b", model="m", provider="work")) == "work:m"


def test_the_services_take_mcp_servers_agents_folder_and_model_from_the_config(
    tmp_path: Path,
) -> None:
    config = load_config(path=write(tmp_path / "podium.toml", FULL))
    services = _services(tmp_path, config, "---\nname: a\n---\nHello.\n")
    assert services.default_model == "local:smollm2"
    assert services.catalog.names() == ["a"]
    assert services.configured
    explicit = AgentServices(project_dir=tmp_path, default_model="openai:x", config=config)
    assert explicit.default_model == "openai:x"  # an explicit argument wins


async def test_a_named_provider_sends_its_headers_key_and_default_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for server in serve():
        server.script(completion("hello"), completion("from azure"))
        endpoint = server.url.removesuffix("/v1")
        text = (
            f'[providers.local]\nbase_url = "{server.url}"\napi_key_env = "LOCAL_KEY"\n'
            'headers = { X-Team = "research" }\noptions = { temperature = 0.25, seed = 3 }\n'
            f'[providers.work]\ntype = "azure"\nendpoint = "{endpoint}"\n'
            'api_version = "2024-10-21"\napi_key_env = "AZ_KEY"\ndeployment = "prod-4o"\n'
        )
        config = load_config(path=write(tmp_path / "podium.toml", text))
        monkeypatch.setenv("LOCAL_KEY", "k-local")
        monkeypatch.setenv("AZ_KEY", "k-azure")
        local = resolve_model("local:smollm2", providers=config.providers)
        assert (await local.complete(ask())).message.content == "hello"
        sent = server.last
        assert sent.headers["x-team"] == "research"
        assert sent.headers["authorization"] == "Bearer k-local"
        assert (sent.body["model"], sent.body["temperature"], sent.body["seed"]) == (
            "smollm2",
            0.25,
            3,
        )
        work = resolve_model("work:gpt-4o", providers=config.providers)
        assert (await work.complete(ask())).message.content == "from azure"
        assert server.last.path == (
            "/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21"
        )
        assert server.last.headers["api-key"] == "k-azure"
        for model in (local, work):
            await model.aclose()  # type: ignore[attr-defined]


def ask() -> ModelRequest:
    return ModelRequest(messages=(Message(role="user", content="hi"),))


def test_the_readme_example_loads(tmp_path: Path) -> None:
    readme = Path(__file__).resolve().parents[1] / "README.md"
    first, *others = re.findall(r"```toml\n(.*?)```", readme.read_text(), flags=re.S)
    for i, block in enumerate(others):  # every other example (policies, routing) loads too
        load_config(path=write(tmp_path / f"other{i}" / "podium.toml", block))
    config = load_config(path=write(tmp_path / "podium.toml", first))
    assert sorted(config.providers) == ["local", "work"]
    assert sorted(config.mcp_servers) == ["fs", "search"]
    assert config.providers["local"].options.timeout == 60.0


def test_a_step_tool_choice_must_name_one_of_its_agents_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")  # the model could be called
    services = _services(tmp_path, ProjectConfig(root=tmp_path, agents=Path("team")), ADDER)
    step = {"id": "s", "kind": "agent", "agent": "a", "prompt": "hi", "model": "openai:m"}
    good = {**step, "options": {"tool_choice": "fs__add"}}
    check_agent_steps(load_workflow({"name": "w", "steps": [good]}), services)
    bad = {**step, "options": {"tool_choice": "write_file"}}
    with pytest.raises(SpecError) as caught:
        check_agent_steps(load_workflow({"name": "w", "steps": [bad]}), services)
    assert [p.path for p in caught.value.problems] == ["steps[0].options.tool_choice"]


ADDER = "---\nname: a\ntools: ['mcp:fs']\n---\nAdd.\n"
FAILING = {"name": "w", "steps": [{"id": "gate", "kind": "shell", "run": "test -f ok"}]}


async def test_an_engine_taking_a_run_over_re_reads_its_recorded_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    file = write(tmp_path / "podium.toml", '[mcpServers.fs]\ncommand = "x"\n')
    async with await Engine.open(tmp_path / "p.db", config=load_config(path=file)) as first:
        state = await first.wait(await first.submit(FAILING, run_id="r"))
    assert state.status == "failed"
    write(file, '[mcpServers.fs]\ncommand = "y"\n')
    (tmp_path / "ok").write_text("")
    async with await Engine.open(tmp_path / "p.db") as second:
        assert await second.retry("r", "gate")
        assert (await second.wait("r")).status == "succeeded"
        assert second.services.config.path == file
        assert second.services.config.mcp_servers["fs"].command == "y"
        assert second.config_notes == [
            f"configuration {file} changed since the run started; using the current file"
        ]


def test_an_explicit_agents_dir_wins_over_the_configured_agents_folder(tmp_path: Path) -> None:
    config = load_config(path=write(tmp_path / "podium.toml", 'agents = "team"\n'))
    write(tmp_path / "team" / "a.md", "---\nname: from-config\n---\nA.\n")
    write(tmp_path / "mine" / "agents" / "b.md", "---\nname: given\n---\nB.\n")
    engine = Engine(MemoryEventStore(), config=config, agents_dir=tmp_path / "mine")
    assert engine.services.catalog.names() == ["given"]
    assert Engine(MemoryEventStore(), config=config).services.catalog.names() == ["from-config"]


def test_a_provider_says_whether_its_models_take_images_and_how_to_get_json(
    tmp_path: Path,
) -> None:
    file = write(
        tmp_path / "podium.toml",
        '[providers.vision]\nbase_url = "http://127.0.0.1:9/v1"\nimages = true\n'
        'structured_output = "json_object"\n'
        '[providers.plain]\nbase_url = "http://127.0.0.1:9/v1"\n',
    )
    config = load_config(path=file)
    clear_model_cache()
    seeing = resolve_model("vision:llava", providers=config.providers)
    blind = resolve_model("plain:smollm2", providers=config.providers)
    assert getattr(seeing, "accepts_images", None) is True
    assert getattr(blind, "accepts_images", None) is False
    assert getattr(seeing, "structured_mode", None) == "json_object"
    bad = write(tmp_path / "bad.toml", '[providers.x]\nstructured_output = "xml"\n')
    with pytest.raises(SpecError, match="structured_output"):
        load_config(path=bad)


def test_a_stdio_servers_cwd_is_relative_to_the_file_that_names_it(tmp_path: Path) -> None:
    (tmp_path / "tools").mkdir()
    write(tmp_path / "podium.toml", "[mcpServers.fs]\ncommand = 'srv'\ncwd = 'tools'\n")
    server = load_config(tmp_path).mcp_servers["fs"]
    assert server.cwd == str((tmp_path / "tools").resolve())
    assert server.settings()["cwd"] == server.cwd
