"""Events and load tools: why a service failed and what changed (its timeline), and how loaded it is.

Both read a service the caller's token may see (``ToolState.ready_queries``), through the generation it came
from. The timeline pages with a cursor over the newest events (at most ``core.insights.MAX_EVENTS``); its text
carries every returned row, the total and the literal ``next_cursor``, as the other tools' text does.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Annotated, Literal

from mcp.server import MCPServer
from mcp.types import CallToolResult
from pydantic import BaseModel, Field
from services_bot.core.errors import ServicesBotError
from services_bot.core.insights import MAX_EVENTS, ServiceInsights
from services_bot.core.limits import MAX_DURATION_CHARS, MAX_SERVICE_REF_CHARS
from services_bot.core.models_events import Load
from services_bot.core.notifications import MAX_HISTORY_SINCE, parse_duration
from services_bot.core.query import decode_cursor, encode_cursor
from services_bot.tools.conventions import answer, at_most, register, tool_error
from services_bot.tools.rendering import paging_line, table
from services_bot.tools.services import CursorArg, TargetArg
from services_bot.tools.state import ToolState

ServiceArg = Annotated[
    str,
    Field(
        description=f"A service id, or a service's exact name; at most {MAX_SERVICE_REF_CHARS} characters.",
        json_schema_extra=at_most(MAX_SERVICE_REF_CHARS),
    ),
]


class EventRow(BaseModel):
    """One event or configuration update of a service."""

    at: datetime | None = Field(None, description="When it (last) happened (UTC).")
    kind: str = Field(description="normal, warning or abnormal; warning and abnormal events explain failures.")
    text: str = Field(description="The event text as ModelArts gives it (untrusted, at most 500 characters).")
    count: int = Field(1, description="How often it happened (v2 aggregates repeats, e.g. a crash loop).")
    first_at: datetime | None = Field(None, description="First occurrence, when repeated (UTC).")
    source: str = Field("event", description="event, or update (a configuration update and its result).")


class LastUpdate(BaseModel):
    at: datetime | None = None
    result: str = Field(description="success, fail or running.")


class EventList(BaseModel):
    service_id: str
    service_name: str | None = None
    generation: str = Field(description="The API generation the events came from: v1 or v2.")
    total: int = Field(description="Events matching the filters, as ModelArts counts them, plus the updates.")
    returned: int
    events: list[EventRow] = Field(description="Newest first.")
    last_update: LastUpdate | None = None
    next_cursor: str | None = Field(None, description="Pass as `cursor` to get the next page; null when done.")
    notes: list[str] = Field(default_factory=list, description="What could not be read, and why.")


class ServiceLoad(BaseModel):
    service_id: str
    service_name: str | None = None
    status: str | None = None
    generation: str
    load: Load | None = Field(None, description="Running against wanted instances and usage per model.")
    instances_down: bool = Field(description="True when fewer instances run than are wanted.")
    notes: list[str] = Field(default_factory=list, description="What could not be read, and why.")


EVENT_COLUMNS = ("at", "kind", "count", "source", "text", "first_at")
MODEL_COLUMNS = (
    "name",
    "status",
    "running",
    "wanted",
    "cpu_cores",
    "memory_mb",
    "gpus",
    "npus",
    "calls",
    "failed_calls",
)


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:12]


def register_event_tools(server: MCPServer, state: ToolState) -> None:
    @register(server, title="Get a service's events")
    async def get_service_events(
        service: ServiceArg,
        since: Annotated[
            str | None,
            Field(
                description="How far back: 30m, 2h, 1d, 1w (at most 366 days). Default: all the API keeps.",
                json_schema_extra=at_most(MAX_DURATION_CHARS),
            ),
        ] = None,
        event_type: Annotated[
            Literal["abnormal", "warning", "normal"] | None,
            Field(description="abnormal = abnormal and warning events and failed updates; omit for all."),
        ] = None,
        target: TargetArg = None,
        limit: Annotated[int, Field(ge=1, le=100, description="Events per page (1-100).")] = 20,
        cursor: CursorArg = None,
    ) -> Annotated[CallToolResult, EventList]:
        """A service's events and configuration updates, newest first: why it failed (image pull, insufficient
        pool resources, health check) and what changed (the last update and its result).

        `total` counts every match; pass `next_cursor` back as `cursor` for the next page. A failing events call
        still answers, with a note. Example: {"service": "ocr-invoice-prod", "event_type": "abnormal", "since": "2h"}.
        """
        try:
            window = parse_duration(since, at_most=MAX_HISTORY_SINCE) if since else None
            queries = state.ready_queries
            found = await queries.get(service, target=target)
            fingerprint = _fingerprint(found.service_id, since, event_type, target)
            offset = decode_cursor(cursor, fingerprint) if cursor else 0
            timeline = await ServiceInsights(queries).timeline(found, since=window, kind=event_type, limit=MAX_EVENTS)
        except ServicesBotError as exc:
            raise tool_error(exc) from None
        page = timeline.entries[offset : offset + limit]
        end = offset + len(page)
        rows = [EventRow(**e.model_dump()) for e in page]
        result = EventList(
            service_id=found.service_id,
            service_name=found.service_name,
            generation=found.generation,
            total=timeline.total,
            returned=len(rows),
            events=rows,
            last_update=LastUpdate(**timeline.last_update.model_dump()) if timeline.last_update else None,
            next_cursor=encode_cursor(end, fingerprint) if end < len(timeline.entries) else None,
            notes=timeline.notes,
        )
        update = timeline.last_update
        lines = [
            f"Events of {found.display_name} [{found.status}] (API {found.generation}), newest first.",
            *(f"note: {n}" for n in timeline.notes),
            paging_line(timeline.total, len(rows), result.next_cursor, "events and updates"),
            f"last update: {update.at:%Y-%m-%dT%H:%M:%SZ} {update.result}"
            if update and update.at
            else "last update: none recorded",
            *table(rows, EVENT_COLUMNS),
        ]
        return answer(result, "\n".join(lines), always=("next_cursor",))

    @register(server, title="Get a service's load")
    async def get_service_load(service: ServiceArg, target: TargetArg = None) -> Annotated[CallToolResult, ServiceLoad]:
        """How loaded a service is: running against wanted instances, requests per minute, and per model CPU
        cores, memory (MB), GPUs and NPUs used of the total, and calls (v1 monitor; on v2, deployments and pods).

        `instances_down` is true when fewer instances run than are wanted. Example: {"service": "ocr-invoice-prod"}.
        """
        try:
            queries = state.ready_queries
            found = await queries.get(service, target=target)
            answered = await ServiceInsights(queries).load(found)
        except ServicesBotError as exc:
            raise tool_error(exc) from None
        load = answered.load
        result = ServiceLoad(
            service_id=found.service_id,
            service_name=found.service_name,
            status=found.status,
            generation=found.generation,
            load=load,
            instances_down=bool(load and load.short),
            notes=answered.notes,
        )
        lines = [f"Load of {found.display_name} [{found.status}] (API {found.generation})."]
        lines += [f"note: {n}" for n in answered.notes]
        if load is not None:
            lines.append(
                f"instances: {load.running if load.running is not None else '?'} running of "
                f"{load.wanted if load.wanted is not None else '?'} wanted"
                + ("; INSTANCES DOWN" if load.short else "")
                + (f"; requests/min: {load.requests_per_minute}" if load.requests_per_minute is not None else "")
            )
            lines += table(load.models, MODEL_COLUMNS)
        return answer(result, "\n".join(lines))
