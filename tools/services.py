"""Service tools: list, one service's details, and the summary of what is unhealthy.

Rows are compact by default (a few fields per service, totals always given, a cursor for more) so an agent's
context is not flooded; the text of every answer carries the same data (``tools.rendering``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from mcp.server import MCPServer
from mcp.types import CallToolResult
from pydantic import BaseModel, Field
from services_bot.core.errors import ServicesBotError
from services_bot.core.limits import (
    MAX_CURSOR_CHARS,
    MAX_ID_CHARS,
    MAX_PATTERN_CHARS,
    MAX_SERVICE_REF_CHARS,
    MAX_TAGS_CHARS,
)
from services_bot.core.models import FAILED_STATUSES, KNOWN_INFER_TYPES, KNOWN_STATUSES, Service
from services_bot.core.query import ServiceQuery
from services_bot.tools.conventions import answer, at_most, register, tool_error
from services_bot.tools.rendering import compact_json, paging_line, table, warning_lines
from services_bot.tools.state import ToolState

StatusName = Literal[
    "running", "deploying", "concerning", "failed", "stopped", "finished", "stopping", "deleting", "pending", "waiting",
    "error", "upgrading", "interrupting", "init",
]  # fmt: skip
InferType = Literal["real-time", "batch", "edge", "async-real-time"]
Detail = Literal["compact", "full"]
assert set(StatusName.__args__) == set(KNOWN_STATUSES) and set(InferType.__args__) == set(KNOWN_INFER_TYPES)  # type: ignore[attr-defined]

TargetArg = Annotated[
    str | None,
    Field(
        description=f"Only this target (a name from list_targets); omit for all. At most {MAX_ID_CHARS} characters.",
        json_schema_extra=at_most(MAX_ID_CHARS),
    ),
]
CursorArg = Annotated[
    str | None,
    Field(
        description="next_cursor of the previous page, with the same other arguments.",
        json_schema_extra=at_most(MAX_CURSOR_CHARS),
    ),
]
WorkspaceArg = Annotated[
    str | None,
    Field(
        description=f"Only this workspace id (default: the target's workspaces). At most {MAX_ID_CHARS} characters.",
        json_schema_extra=at_most(MAX_ID_CHARS),
    ),
]


class ServiceRow(BaseModel):
    """One service in a few fields: enough to decide what to look at next."""

    service_id: str
    service_name: str | None = None
    status: str | None = None
    infer_type: str | None = None
    workspace_id: str | None = None
    transition_at: datetime | None = Field(None, description="When the status last changed (UTC).")
    invocation_times: int | None = None
    failed_times: int | None = None
    error_msg: str | None = Field(None, description="Failure cause; only for failed (and v2 error) services.")
    target: str | None = None
    generation: str = Field("v1", description="API generation the service came from: v1 or v2.")
    description: str | None = Field(None, description="detail=full only, as are the fields below.")
    publish_at: datetime | None = None
    progress: int | None = None
    owner: str | None = None
    is_shared: bool | None = None
    shared_count: int | None = None
    due_time: datetime | None = None

    @classmethod
    def of(cls, s: Service, detail: Detail = "compact") -> ServiceRow:
        more = (
            {
                "description": s.description,
                "publish_at": s.publish_at,
                "progress": s.progress,
                "owner": s.owner,
                "is_shared": s.is_shared,
                "shared_count": s.shared_count,
                "due_time": s.due_time,
            }
            if detail == "full"
            else {}
        )
        return cls(
            **more,
            service_id=s.service_id,
            service_name=s.service_name,
            status=s.status,
            infer_type=s.infer_type,
            workspace_id=s.workspace_id,
            transition_at=s.transition_at,
            invocation_times=s.invocation_times,
            failed_times=s.failed_times,
            error_msg=s.error_msg if s.status in FAILED_STATUSES else None,
            target=s.target,
            generation=s.generation,
        )


ROW_COLUMNS = (
    "service_name", "status", "infer_type", "workspace_id", "transition_at", "service_id", "target", "generation"
)  # fmt: skip
FULL_COLUMNS = ("publish_at", "progress", "owner", "is_shared", "shared_count", "due_time", "description")
CAUSE_COLUMNS = ("invocation_times", "failed_times", "error_msg")


class ServiceList(BaseModel):
    total: int = Field(description="All services matching the filters, including those not in this page.")
    returned: int
    services: list[ServiceRow]
    next_cursor: str | None = Field(None, description="Pass as `cursor` to get the next page; null when done.")
    warnings: list[str] = Field(default_factory=list)
    complete: bool = Field(True, description="False when ModelArts returned only part of the listing (see warnings).")


class ServiceSummary(BaseModel):
    total: int
    by_status: dict[str, int]
    by_infer_type: dict[str, int]
    by_generation: dict[str, int] = Field(description="Services by the API generation they came from (v1, v2).")
    unhealthy_total: int
    unhealthy: list[ServiceRow] = Field(description="Failed, error and concerning services, latest change first.")
    warnings: list[str] = Field(default_factory=list)
    complete: bool = Field(True, description="False when ModelArts returned only part of the listing (see warnings).")


def register_service_tools(server: MCPServer, state: ToolState) -> None:
    @register(server, title="List services")
    async def list_services(
        status: Annotated[
            list[StatusName] | None,
            Field(description="Any of these statuses (one status as a string is fine); omit for all."),
        ] = None,
        name: Annotated[
            str | None,
            Field(
                description=f"Name substring, or glob with * ? [ ] (case-insensitive); at most {MAX_PATTERN_CHARS} "
                "characters. An unclosed [ is a literal [.",
                json_schema_extra=at_most(MAX_PATTERN_CHARS),
            ),
        ] = None,
        infer_type: Annotated[InferType | None, Field(description="Only this service type.")] = None,
        workspace_id: WorkspaceArg = None,
        model_id: Annotated[
            str | None,
            Field(
                description=f"Only services deploying this model id; at most {MAX_ID_CHARS} characters.",
                json_schema_extra=at_most(MAX_ID_CHARS),
            ),
        ] = None,
        tags: Annotated[
            str | None,
            Field(
                description=f"Tag filter passed to the API, e.g. team=ocr; at most {MAX_TAGS_CHARS} characters.",
                json_schema_extra=at_most(MAX_TAGS_CHARS),
            ),
        ] = None,
        pool: Annotated[
            str | None,
            Field(
                description=f"Only services in this dedicated pool (its id); v2 services only, since v1 listings "
                f"carry no pool. At most {MAX_ID_CHARS} characters.",
                json_schema_extra=at_most(MAX_ID_CHARS),
            ),
        ] = None,
        target: TargetArg = None,
        sort_by: Annotated[Literal["changed", "published", "name"], Field(description="Sort key.")] = "changed",
        order: Annotated[
            Literal["asc", "desc"] | None, Field(description="Default desc for times, asc for names.")
        ] = None,
        limit: Annotated[int, Field(ge=1, le=200, description="Rows per page (1-200).")] = 50,
        cursor: CursorArg = None,
        detail: Annotated[Detail, Field(description="compact rows (default) or full list rows.")] = "compact",
    ) -> Annotated[CallToolResult, ServiceList]:
        """List ModelArts inference services with filters; compact rows, newest status change first.

        Use it to find services by status, name, type, workspace or target. Failed rows include error_msg.
        `total` counts every match; pass `next_cursor` back as `cursor` for the next page.
        Example: {"status": ["failed", "concerning"], "infer_type": "real-time", "limit": 20}.
        For one service's full details use get_service.
        """
        try:
            query = ServiceQuery.build(
                statuses=list(status or []), name=name, infer_type=infer_type, workspace_id=workspace_id,
                model_id=model_id, tags=tags, pool=pool, target=target, sort=sort_by, order=order, limit=limit,
                cursor=cursor,
            )  # fmt: skip
            result = await state.ready_queries.list(query)
        except ServicesBotError as exc:
            raise tool_error(exc) from None
        rows = [ServiceRow.of(s, detail) for s in result.services]
        listing = ServiceList(
            total=result.total,
            returned=len(rows),
            services=rows,
            next_cursor=result.next_cursor,
            warnings=result.warnings,
            complete=result.complete,
        )
        columns = (*ROW_COLUMNS, *CAUSE_COLUMNS, *(FULL_COLUMNS if detail == "full" else ()))
        lines = [
            f"Services: {result.description}.",
            *warning_lines(result.warnings, result.complete),  # before anything a reader could take as whole
            paging_line(result.total, len(rows), result.next_cursor, "services"),
            *table(rows, columns),
        ]
        return answer(listing, "\n".join(lines), always=("next_cursor", "complete"))

    @register(server, title="Get one service")
    async def get_service(
        service: Annotated[
            str,
            Field(
                description=f"A service id, or a service's exact name; at most {MAX_SERVICE_REF_CHARS} characters.",
                json_schema_extra=at_most(MAX_SERVICE_REF_CHARS),
            ),
        ],
        target: TargetArg = None,
    ) -> Annotated[CallToolResult, Service]:
        """Full details of one service: status, error_msg, models (version, weight, instances, flavor), access
        address, edge nodes, schedule and times.

        An ambiguous name returns the candidate ids; an unknown one returns the closest names.
        Example: {"service": "ocr-invoice-prod"}.
        """
        try:
            found = await state.ready_queries.get(service, target=target)
        except ServicesBotError as exc:
            raise tool_error(exc) from None
        data = found.model_dump(mode="json", exclude_none=True)
        text = f"Service {found.display_name} [{found.status}], all fields as JSON:\n{compact_json(data)}"
        return answer(found, text)

    @register(server, title="Summarize services")
    async def summarize_services(
        infer_type: Annotated[InferType | None, Field(description="Only this service type.")] = None,
        workspace_id: WorkspaceArg = None,
        target: TargetArg = None,
    ) -> Annotated[CallToolResult, ServiceSummary]:
        """Counts of services by status and by type, and the unhealthy ones (failed, concerning) with their
        error messages.

        The best first call for "what is wrong with our ModelArts services?".
        Example: {}.
        """
        try:
            summary = await state.ready_queries.summary(
                ServiceQuery.build(infer_type=infer_type, workspace_id=workspace_id, target=target)
            )
        except ServicesBotError as exc:
            raise tool_error(exc) from None
        unhealthy = [ServiceRow.of(s) for s in summary.unhealthy]
        result = ServiceSummary(
            total=summary.total,
            by_status=summary.by_status,
            by_infer_type=summary.by_infer_type,
            by_generation=summary.by_generation,
            unhealthy_total=summary.unhealthy_total,
            unhealthy=unhealthy,
            warnings=summary.warnings,
            complete=summary.complete,
        )
        shown = (
            f"unhealthy: {summary.unhealthy_total} (failed, error or concerning); all {len(unhealthy)} shown below"
            if len(unhealthy) == summary.unhealthy_total
            else f"unhealthy: {summary.unhealthy_total} (failed, error or concerning); the latest {len(unhealthy)} "
            'shown below, list_services {"status": ["failed", "error", "concerning"]} lists them all'
        )
        lines = [
            f"Summary of {summary.description}: {summary.total} services.",
            *warning_lines(summary.warnings, summary.complete),
            "by status: " + (", ".join(f"{k} {v}" for k, v in summary.by_status.items()) or "none"),
            "by type: " + (", ".join(f"{k} {v}" for k, v in summary.by_infer_type.items()) or "none"),
            "by API generation: " + (", ".join(f"{k} {v}" for k, v in summary.by_generation.items()) or "none"),
            shown,
            *table(unhealthy, (*ROW_COLUMNS, *CAUSE_COLUMNS)),
        ]
        return answer(result, "\n".join(lines), always=("complete",))
