"""The targets tool: which projects and regions this server answers for, and whether each answers now.

Without it a model cannot know what to pass as ``target`` or ``workspace_id``. Reachability is a fresh probe
(one listing row from each target and API generation, all in parallel, each bounded by ``PROBE_SECONDS``), so
a slow target costs that long at most and the answer says which target is down and why.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from mcp.server import MCPServer
from mcp.types import CallToolResult
from pydantic import BaseModel, Field
from services_bot.core.client import ListParams
from services_bot.core.generations import TargetClient
from services_bot.tools.conventions import answer, register
from services_bot.tools.rendering import table
from services_bot.tools.state import ToolState

PROBE_SECONDS = 3.0


class TargetRow(BaseModel):
    """One configured target. One model per row, so a new fact about targets is one more field here."""

    name: str = Field(description="Pass as `target` to the other tools.")
    region: str | None = None
    project_id: str
    endpoint: str
    workspaces: list[str] = Field(
        description="The workspace ids listed for this target; empty means the API's default workspace only."
    )
    api_generation: str = Field(description="Which services API the target is set to read: v1, v2 or both.")
    generations: list[str] = Field(description="The API generations that answered a one-row listing just now.")
    reachable: bool = Field(description="Whether any generation answered a one-row listing just now.")
    problem: str | None = Field(
        None, description="Why a generation did not answer (its error and fix), or that it is not served there."
    )
    latency_ms: int | None = Field(None, description="How long the probe took.")


TARGET_COLUMNS = (
    "name", "region", "project_id", "workspaces", "api_generation", "generations", "reachable", "latency_ms",
    "endpoint",
)  # fmt: skip


class TargetList(BaseModel):
    total: int
    targets: list[TargetRow]


async def probe(client: TargetClient, seconds: float = PROBE_SECONDS) -> TargetRow:
    """``client``'s target, with whether one listing row comes back within ``seconds`` from each generation."""
    target = client.target
    started = time.monotonic()
    workspace = target.workspace_ids[0] if target.workspace_ids else None
    answers = await client.probe(ListParams(workspace_id=workspace), seconds)
    answering = [g for g, problem in answers.items() if problem is None]
    problems = [f"{g}: {problem}" for g, problem in answers.items() if problem is not None]
    return TargetRow(
        name=target.name,
        region=target.region,
        project_id=target.project_id,
        endpoint=target.endpoint,
        workspaces=list(target.workspace_ids),
        api_generation=target.api_generation,
        generations=answering,
        reachable=bool(answering),
        problem="; ".join(problems) or None,
        latency_ms=round((time.monotonic() - started) * 1000),
    )


def register_target_tools(server: MCPServer, state: ToolState) -> None:
    @register(server, title="List targets")
    async def list_targets() -> Annotated[CallToolResult, TargetList]:
        """The targets (project and region) this server answers for, the workspaces listed in each, and whether
        each is reachable right now.

        Use it to learn what to pass as `target` or `workspace_id` to the other tools, or why answers are
        incomplete. Example: {}.
        """
        rows = await asyncio.gather(*(probe(c) for c in state.ready_queries.clients))
        down = [r for r in rows if not r.reachable]
        lines = [
            f"total: {len(rows)} targets; reachable: {len(rows) - len(down)}; not reachable: {len(down)}.",
            *table(rows, TARGET_COLUMNS),
            *(f"{r.name} is not reachable: {r.problem}" for r in down),
            *(f"{r.name} answers, but {r.problem}" for r in rows if r.reachable and r.problem),
        ]
        return answer(TargetList(total=len(rows), targets=list(rows)), "\n".join(lines))
