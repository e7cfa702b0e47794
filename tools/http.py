"""MCP over Streamable HTTP: loopback by default, DNS-rebinding protection, a bearer token, idle sessions closed.

Off loopback, the Host header must be a loopback name, the bound address, or one the operator listed in
SERVICES_BOT_MCP_ALLOWED_HOSTS: with ``--host 0.0.0.0`` (the image's default) no client sends ``0.0.0.0`` as its
Host, so allowing only the bound address would refuse everyone.

The token is checked on every request before the MCP app sees it; binding to anything but loopback without
one is refused at start-up, because the tools expose a project's service inventory. A target's own
``mcp_tokens`` (targets file) see only that target: the request's scope goes to the tools in ``CALLER_SCOPE``.
Each session holds a server task and its streams (tens of KB); the SDK's session manager closes one that has had
no request in flight for ``session_idle_seconds`` (SERVICES_BOT_MCP_SESSION_IDLE_SECONDS), so clients that
vanish without a DELETE do not keep theirs forever.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from contextvars import ContextVar

import uvicorn
from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import SecretStr
from services_bot.core.access import EVERYTHING, Access
from services_bot.core.access import Scope as TargetScope
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


CALLER_SCOPE: ContextVar[TargetScope] = ContextVar("services_bot_mcp_caller_scope", default=EVERYTHING)
"""The targets the bearer token of the request being handled may see; the SDK carries the sender's context into
the tool handler, which reads it through ``caller_scope()``. Stdio and tokenless loopback see every target."""


def caller_scope() -> TargetScope:
    return CALLER_SCOPE.get()


class BearerTokenMiddleware:
    """Refuses every HTTP request without ``Authorization: Bearer <token>`` of a known token (compared in constant
    time): SERVICES_BOT_MCP_TOKEN sees every target, a target's ``mcp_tokens`` only the targets that list it."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            bearer = given[7:] if given[:7].lower() == "bearer " else None
            allowed = self.access.for_mcp_token(bearer)
            if allowed is None:
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
            reset = CALLER_SCOPE.set(allowed)
            try:
                await self.app(scope, receive, send)
            finally:
                CALLER_SCOPE.reset(reset)
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
    server: MCPServer,
    *,
    host: str,
    token: SecretStr | None,
    session_idle_seconds: float,
    allowed: str = "",
    access: Access | None = None,
) -> ASGIApp:
    """The Streamable HTTP app at ``/mcp``, guarded and with idle sessions expired as the module docstring says.
    ``allowed`` is the operator's SERVICES_BOT_MCP_ALLOWED_HOSTS; on loopback the SDK's own loopback-only
    protection applies. ``access`` holds the targets' own ``mcp_tokens``: with any token configured, every
    request needs one."""
    secret = token.get_secret_value() if token else None
    access = access or Access([], mcp_token=secret)
    if access.mcp_token is None and secret:
        access.mcp_token = secret
    if not token and not access.has_mcp_tokens and not is_loopback(host):
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
    return BearerTokenMiddleware(app, access) if token or access.has_mcp_tokens else app


def run_http(
    server: MCPServer,
    *,
    host: str,
    port: int,
    token: SecretStr | None,
    session_idle_seconds: float,
    allowed: str = "",
    access: Access | None = None,
) -> None:
    app = mcp_http_app(
        server, host=host, token=token, session_idle_seconds=session_idle_seconds, allowed=allowed, access=access
    )
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
