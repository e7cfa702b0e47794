"""The targets tool: which projects and regions this server answers for, and whether each answers now.

Without it a model cannot know what to pass as ``target`` or ``workspace_id``. Reachability is a fresh probe
(one listing row from each target, all in parallel, each bounded by ``PROBE_SECONDS``), so a slow target costs
that long at most and the answer says which target is down and why.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from mcp.server import MCPServer
from mcp.types import CallToolResult
from pydantic import BaseModel, Field
from services_bot.core.client import ListParams, ModelArtsClient
from services_bot.core.errors import ServicesBotError
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
    reachable: bool = Field(description="Whether the target answered a one-row listing just now.")
    problem: str | None = Field(None, description="Why it is not reachable (the error and its fix).")
    latency_ms: int | None = Field(None, description="How long the probe took.")


class TargetList(BaseModel):
    total: int
    targets: list[TargetRow]


async def probe(client: ModelArtsClient, seconds: float = PROBE_SECONDS) -> TargetRow:
    """``client``'s target, with whether one listing row comes back within ``seconds``."""
    target = client.target
    row = TargetRow(
        name=target.name,
        region=target.region,
        project_id=target.project_id,
        endpoint=target.endpoint,
        workspaces=list(target.workspace_ids),
        reachable=False,
    )
    started = time.monotonic()
    workspace = target.workspace_ids[0] if target.workspace_ids else None
    try:
        await asyncio.wait_for(client.list_page(ListParams(workspace_id=workspace), limit=2), seconds)
    except TimeoutError:
        row.problem = f"No answer within {seconds:g} s."
    except ServicesBotError as exc:
        row.problem = exc.user_text()
    else:
        row.reachable = True
    row.latency_ms = round((time.monotonic() - started) * 1000)
    return row


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
            *table(rows, ("name", "region", "project_id", "workspaces", "reachable", "latency_ms", "endpoint")),
            *(f"{r.name} is not reachable: {r.problem}" for r in down),
        ]
        return answer(TargetList(total=len(rows), targets=list(rows)), "\n".join(lines))
