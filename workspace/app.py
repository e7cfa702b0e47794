"""The ASGI application: Slack's Web API (``/api/``), response_urls (``/response/``) and the control API
(``/_workspace/``), plus one shared httpx client for talking to the bot. Socket Mode's websockets listen on a
port of their own (``socket_mode``), opened on demand and closed with the app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from services_bot.workspace import control, page, responses, webapi
from services_bot.workspace.settings import WorkspaceSettings
from services_bot.workspace.state import WorkspaceState
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def healthz(request: Request) -> Response:
    return JSONResponse({"ok": True})


def create_app(settings: WorkspaceSettings | None = None) -> Starlette:
    """Build the workspace app; its state is ``app.state.workspace`` (a ``WorkspaceState``).

    The httpx client that carries commands and clicks to the bot is opened in the lifespan, on the server's
    own loop, and lives on ``app.state.http``.
    """
    settings = settings or WorkspaceSettings()
    state = WorkspaceState(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # trust_env=False: a proxy from the environment must never sit between the workspace and a local bot.
        async with httpx.AsyncClient(trust_env=False) as http:
            app.state.http = http
            state.sockets.reopen()
            try:
                yield
            finally:
                await state.sockets.close()  # Socket Mode's own listener, started by apps.connections.open

    routes = [
        Route("/api/{method}", webapi.api, methods=["GET", "POST"]),
        Route("/response/{rid}", responses.respond, methods=["POST"]),
        Route("/_workspace/healthz", healthz, methods=["GET"]),
        *(Route(path, fn, methods=methods) for path, fn, methods in control.ROUTES),
        *page.ROUTES,
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.workspace = state
    return app
