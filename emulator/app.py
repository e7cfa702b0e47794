"""The ASGI application: routes, the request-id middleware and the churn task's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from services_bot.emulator import api, api_events, control
from services_bot.emulator.settings import EmulatorSettings
from services_bot.emulator.state import EmulatorState
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class RequestIdMiddleware:
    """Adds a fresh ``X-Request-Id`` (uuid4 hex) to every HTTP response, as the cloud's gateway does, unless
    the ``request_id_in_body`` quirk moves it into error bodies.

    A plain ASGI middleware rather than ``BaseHTTPMiddleware``: it must not cost anything measurable on a
    1000-row page.
    """

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.state.quirks.request_id_in_body:
            await self.app(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", uuid.uuid4().hex.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)


def create_app(settings: EmulatorSettings | None = None) -> Starlette:
    """Build the emulator app; the fleet is generated here, so the app is ready once this returns.

    The state lives on ``app.state.emu`` (an ``EmulatorState``).
    """
    settings = settings or EmulatorSettings()
    state = EmulatorState(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(state.churn.run(), name="emulator-churn")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    routes = [
        Route("/v1/{project_id}/services", api.list_services, methods=["GET"]),
        Route("/v1/{project_id}/services/{service_id}", api.show_service, methods=["GET"]),
        Route("/v1/{project_id}/infer-services", api.legacy_services, methods=["GET"]),
        Route("/v1/{project_id}/services/{service_id}/events", api_events.events_v1, methods=["GET"]),
        Route("/v1/{project_id}/services/{service_id}/monitor", api_events.monitor_v1, methods=["GET"]),
        Route("/v1/{project_id}/services/{service_id}/logs", api_events.logs_v1, methods=["GET"]),
        Route("/v2/{project_id}/services", api.list_services_v2, methods=["GET"]),
        Route("/v2/{project_id}/services/{service_id}/events", api_events.events_v2, methods=["GET"]),
        Route("/v2/{project_id}/services/{service_id}/deployments", api_events.deployments_v2, methods=["GET"]),
        Route(
            "/v2/{project_id}/services/{service_id}/deployments/{name}/instances",
            api_events.instances_v2,
            methods=["GET"],
        ),
        Route("/v2/{project_id}/services/{service_id}", api.show_service_v2, methods=["GET"]),
        Route("/v3/auth/tokens", api.iam_tokens, methods=["POST"]),
        Route("/_emulator/healthz", control.healthz, methods=["GET"]),
        Route("/_emulator/services", control.create_services, methods=["POST"]),
        Route("/_emulator/services/{service_id}", control.get_service, methods=["GET"]),
        Route("/_emulator/services/{service_id}", control.delete_service, methods=["DELETE"]),
        Route("/_emulator/services/{service_id}/status", control.set_status, methods=["POST"]),
        Route("/_emulator/statuses", control.set_statuses, methods=["POST"]),
        Route("/_emulator/reset", control.reset, methods=["POST"]),
        Route("/_emulator/churn", control.churn, methods=["POST"]),
        Route("/_emulator/transitions", control.transitions, methods=["GET"]),
        Route("/_emulator/faults", control.faults, methods=["GET", "POST", "DELETE"]),
        Route("/_emulator/tokens/expire", control.expire_tokens, methods=["POST"]),
        Route("/_emulator/quirks", control.quirks, methods=["GET", "POST", "DELETE"]),
        Route("/_emulator/requests", control.requests_log, methods=["GET", "DELETE"]),
        Route("/v1/{rest:path}", api.no_such_api, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
        Route("/v2/{rest:path}", api.no_such_api, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(RequestIdMiddleware, state=state)], lifespan=lifespan)
    app.state.emu = state
    return app
