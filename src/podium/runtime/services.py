"""The services agent steps use: the agent catalog, models, prices and tools, shared by the runs
of one engine and built on first use."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from podium.agents import AgentCatalog, AgentSpec
from podium.errors import UsageError
from podium.llm import resolve_model
from podium.llm.base import Model, ModelResponse
from podium.llm.prices import cost_usd
from podium.steps.base import StepContext
from podium.tools.base import McpServerConfig, Tool, ToolRegistry

DEFAULT_MODEL_ENV = "PODIUM_MODEL"


class AgentServices:
    """Implements `podium.steps.agent.AgentServices` for one engine."""

    def __init__(
        self,
        *,
        project_dir: Path,
        user_dir: Path | None = None,
        default_model: str | None = None,
        mcp_servers: Mapping[str, Mapping[str, Any]] | None = None,
        catalog: AgentCatalog | None = None,
    ) -> None:
        self._project_dir = project_dir
        self._user_dir = user_dir
        self._default_model = default_model or os.environ.get(DEFAULT_MODEL_ENV)
        self._servers = McpServerConfig.from_mapping(mcp_servers or {})
        self._catalog = catalog
        self._tools: ToolRegistry | None = None

    @property
    def catalog(self) -> AgentCatalog:
        """The catalog, loaded on first use (a SpecError lists every problem in every file)."""
        if self._catalog is None:
            self._catalog = AgentCatalog.load(self._project_dir, self._user_dir)
        return self._catalog

    def agent(self, name: str) -> AgentSpec:
        return self.catalog.resolve(name)

    def model(self, spec: str | None) -> Model:
        chosen = spec or self._default_model
        if not chosen:
            raise UsageError(
                "no model: give the agent a `model:` (e.g. openai:gpt-4o-mini), the step a "
                f"`model:`, or set {DEFAULT_MODEL_ENV} / --model"
            )
        return resolve_model(chosen)

    def cost_usd(self, model: Model, response: ModelResponse) -> float:
        return cost_usd(model.name, response.usage)

    @asynccontextmanager
    async def toolbox(
        self, names: Sequence[str], ctx: StepContext
    ) -> AsyncIterator[Mapping[str, Tool]]:
        if not names:
            yield {}
            return
        tools = await self._registry().resolve(names)
        yield {tool.spec.name: tool for tool in tools}

    def _registry(self) -> ToolRegistry:
        if self._tools is None:
            self._tools = ToolRegistry(self._servers)
        return self._tools

    async def aclose(self) -> None:
        if self._tools is not None:
            await self._tools.aclose()
            self._tools = None
