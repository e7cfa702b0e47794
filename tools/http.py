"""MCP over Streamable HTTP: loopback by default, DNS-rebinding protection, a bearer token, idle sessions closed.

The token is checked on every request before the MCP app sees it; binding to anything but loopback without
one is refused at start-up, because the tools expose a project's service inventory. Each session holds a
server task and its streams (tens of KB); the SDK's session manager closes one that has had no request in flight
for ``session_idle_seconds`` (SERVICES_BOT_MCP_SESSION_IDLE_SECONDS), so clients that vanish without a DELETE
do not keep theirs forever.
"""

from __future__ import annotations

import hmac
import ipaddress
import json

import uvicorn
from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from core.errors import ConfigError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class BearerTokenMiddleware:
    """Refuses every HTTP request without ``Authorization: Bearer <token>`` (compared in constant time)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                body = json.dumps({"error": "missing or wrong bearer token (SERVICES_BOT_MCP_TOKEN)"}).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def mcp_http_app(
    server: MCPServer, *, host: str, port: int, token: SecretStr | None, session_idle_seconds: float
) -> ASGIApp:
    """The Streamable HTTP app at ``/mcp``, guarded and with idle sessions expired as the module docstring says."""
    if not token and not is_loopback(host):
        raise ConfigError(
            f"MCP over HTTP on {host} would be reachable from other machines without a token.",
            hint="Set SERVICES_BOT_MCP_TOKEN, or listen on 127.0.0.1 (`serve --no-mcp` turns MCP off).",
        )
    security = None
    if not is_loopback(host):
        security = TransportSecuritySettings(allowed_hosts=[f"{host}:{port}", f"{host}:*"], allowed_origins=[])
    app: ASGIApp = server.streamable_http_app(
        host=host, transport_security=security, session_idle_timeout=session_idle_seconds
    )
    return BearerTokenMiddleware(app, token.get_secret_value()) if token else app


def run_http(
    server: MCPServer, *, host: str, port: int, token: SecretStr | None, session_idle_seconds: float
) -> None:
    app = mcp_http_app(server, host=host, port=port, token=token, session_idle_seconds=session_idle_seconds)
    print(f"MCP over Streamable HTTP at http://{host}:{port}/mcp", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
