"""The MCP server: the query layer as three read-only tools for LLM agents.

Answers are compact by default (one small row per service, totals always given, a cursor for more) so an
agent's context window is not flooded; mistakes come back as tool errors that say how to fix the call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp.server.subscriptions import ResourceUpdated, SubscriptionBus
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field
from services_bot.core.errors import ServicesBotError
from services_bot.core.limits import (
    MAX_CURSOR_CHARS,
    MAX_DURATION_CHARS,
    MAX_ID_CHARS,
    MAX_PATTERN_CHARS,
    MAX_SERVICE_REF_CHARS,
    MAX_TAGS_CHARS,
    check_length,
)
from services_bot.core.metrics import MCP_TOOL_CALLS
from services_bot.core.models import FAILED_STATUSES, KNOWN_INFER_TYPES, KNOWN_STATUSES, Service
from services_bot.core.notifications import MAX_HISTORY_SINCE, Transition, parse_duration
from services_bot.core.query import ServiceQueries, ServiceQuery
from services_bot.core.store import Store
from services_bot.core.version import VERSION

StatusName = Literal[
    "running", "deploying", "concerning", "failed", "stopped", "finished", "stopping", "deleting", "pending", "waiting",
    "error", "upgrading", "interrupting", "init",
]  # fmt: skip
InferType = Literal["real-time", "batch", "edge", "async-real-time"]
Detail = Literal["compact", "full"]
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True)
assert set(StatusName.__args__) == set(KNOWN_STATUSES) and set(InferType.__args__) == set(KNOWN_INFER_TYPES)  # type: ignore[attr-defined]


def at_most(chars: int) -> dict[str, Any]:
    """``maxLength`` in a string argument's schema, so agents see the bound, without pydantic enforcing it: the
    query layer does, with an error that names the argument and quotes only a prefix (``core.limits``)."""
    return {"maxLength": chars}


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
    unhealthy_total: int
    unhealthy: list[ServiceRow] = Field(description="Failed and concerning services, latest change first.")
    warnings: list[str] = Field(default_factory=list)
    complete: bool = Field(True, description="False when ModelArts returned only part of the listing (see warnings).")


def _tool_error(exc: ServicesBotError) -> ToolError:
    return ToolError(exc.user_text())


def _answer(data: BaseModel | dict[str, Any], text: str, always: tuple[str, ...] = ()) -> CallToolResult:
    """Structured content without nulls plus a short text, instead of the SDK's default of repeating the whole
    structure as indented JSON text (which more than doubles what an agent must read)."""
    if isinstance(data, BaseModel):
        structured = data.model_dump(mode="json", exclude_none=True)
        structured.update({key: getattr(data, key) for key in always})
    else:
        structured = data
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


def _incomplete_lines(warnings: list[str], complete: bool) -> list[str]:
    """Many clients show a model only the text: a partial answer must say so there, not only in the structure."""
    return [] if complete else [f"INCOMPLETE: {w}" for w in warnings]


def _row_line(row: ServiceRow) -> str:
    cause = f" — {row.error_msg[:200]}" if row.error_msg else ""
    return f"{row.service_name or row.service_id} [{row.status}] {row.infer_type or '-'} id={row.service_id}{cause}"


class TransitionRow(BaseModel):
    """One observed status change."""

    service_id: str
    service_name: str | None = None
    kind: str = Field(description="changed, new (appeared), deleted, or flap (changed and came back between polls).")
    from_status: str | None = None
    to_status: str | None = None
    transition_at: datetime | None = Field(None, description="When ModelArts says it changed (UTC).")
    observed_at: datetime = Field(description="When the watcher saw it (UTC).")
    error_msg: str | None = None
    target: str | None = None


class TransitionList(BaseModel):
    returned: int
    transitions: list[TransitionRow] = Field(description="Newest first.")
    since: datetime


def service_uri(service_id: str) -> str:
    return f"modelarts://services/{service_id}"


def resource_updates(bus: SubscriptionBus) -> Callable[[list[Transition]], Awaitable[None]]:
    """A watcher listener: every service that transitioned is announced as an updated resource to MCP clients
    listening for it (``subscriptions/listen`` with its ``modelarts://services/{id}`` URI)."""

    async def publish(transitions: list[Transition]) -> None:
        for service_id in dict.fromkeys(t.service_id for t in transitions):
            await bus.publish(ResourceUpdated(uri=service_uri(service_id)))

    return publish


TOOL_NAMES = frozenset({"list_services", "get_service", "summarize_services", "list_transitions"})


class CountingMCPServer(MCPServer):
    """Counts tool calls by tool and outcome for ``/metrics`` (a tool error is raised, then sent as isError)."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        label = name if name in TOOL_NAMES else "unknown"
        try:
            result = await super().call_tool(name, arguments, context)
        except Exception:
            MCP_TOOL_CALLS.labels(label, "error").inc()
            raise
        MCP_TOOL_CALLS.labels(label, "ok").inc()
        return result


def create_mcp_server(
    open_queries: Callable[[], AbstractAsyncContextManager[ServiceQueries]],
    *,
    open_store: Callable[[], AbstractAsyncContextManager[Store | None]] | None = None,
    bus: SubscriptionBus | None = None,
) -> MCPServer:
    """An MCP server whose lifespan opens the query layer (and the watcher's store, for ``list_transitions``).

    ``open_queries``/``open_store`` come from the wiring; ``bus`` carries resource-updated events (the watcher
    publishes on it through ``resource_updates``).
    """
    holder: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_server: MCPServer) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            holder["queries"] = await stack.enter_async_context(open_queries())
            holder["store"] = await stack.enter_async_context(open_store()) if open_store else None
            yield None

    server = CountingMCPServer(
        name="services-bot",
        version=VERSION,
        instructions="Read-only access to Huawei Cloud ModelArts inference services: list and filter services, "
        "read one service's details, summarise what is unhealthy, and list recent status changes. Start with "
        "summarize_services.",
        lifespan=lifespan,
        subscriptions=bus,
        log_level="WARNING",  # the SDK configures root logging; INFO would log every API request to stderr
    )

    @server.tool(annotations=READ_ONLY, structured_output=True)
    async def list_services(
        status: Annotated[list[StatusName] | None, Field(description="Any of these statuses; omit for all.")] = None,
        name: Annotated[
            str | None,
            Field(
                description=f"Name substring, or glob with * ? [ ] (case-insensitive); at most {MAX_PATTERN_CHARS} "
                "characters. An unclosed [ is a literal [.",
                json_schema_extra=at_most(MAX_PATTERN_CHARS),
            ),
        ] = None,
        infer_type: Annotated[InferType | None, Field(description="Only this service type.")] = None,
        workspace_id: Annotated[
            str | None,
            Field(description="Only this workspace (default workspace 0).", json_schema_extra=at_most(MAX_ID_CHARS)),
        ] = None,
        model_id: Annotated[
            str | None,
            Field(description="Only services deploying this model id.", json_schema_extra=at_most(MAX_ID_CHARS)),
        ] = None,
        tags: Annotated[
            str | None,
            Field(
                description="Tag filter passed to the API, e.g. team=ocr.", json_schema_extra=at_most(MAX_TAGS_CHARS)
            ),
        ] = None,
        sort_by: Annotated[Literal["changed", "published", "name"], Field(description="Sort key.")] = "changed",
        order: Annotated[
            Literal["asc", "desc"] | None, Field(description="Default desc for times, asc for names.")
        ] = None,
        limit: Annotated[int, Field(ge=1, le=200, description="Rows per page (1-200).")] = 50,
        cursor: Annotated[
            str | None,
            Field(
                description="next_cursor of the previous page with the same filters.",
                json_schema_extra=at_most(MAX_CURSOR_CHARS),
            ),
        ] = None,
        detail: Annotated[Detail, Field(description="compact rows (default) or full list rows.")] = "compact",
    ) -> Annotated[CallToolResult, ServiceList]:
        """List ModelArts inference services with filters; compact rows, newest status change first.

        Use it to find services by status, name, type or workspace. Failed rows include error_msg.
        `total` counts every match; fetch more with `cursor`. Example: {"status": ["failed", "concerning"],
        "infer_type": "real-time", "limit": 20}. For one service's full details use get_service.
        """
        try:
            query = ServiceQuery.build(
                statuses=list(status or []), name=name, infer_type=infer_type, workspace_id=workspace_id,
                model_id=model_id, tags=tags, sort=sort_by, order=order, limit=limit, cursor=cursor,
            )  # fmt: skip
            result = await holder["queries"].list(query)
        except ServicesBotError as exc:
            raise _tool_error(exc) from None
        rows = [ServiceRow.of(s, detail) for s in result.services]
        answer = ServiceList(
            total=result.total,
            returned=len(rows),
            services=rows,
            next_cursor=result.next_cursor,
            warnings=result.warnings,
            complete=result.complete,
        )
        head = f"{len(rows)} of {result.total} services ({result.description})"
        more = "; more with next_cursor" if result.next_cursor else ""
        lines = [head + more, *_incomplete_lines(result.warnings, result.complete), *(_row_line(r) for r in rows[:10])]
        return _answer(answer, "\n".join(lines), always=("next_cursor", "complete"))

    @server.tool(annotations=READ_ONLY, structured_output=True)
    async def get_service(
        service: Annotated[
            str,
            Field(
                description="A service id, or a service's exact name.",
                json_schema_extra=at_most(MAX_SERVICE_REF_CHARS),
            ),
        ],
    ) -> Annotated[CallToolResult, dict[str, Any]]:
        """Full details of one service: status, error_msg, models (version, weight, instances, flavor), access
        address, edge nodes, schedule and times. Example: {"service": "ocr-invoice-prod"}. An ambiguous name
        returns the candidate ids; an unknown one returns the closest names."""
        try:
            found = await holder["queries"].get(service)
        except ServicesBotError as exc:
            raise _tool_error(exc) from None
        cause = f"; error: {found.error_msg}" if found.error_msg else ""
        text = f"{found.display_name} [{found.status}] id={found.service_id}{cause}"
        return _answer(found.model_dump(mode="json", exclude_none=True), text)

    @server.tool(annotations=READ_ONLY, structured_output=True)
    async def summarize_services(
        infer_type: Annotated[InferType | None, Field(description="Only this service type.")] = None,
        workspace_id: Annotated[
            str | None, Field(description="Only this workspace.", json_schema_extra=at_most(MAX_ID_CHARS))
        ] = None,
    ) -> Annotated[CallToolResult, ServiceSummary]:
        """Counts of services by status and by type, and the unhealthy ones (failed, concerning) with their error
        messages. The best first call for "what is wrong with our ModelArts services?". Example: {}."""
        try:
            summary = await holder["queries"].summary(
                ServiceQuery.build(infer_type=infer_type, workspace_id=workspace_id)
            )
        except ServicesBotError as exc:
            raise _tool_error(exc) from None
        answer = ServiceSummary(
            total=summary.total,
            by_status=summary.by_status,
            by_infer_type=summary.by_infer_type,
            unhealthy_total=summary.unhealthy_total,
            unhealthy=[ServiceRow.of(s) for s in summary.unhealthy],
            warnings=summary.warnings,
            complete=summary.complete,
        )
        counts = ", ".join(f"{k} {v}" for k, v in summary.by_status.items())
        lines = [
            f"{summary.total} services: {counts}",
            *_incomplete_lines(summary.warnings, summary.complete),
            *(_row_line(r) for r in answer.unhealthy[:10]),
        ]
        return _answer(answer, "\n".join(lines), always=("complete",))

    @server.tool(annotations=READ_ONLY, structured_output=True)
    async def list_transitions(
        since: Annotated[
            str,
            Field(
                description="How far back: 30m, 2h, 1d, 1w (at most 366 days). Default 24h.",
                json_schema_extra=at_most(MAX_DURATION_CHARS),
            ),
        ] = "24h",
        service: Annotated[
            str | None,
            Field(
                description="Only this service (id or exact name).", json_schema_extra=at_most(MAX_SERVICE_REF_CHARS)
            ),
        ] = None,
        to_status: Annotated[
            list[StatusName] | None, Field(description='Only changes to these statuses, e.g. ["failed"].')
        ] = None,
        limit: Annotated[int, Field(ge=1, le=200, description="Most transitions returned (1-200).")] = 50,
    ) -> Annotated[CallToolResult, TransitionList]:
        """Status changes the watcher observed, newest first: what failed, recovered, appeared or was deleted,
        and when. Use it for "what changed in the last hour?" or a service's recent history. Example:
        {"since": "2h", "to_status": ["failed"]}. Needs the watcher of `services-bot serve` (its store)."""
        store: Store | None = holder.get("store")
        if store is None:
            raise ToolError(
                "No transition history here: the watcher runs inside `services-bot serve`. Point "
                "SERVICES_BOT_DB at its store file, or use this tool on the MCP endpoint of `serve`."
            )
        try:
            window = parse_duration(since, at_most=MAX_HISTORY_SINCE, hint="History goes back at most 366 days.")
            if service is not None:
                check_length("service id or name", service, MAX_SERVICE_REF_CHARS)
        except ServicesBotError as exc:
            raise _tool_error(exc) from None
        start = datetime.now(UTC) - window
        try:
            found = await store.transitions(since=start, service=service, to_statuses=to_status, limit=limit)
        except ServicesBotError as exc:  # the store's problem (deleted, damaged, ...) and its fix
            raise _tool_error(exc) from None
        rows = [TransitionRow(**t.model_dump(include=set(TransitionRow.model_fields))) for t in found]
        lines = [
            f"{r.service_name or r.service_id}: {r.from_status or '(new)'} -> {r.to_status or '(deleted)'} at "
            f"{(r.transition_at or r.observed_at):%Y-%m-%d %H:%M}Z" + (f" — {r.error_msg[:150]}" if r.error_msg else "")
            for r in rows[:10]
        ]
        more = " (limit reached; narrow `since` or raise `limit`)" if len(rows) == limit else ""
        head = f"{len(rows)} transitions since {start:%Y-%m-%d %H:%M}Z{more}"
        return _answer(TransitionList(returned=len(rows), transitions=rows, since=start), "\n".join([head, *lines]))

    @server.resource(
        "modelarts://services/{service_id}",
        name="service",
        description="Details of one ModelArts service as JSON (the same as get_service).",
        mime_type="application/json",
    )
    async def service_resource(service_id: str) -> str:
        try:
            found = await holder["queries"].get(service_id)
        except ServicesBotError as exc:
            raise ResourceNotFoundError(exc.user_text()) from None
        return found.model_dump_json(exclude_none=True)

    @server.prompt(name="triage_unhealthy_services", description="Find unhealthy services and their likely causes.")
    def triage_unhealthy_services(workspace_id: str | None = None) -> str:
        if workspace_id is not None:
            check_length("workspace id", workspace_id, MAX_ID_CHARS)
        scope = f" in workspace {workspace_id}" if workspace_id else ""
        return (
            f"Triage the unhealthy ModelArts inference services{scope}.\n"
            "1. Call summarize_services to see counts by status and the failed/concerning services.\n"
            "2. For each unhealthy service (at most 5, latest status change first), call get_service and read "
            "error_msg, the models' status (notReady means an instance is not serving), instance counts, "
            "flavor, and edge nodes' instance_status and message.\n"
            "3. Group services that fail for the same reason (image pull, out of memory, insufficient pool "
            "resources, health check) and say what an engineer should check first for each group.\n"
            "Quote error messages exactly; do not guess causes the data does not show."
        )

    return server
