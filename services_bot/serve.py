"""``services-bot serve``: Slack, MCP over HTTP and health on one port, wired from settings in one place.

One ASGI app (Starlette): ``POST /slack/events`` (HTTP mode; bolt verifies every signature), ``/mcp``
(Streamable HTTP, guarded as ``tools.http`` says), ``GET /healthz``. With ``SLACK_APP_TOKEN`` set the Slack
app talks over Socket Mode instead and ``/slack/events`` is not served. The lifespan opens the query layer
once and shares it between Slack and MCP, so both answer from one connection pool and one cache.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import uvicorn
from mcp.server.subscriptions import InMemorySubscriptionBus
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from bot.app import create_slack_app
from bot.delivery import AlertDelivery
from bot.notify import ChannelNotifications
from core.config import Settings
from core.errors import ConfigError, QueryError
from core.query import ServiceQueries, parse_statuses
from core.store import Store
from core.watcher import Watcher
from services_bot.background import BackgroundServer, ListenError, listen, serve_with_lifespan, uvicorn_config
from services_bot.wiring import open_queries
from tools.http import mcp_http_app
from tools.server import create_mcp_server, resource_updates

log = logging.getLogger(__name__)
SOCKET_CONNECT_SECONDS = 15.0


@dataclass
class Runtime:
    """What the lifespan opened; the routes read it (health) and tests inspect it."""

    settings: Settings
    slack_mode: str
    queries: ServiceQueries | None = None
    store: Store | None = None
    slack_app: AsyncApp | None = None
    http_handler: AsyncSlackRequestHandler | None = None
    socket: AsyncSocketModeHandler | None = None
    watcher: Watcher | None = None
    delivery: AlertDelivery | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)

    def stale_after(self) -> float:
        """No successful poll for three intervals (and at least 5 s) means the watcher is stuck or ModelArts is
        unreachable: health turns 503, so an orchestrator restarts or pages."""
        poll = self.settings.services_bot_poll_seconds
        return max(3 * poll, poll + 5)

    async def health(self) -> tuple[int, dict[str, Any]]:
        problems: list[str] = []
        if self.queries is None:
            problems.append("starting")
        slack = self.slack_mode
        if self.slack_mode == "socket":
            connected = self.socket is not None and await self.socket.client.is_connected()
            slack = "socket connected" if connected else "socket disconnected"
            if not connected:
                problems.append("Slack Socket Mode is not connected")
        body: dict[str, Any] = {
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "slack": slack,
            "targets": [c.target.name for c in self.queries.clients] if self.queries else [],
        }
        if self.watcher is not None:
            last = self.watcher.last_success_at
            age = (datetime.now(UTC) - last).total_seconds() if last else None
            body["watcher"] = {"last_poll_age_seconds": round(age, 1) if age is not None else None}
            body["watcher"].update(self.watcher.health())
            if (age if age is not None else body["uptime_seconds"]) > self.stale_after():
                problems.append(f"no successful poll for over {self.stale_after():.0f} s")
        warnings: list[str] = []
        if self.delivery is not None:
            try:
                delivery = await self.delivery.health()
            except Exception as exc:  # the store is unreadable: that is the answer, not a 500
                problems.append(f"delivery state unreadable: {type(exc).__name__}")
            else:
                body["delivery"] = delivery.body
                problems += delivery.problems
                warnings += delivery.warnings
        body["status"] = "unhealthy" if problems else "degraded" if warnings else "ok"
        if problems:
            body["problems"] = problems
        if warnings:
            body["warnings"] = warnings
        return (200 if not problems else 503), body


def slack_mode(settings: Settings) -> str:
    """``socket`` with an app token, ``http`` with a signing secret; neither is a configuration error."""
    if not settings.slack_bot_token:
        raise ConfigError("SLACK_BOT_TOKEN is not set.", hint="Set the bot token (xoxb-…) from the Slack app page.")
    if settings.slack_app_token:
        return "socket"
    if not settings.slack_signing_secret:
        raise ConfigError(
            "SLACK_SIGNING_SECRET is not set, so Slack's requests could not be verified.",
            hint="Set it from the app's Basic Information page, or set SLACK_APP_TOKEN to use Socket Mode.",
        )
    return "http"


def alert_statuses(settings: Settings) -> frozenset[str]:
    try:
        return parse_statuses(settings.services_bot_alert_statuses.split(","))
    except QueryError as exc:
        raise ConfigError(f"SERVICES_BOT_ALERT_STATUSES: {exc.message}", hint=exc.hint) from None


def create_serve_app(settings: Settings, *, mcp: bool = True, watch: bool = True, host: str | None = None) -> Starlette:
    """Check the configuration (raising ``ConfigError`` before any I/O) and build the one ASGI app.

    ``watch=False`` answers commands only: no watcher, no alerts (the store still serves watch/history).
    """
    host = host or settings.services_bot_host
    mode = slack_mode(settings)
    settings.targets()
    settings.auth_mode()
    statuses = alert_statuses(settings)
    runtime = Runtime(settings=settings, slack_mode=mode)
    bus = InMemorySubscriptionBus()
    mcp_server = (
        create_mcp_server(
            lambda: nullcontext(runtime.queries), open_store=lambda: nullcontext(runtime.store), bus=bus
        )
        if mcp
        else None
    )
    mcp_app = (
        mcp_http_app(mcp_server, host=host, port=settings.services_bot_port, token=settings.services_bot_mcp_token)
        if mcp_server
        else None
    )

    async def slack_events(request: Request) -> Response:
        if runtime.http_handler is None:
            return JSONResponse({"error": "Slack is connected over Socket Mode here"}, status_code=404)
        return await runtime.http_handler.handle(request)

    async def healthz(_request: Request) -> Response:
        status, body = await runtime.health()
        return JSONResponse(body, status_code=status)

    async def metrics(_request: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            runtime.queries = queries = await stack.enter_async_context(open_queries(settings))
            runtime.store = store = await stack.enter_async_context(_open_store(settings))
            await store.ensure_default_subscription(settings.services_bot_alert_channel, statuses)
            client = slack_web_client(settings)
            runtime.slack_app = create_slack_app(
                queries,
                client=client,
                signing_secret=settings.slack_signing_secret.get_secret_value()
                if mode == "http" and settings.slack_signing_secret
                else None,
                notifications=ChannelNotifications(store, queries),
            )
            if mode == "http":
                runtime.http_handler = AsyncSlackRequestHandler(runtime.slack_app)
            else:
                runtime.socket = await _connect_socket_mode(runtime.slack_app, settings)
                stack.push_async_callback(runtime.socket.close_async)
            if mcp_server is not None:
                await stack.enter_async_context(mcp_server.session_manager.run())
            if watch:
                _start_watching(runtime, store, slack_web_client(settings, sdk_retries=False), bus)
                stack.push_async_callback(_stop, runtime.tasks)
            log.info("serving slack=%s mcp=%s watcher=%s", mode, "on" if mcp_server else "off", watch)
            yield

    routes: list[Route | Mount] = [
        Route("/slack/events", slack_events, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    if mcp_app is not None:
        routes.append(Mount("/", app=mcp_app))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.runtime = runtime
    return app


def _start_watching(runtime: Runtime, store: Store, client: AsyncWebClient, bus: InMemorySubscriptionBus) -> None:
    settings = runtime.settings
    assert runtime.queries is not None
    runtime.watcher = Watcher(
        runtime.queries.clients,
        store,
        poll_seconds=settings.services_bot_poll_seconds,
        resync_polls=settings.services_bot_resync_polls,
        notify_baseline=settings.services_bot_notify_baseline,
        outage_polls=settings.services_bot_outage_polls,
        alert_channel=settings.services_bot_alert_channel,
    )
    runtime.delivery = AlertDelivery(
        store,
        client,
        group_threshold=settings.services_bot_group_threshold,
        backoff_seconds=settings.services_bot_delivery_backoff_seconds,
        backoff_max_seconds=settings.services_bot_delivery_backoff_max_seconds,
        stale_seconds=settings.services_bot_delivery_stale_seconds,
        late_note_seconds=settings.services_bot_delivery_late_note_seconds,
        alert_channel=settings.services_bot_alert_channel,
        history_per_minute=settings.services_bot_slack_history_per_minute,
        history_page_size=settings.services_bot_slack_history_page_size,
    )
    runtime.watcher.add_listener(runtime.delivery.wake)
    runtime.watcher.add_listener(resource_updates(bus))
    runtime.tasks += [
        asyncio.create_task(runtime.watcher.run(), name="watcher"),
        asyncio.create_task(runtime.delivery.run(), name="delivery"),
    ]


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@asynccontextmanager
async def _open_store(settings: Settings) -> AsyncIterator[Store]:
    store = Store(settings.services_bot_db, history_days=settings.services_bot_history_days)
    try:
        await store.open()
    except (sqlite3.Error, OSError, RuntimeError) as exc:
        raise ConfigError(
            f"Cannot open the store {settings.services_bot_db}: {exc}.",
            hint="Point SERVICES_BOT_DB at a writable file (its folder is created if missing).",
        ) from None
    try:
        yield store
    finally:
        await store.close()


def slack_web_client(settings: Settings, *, sdk_retries: bool = True) -> AsyncWebClient:
    """``sdk_retries=False`` for alert delivery: slack_sdk would re-send a post once after a dropped connection,
    which may post it twice; delivery retries itself, looking the post up first."""
    assert settings.slack_bot_token is not None
    base_url = settings.slack_api_url if settings.slack_api_url.endswith("/") else settings.slack_api_url + "/"
    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=base_url,
        timeout=settings.services_bot_slack_timeout_seconds,  # type: ignore[arg-type]  # aiohttp takes a float
        retry_handlers=None if sdk_retries else [],
    )


async def _connect_socket_mode(app: AsyncApp, settings: Settings) -> AsyncSocketModeHandler:
    assert settings.slack_app_token is not None
    token = settings.slack_app_token.get_secret_value()
    try:  # the handler would retry a refused token forever; asking once first turns that into a clear stop
        opened = await app.client.apps_connections_open(app_token=token)
    except SlackApiError as exc:
        error = exc.response.get("error") if exc.response is not None else None
        raise ConfigError(
            f"Slack refused the Socket Mode connection ({error or 'unknown error'}).",
            hint="Check SLACK_APP_TOKEN (xapp-…, with the connections:write scope) and that Socket Mode is on.",
        ) from None
    except (OSError, aiohttp.ClientError, TimeoutError) as exc:
        raise ConfigError(
            f"Slack cannot be reached at {settings.slack_api_url} ({type(exc).__name__}).",
            hint="Check the network path to slack.com (or SLACK_API_URL).",
        ) from None
    handler = AsyncSocketModeHandler(app, token)
    handler.client.wss_uri = opened["url"]  # the URL just issued is good for one connection: use it
    try:  # an unreachable websocket would be retried forever, with start-up never finishing
        await asyncio.wait_for(handler.connect_async(), timeout=SOCKET_CONNECT_SECONDS)
    except TimeoutError:
        await handler.close_async()
        raise ConfigError(
            "Slack accepted SLACK_APP_TOKEN, but its Socket Mode websocket could not be reached.",
            hint="Check that outbound WSS (port 443) to Slack is allowed, directly or through HTTPS_PROXY.",
        ) from None
    return handler


def run_serve(settings: Settings, *, host: str, port: int, mcp: bool, watch: bool) -> None:
    settings = settings.model_copy(update={"services_bot_port": port})
    app = create_serve_app(settings, mcp=mcp, watch=watch, host=host)
    try:
        sock = listen(host, port)
    except ListenError as exc:
        raise ConfigError(str(exc), hint="Pick another port with --port or SERVICES_BOT_PORT.") from None
    url = f"http://{host}:{sock.getsockname()[1]}"

    def ready() -> None:
        print(f"services-bot on {url}  (Slack: {slack_mode(settings)}; /healthz, /metrics)", flush=True)

    try:
        asyncio.run(serve_with_lifespan(app, sock, uvicorn.Server(uvicorn_config(app, lifespan="off")), ready))
    finally:
        sock.close()


class BackgroundServe(BackgroundServer):
    """``serve`` in a background thread (tests, benchmarks, the demo); start-up failures reach ``start()``."""

    name = "services-bot serve"

    def __init__(self, settings: Settings, *, host: str = "127.0.0.1", mcp: bool = True, watch: bool = True) -> None:
        self.settings = settings
        super().__init__(
            create_serve_app(settings, mcp=mcp, watch=watch, host=host),
            host=host,
            port=settings.services_bot_port,
            own_lifespan=True,
        )

    @property
    def runtime(self) -> Runtime:
        return self.app.state.runtime  # type: ignore[no-any-return]
