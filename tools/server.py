"""The MCP server: the query layer as read-only tools for LLM agents, one resource template and one prompt.

The tools live in one module per domain (``services``, ``transitions``, ``targets``); this module assembles
them and corrects the SDK where it answers a client's mistake wrongly (checked by tests that would fail on an
SDK upgrade that changes them back):

- an unknown tool or prompt, and bad prompt arguments, are JSON-RPC ``-32602`` errors naming the mistake (the
  SDK answers an unknown tool with a tool result, an unknown prompt with code 0 or ``-32603``);
- tool arguments are checked against the tool's schema first (``tools.arguments``): unknown names refused
  with a suggestion, small slips forgiven, errors in one or two sentences instead of a pydantic report;
- capabilities are honest: subscriptions only when a watcher publishes (``tools.subscriptions``), and no
  ``listChanged`` for lists that never change.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from mcp.server import MCPServer
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError, UnexpectedToolError
from mcp.server.subscriptions import ResourceUpdated, SubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, DiscoverResult, RequestParams
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError
from services_bot.core.errors import ServicesBotError
from services_bot.core.limits import MAX_ID_CHARS, preview
from services_bot.core.metrics import MCP_TOOL_CALLS
from services_bot.core.notifications import Transition
from services_bot.core.query import ServiceQueries
from services_bot.core.store import Store
from services_bot.core.suggest import did_you_mean
from services_bot.core.version import VERSION
from services_bot.tools.arguments import ArgumentError, explain, normalise
from services_bot.tools.events import register_event_tools
from services_bot.tools.services import register_service_tools
from services_bot.tools.state import ToolState
from services_bot.tools.subscriptions import HandshakeSubscriptions
from services_bot.tools.targets import register_target_tools
from services_bot.tools.transitions import register_transition_tools
from services_bot.tools.wire import guarded_stdio

TOOL_NAMES = frozenset({"list_services", "get_service", "summarize_services", "list_transitions", "list_targets"})
MAX_PROMPT_ARGUMENT_CHARS = MAX_ID_CHARS
"""Every prompt argument is a short id (``workspace_id``)."""


def service_uri(service_id: str) -> str:
    return f"modelarts://services/{service_id}"


def resource_updates(bus: SubscriptionBus) -> Callable[[list[Transition]], Awaitable[None]]:
    """A watcher listener: every service that transitioned is announced as an updated resource to MCP clients
    that subscribed to its ``modelarts://services/{id}`` URI (``resources/subscribe`` on handshake-era
    sessions, ``subscriptions/listen`` on 2026-07-28)."""

    async def publish(transitions: list[Transition]) -> None:
        for service_id in dict.fromkeys(t.service_id for t in transitions):
            await bus.publish(ResourceUpdated(uri=service_uri(service_id)))

    return publish


class ServicesMCPServer(MCPServer):
    """``MCPServer`` with protocol-correct answers to client mistakes and tool-call metrics for ``/metrics``."""

    async def run_stdio_async(self) -> None:
        """The SDK's stdio loop behind ``tools.wire``'s line filter (non-JSON-RPC lines, batches)."""
        lowlevel = self._lowlevel_server
        async with guarded_stdio() as (read_stream, write_stream):
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        tool = self._tool_manager.get_tool(name)
        if tool is None:
            MCP_TOOL_CALLS.labels("unknown", "error").inc()
            guess = did_you_mean(name, TOOL_NAMES)
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"Unknown tool '{preview(name)}'." + (f" Did you mean '{guess}'?" if guess else "")
                + " Tools: " + ", ".join(sorted(TOOL_NAMES)) + ".",
            )  # fmt: skip
        try:
            result = await super().call_tool(name, normalise(arguments or {}, tool.parameters), context)
        except UnexpectedToolError:  # a bug: the SDK logs it with its traceback and sends a generic message
            MCP_TOOL_CALLS.labels(name, "error").inc()
            raise
        except (ArgumentError, ToolError) as exc:
            MCP_TOOL_CALLS.labels(name, "error").inc()
            raise ToolError(self._clean(exc, name)) from None
        except Exception:
            MCP_TOOL_CALLS.labels(name, "error").inc()
            raise
        MCP_TOOL_CALLS.labels(name, "ok").inc()
        return result

    @staticmethod
    def _clean(exc: Exception, name: str) -> str:
        """The error a model reads: ours as written, pydantic's in our words, without the SDK's prefix."""
        if isinstance(exc, ToolError) and isinstance(exc.__cause__, ValidationError):
            return explain(exc.__cause__, name)
        return str(exc).removeprefix(f"Error executing tool {name}: ")

    async def get_prompt(self, name: str, arguments: dict[str, Any] | None = None, context: Any = None) -> Any:
        prompt = self._prompt_manager.get_prompt(name)
        names = [p.name for p in self._prompt_manager.list_prompts()]
        if prompt is None:
            guess = did_you_mean(name, names)
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"Unknown prompt '{preview(name)}'." + (f" Did you mean '{guess}'?" if guess else "")
                + " Prompts: " + ", ".join(names) + ".",
            )  # fmt: skip
        allowed = {a.name: a for a in prompt.arguments or []}
        for key, value in (arguments or {}).items():
            if key not in allowed:
                guess = did_you_mean(key, allowed)
                raise MCPError(
                    code=INVALID_PARAMS,
                    message=f"Prompt {name} has no argument '{preview(key)}'."
                    + (f" Did you mean '{guess}'?" if guess else "")
                    + " Arguments: " + (", ".join(allowed) or "none") + ".",
                )  # fmt: skip
            if len(value) > MAX_PROMPT_ARGUMENT_CHARS:
                raise MCPError(
                    code=INVALID_PARAMS,
                    message=f"Prompt argument '{key}' is {len(value):,} characters long; at most "
                    f"{MAX_PROMPT_ARGUMENT_CHARS} are allowed ('{preview(value)}').",
                )
        missing = [a.name for a in allowed.values() if a.required and a.name not in (arguments or {})]
        if missing:
            raise MCPError(code=INVALID_PARAMS, message=f"Prompt {name} needs argument '{missing[0]}'.")
        return await super().get_prompt(name, arguments, context)


def _honest_discover(server: ServicesMCPServer) -> Callable[..., Awaitable[DiscoverResult]]:
    """``server/discover`` (2026-07-28) without ``listChanged``: the SDK advertises it whenever
    ``subscriptions/listen`` is served, but the tool, prompt and resource lists never change here."""
    lowlevel = server._lowlevel_server

    async def discover(ctx: ServerRequestContext[Any, Any], params: RequestParams | None) -> DiscoverResult:
        capabilities = lowlevel.get_capabilities(protocol_version=ctx.protocol_version)
        for part in (capabilities.tools, capabilities.prompts, capabilities.resources):
            if part is not None:
                part.list_changed = False
        return DiscoverResult(
            supported_versions=list(MODERN_PROTOCOL_VERSIONS),
            capabilities=capabilities,
            instructions=lowlevel.instructions,
        )

    return discover


def create_mcp_server(
    open_queries: Callable[[], AbstractAsyncContextManager[ServiceQueries]],
    *,
    open_store: Callable[[], AbstractAsyncContextManager[Store | None]] | None = None,
    bus: SubscriptionBus | None = None,
) -> MCPServer:
    """An MCP server whose lifespan opens the query layer (and the watcher's store, for ``list_transitions``).

    ``open_queries``/``open_store`` come from the wiring; ``bus`` carries resource-updated events (the watcher
    publishes on it through ``resource_updates``). Without a bus nothing is ever published, so the server
    offers no subscriptions at all.
    """
    state = ToolState()

    @asynccontextmanager
    async def lifespan(_server: MCPServer) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            state.queries = await stack.enter_async_context(open_queries())
            state.store = await stack.enter_async_context(open_store()) if open_store else None
            yield None

    server = ServicesMCPServer(
        name="services-bot",
        version=VERSION,
        instructions="Read-only access to Huawei Cloud ModelArts inference services: list and filter services, "
        "read one service's details, summarise what is unhealthy, list recent status changes, and list the "
        "targets (projects and regions) answered for. Start with summarize_services.",
        lifespan=lifespan,
        subscriptions=bus if bus is not None else False,
        log_level="WARNING",  # the SDK configures root logging; INFO would log every API request to stderr
    )
    lowlevel = server._lowlevel_server
    lowlevel.add_request_handler("server/discover", RequestParams, _honest_discover(server))
    if bus is not None:
        HandshakeSubscriptions(bus).install(lowlevel)

    register_service_tools(server, state)
    register_event_tools(server, state)
    register_transition_tools(server, state)
    register_target_tools(server, state)

    @server.resource(
        "modelarts://services/{service_id}",
        name="service",
        description="Details of one ModelArts service as JSON (the same as get_service).",
        mime_type="application/json",
    )
    async def service_resource(service_id: str) -> str:
        try:
            found = await state.ready_queries.get(service_id)
        except ServicesBotError as exc:
            raise ResourceNotFoundError(exc.user_text()) from None
        return found.model_dump_json(exclude_none=True)

    @server.prompt(
        name="triage_unhealthy_services",
        title="Triage unhealthy services",
        description="Find unhealthy services and their likely causes.",
    )
    def triage_unhealthy_services(workspace_id: str | None = None) -> str:
        scope = f" in workspace {workspace_id}" if workspace_id else ""
        return (
            f"Triage the unhealthy ModelArts inference services{scope}.\n"
            "1. Call summarize_services to see counts by status and the failed/concerning services.\n"
            "2. For each unhealthy service (at most 5, latest status change first), call get_service_events "
            'with {"event_type": "abnormal"} and read the abnormal and warning events (their text, count and '
            "times) and the last update and its result: they say why it failed and what changed before.\n"
            "3. Call get_service_load for it: instances running against wanted, and CPU, memory, GPU or NPU in "
            "use. Call get_service when you need error_msg, the models' status (notReady means an instance is not "
            "serving), flavor, pool, or edge nodes' instance_status and message.\n"
            "4. Group services that fail for the same reason (image pull, out of memory, insufficient pool "
            "resources, health check) and say what an engineer should check first for each group.\n"
            "Quote error messages exactly; do not guess causes the data does not show."
        )

    return server
