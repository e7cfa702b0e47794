"""``services-bot serve``: Slack, MCP over HTTP and health on one port, wired from settings in one place.

One ASGI app (Starlette): ``POST /slack/events`` (HTTP mode; bolt verifies every signature), ``/mcp``
(Streamable HTTP, guarded as ``tools.http`` says), ``GET /healthz``. With ``SLACK_APP_TOKEN`` set the Slack
app talks over Socket Mode instead and ``/slack/events`` is not served. The lifespan opens the query layer
once and shares it between Slack and MCP, so both answer from one connection pool and one cache.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import uvicorn
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
from core.config import Settings
from core.errors import ConfigError
from core.query import ServiceQueries
from services_bot.background import BackgroundServer, ListenError, listen, serve_with_lifespan, uvicorn_config
from services_bot.wiring import open_queries
from tools.http import mcp_http_app
from tools.server import create_mcp_server

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What the lifespan opened; the routes read it (health) and tests inspect it."""

    settings: Settings
    slack_mode: str
    queries: ServiceQueries | None = None
    slack_app: AsyncApp | None = None
    socket: AsyncSocketModeHandler | None = None
    started_at: float = field(default_factory=time.time)

    def health(self) -> tuple[int, dict[str, Any]]:
        ready = self.queries is not None and (self.slack_mode != "socket" or self.socket is not None)
        body = {
            "status": "ok" if ready else "starting",
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "slack": self.slack_mode,
            "targets": [c.target.name for c in self.queries.clients] if self.queries else [],
        }
        return (200 if ready else 503), body


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


def create_serve_app(settings: Settings, *, mcp: bool = True, host: str | None = None) -> Starlette:
    """Check the configuration (raising ``ConfigError`` before any I/O) and build the one ASGI app."""
    host = host or settings.services_bot_host
    mode = slack_mode(settings)
    settings.targets()
    settings.auth_mode()
    runtime = Runtime(settings=settings, slack_mode=mode)
    shared: dict[str, ServiceQueries] = {}
    mcp_server = create_mcp_server(lambda: nullcontext(shared["queries"])) if mcp else None
    mcp_app = (
        mcp_http_app(mcp_server, host=host, port=settings.services_bot_port, token=settings.services_bot_mcp_token)
        if mcp_server
        else None
    )
    slack_handler: dict[str, AsyncSlackRequestHandler] = {}

    async def slack_events(request: Request) -> Response:
        handler = slack_handler.get("http")
        if handler is None:
            return JSONResponse({"error": "Slack is connected over Socket Mode here"}, status_code=404)
        return await handler.handle(request)

    async def healthz(_request: Request) -> Response:
        status, body = runtime.health()
        return JSONResponse(body, status_code=status)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            queries = await stack.enter_async_context(open_queries(settings))
            shared["queries"] = queries
            runtime.queries = queries
            runtime.slack_app = create_slack_app(
                queries,
                client=slack_web_client(settings),
                signing_secret=settings.slack_signing_secret.get_secret_value()
                if mode == "http" and settings.slack_signing_secret
                else None,
            )
            if mode == "http":
                slack_handler["http"] = AsyncSlackRequestHandler(runtime.slack_app)
            else:
                runtime.socket = await _connect_socket_mode(runtime.slack_app, settings)
                stack.push_async_callback(runtime.socket.close_async)
            if mcp_server is not None:
                await stack.enter_async_context(mcp_server.session_manager.run())
            log.info("serving slack=%s mcp=%s", mode, "on" if mcp_server else "off")
            yield

    routes: list[Route | Mount] = [
        Route("/slack/events", slack_events, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    if mcp_app is not None:
        routes.append(Mount("/", app=mcp_app))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.runtime = runtime
    return app


def slack_web_client(settings: Settings) -> AsyncWebClient:
    assert settings.slack_bot_token is not None
    base_url = settings.slack_api_url if settings.slack_api_url.endswith("/") else settings.slack_api_url + "/"
    return AsyncWebClient(token=settings.slack_bot_token.get_secret_value(), base_url=base_url)


async def _connect_socket_mode(app: AsyncApp, settings: Settings) -> AsyncSocketModeHandler:
    assert settings.slack_app_token is not None
    token = settings.slack_app_token.get_secret_value()
    try:  # the handler would retry a refused token forever; asking once first turns that into a clear stop
        await app.client.apps_connections_open(app_token=token)
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
    await handler.connect_async()
    return handler


def run_serve(settings: Settings, *, host: str, port: int, mcp: bool) -> None:
    settings = settings.model_copy(update={"services_bot_port": port})
    app = create_serve_app(settings, mcp=mcp, host=host)
    try:
        sock = listen(host, port)
    except ListenError as exc:
        raise ConfigError(str(exc), hint="Pick another port with --port or SERVICES_BOT_PORT.") from None
    print(f"services-bot on http://{host}:{sock.getsockname()[1]}  (Slack: {slack_mode(settings)}; /healthz)")
    try:
        asyncio.run(serve_with_lifespan(app, sock, uvicorn.Server(uvicorn_config(app, lifespan="off"))))
    finally:
        sock.close()


class BackgroundServe(BackgroundServer):
    """``serve`` in a background thread (tests, benchmarks, the demo); start-up failures reach ``start()``."""

    name = "services-bot serve"

    def __init__(self, settings: Settings, *, host: str = "127.0.0.1", mcp: bool = True) -> None:
        self.settings = settings
        super().__init__(
            create_serve_app(settings, mcp=mcp, host=host),
            host=host,
            port=settings.services_bot_port,
            own_lifespan=True,
        )

    @property
    def runtime(self) -> Runtime:
        return self.app.state.runtime  # type: ignore[no-any-return]
