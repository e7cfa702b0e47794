"""MCP over Streamable HTTP: loopback by default, DNS-rebinding protection, a bearer token, idle sessions closed.

Off loopback, the Host header must be a loopback name, the bound address, or one the operator listed in
SERVICES_BOT_MCP_ALLOWED_HOSTS: with ``--host 0.0.0.0`` (the image's default) no client sends ``0.0.0.0`` as its
Host, so allowing only the bound address would refuse everyone.

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
import re
import socket

import uvicorn
from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import SecretStr
from services_bot.core.errors import CannotListenError, ConfigError
from services_bot.tools.wire import JsonRpcBodyGuard
from starlette.types import ASGIApp, Receive, Scope, Send


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class BearerTokenMiddleware:
    """Refuses every HTTP request without ``Authorization: Bearer <token>`` (the token compared in constant
    time; the scheme is case-insensitive, as RFC 9110 says, so ``bearer`` is fine too)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scheme, _, given = dict(scope["headers"]).get(b"authorization", b"").strip().partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self._expected):
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


LOOPBACK_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]")
WILDCARD_BINDS = ("0.0.0.0", "::", "[::]", "")
_HOST_ENTRY = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]{1,5})?$")


def allowed_hosts(host: str, configured: str) -> list[str]:
    """The Host headers MCP answers to off loopback: loopback names (a local client or health probe on the box),
    the bound address unless it is a wildcard (``0.0.0.0`` is never a Host a client sends), and what the
    operator configured; a bare name allows any port and none (behind a proxy on 443 the Host has no port)."""
    patterns = list(LOOPBACK_HOSTS)
    names = [] if host in WILDCARD_BINDS else [host]
    for entry in (part.strip() for part in configured.split(",")):
        if not entry:
            continue
        if not _HOST_ENTRY.match(entry):
            raise ConfigError(
                f"SERVICES_BOT_MCP_ALLOWED_HOSTS: '{entry[:80]}' is not a host name or host:port.",
                hint="List names as clients write them in the Host header, e.g. bot.internal,10.0.0.5:3000.",
            )
        names.append(entry)
    for name in names:
        has_port = name.rsplit("]", 1)[-1].count(":") == 1
        patterns += [name] if has_port else [name, f"{name}:*"]
    return patterns


def mcp_http_app(
    server: MCPServer, *, host: str, token: SecretStr | None, session_idle_seconds: float, allowed: str = ""
) -> ASGIApp:
    """The Streamable HTTP app at ``/mcp``, guarded and with idle sessions expired as the module docstring says.
    ``allowed`` is the operator's SERVICES_BOT_MCP_ALLOWED_HOSTS; on loopback the SDK's own loopback-only
    protection applies."""
    if not token and not is_loopback(host):
        raise ConfigError(
            f"MCP over HTTP on {host} would be reachable from other machines without a token.",
            hint="Set SERVICES_BOT_MCP_TOKEN, or listen on 127.0.0.1 (`serve --no-mcp` turns MCP off).",
        )
    security = None
    if not is_loopback(host):
        security = TransportSecuritySettings(allowed_hosts=allowed_hosts(host, allowed), allowed_origins=[])
    app: ASGIApp = JsonRpcBodyGuard(
        server.streamable_http_app(host=host, transport_security=security, session_idle_timeout=session_idle_seconds)
    )
    return BearerTokenMiddleware(app, token.get_secret_value()) if token else app


def run_http(
    server: MCPServer, *, host: str, port: int, token: SecretStr | None, session_idle_seconds: float, allowed: str = ""
) -> None:
    app = mcp_http_app(server, host=host, token=token, session_idle_seconds=session_idle_seconds, allowed=allowed)
    try:  # bound before the URL is printed: a busy port is an error, not a URL that does not answer
        sock = socket.create_server((host, port), reuse_port=False)
    except OSError as exc:
        raise CannotListenError(
            f"Cannot listen on {host}:{port}: {exc.strerror or exc}.",
            hint="Pick another port with --port (0 picks a free one) or SERVICES_BOT_PORT.",
        ) from None
    with sock:
        print(f"MCP over Streamable HTTP at http://{host}:{sock.getsockname()[1]}/mcp", flush=True)
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
