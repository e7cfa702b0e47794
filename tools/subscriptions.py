"""Resource subscriptions for handshake-era sessions (2024-11-05 to 2025-11-25).

The SDK serves 2026-07-28's ``subscriptions/listen`` from the bus the watcher publishes on, but offers nothing
for the older ``resources/subscribe``: a 2025-11-25 client of ``serve`` could never hear that a service
changed. This serves it from the same bus: each subscribed connection gets ``notifications/resources/updated``
on its standalone channel (stdio, or the GET stream of Streamable HTTP) for the URIs it asked for, until it
unsubscribes or goes away. Registering the handler is also what makes the handshake's capabilities say
``subscribe: true``, so a server without a bus (plain ``services-bot mcp``) never claims it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.subscriptions import ResourceUpdated, ServerEvent, SubscriptionBus
from mcp.types import EmptyResult, SubscribeRequestParams, UnsubscribeRequestParams

log = logging.getLogger(__name__)
MAX_URIS_PER_CONNECTION = 1000
"""Subscriptions one connection may hold: a bound on what a client can make the server remember."""


def _connection(ctx: ServerRequestContext[Any, Any]) -> Connection:
    # The SDK gives handlers the connection only through the session; tests cover this reaching the client.
    return ctx.session._connection  # type: ignore[attr-defined, no-any-return]


class HandshakeSubscriptions:
    """``resources/subscribe`` and ``resources/unsubscribe``, fed by a ``SubscriptionBus``."""

    def __init__(self, bus: SubscriptionBus) -> None:
        self._by_connection: dict[Connection, set[str]] = {}
        self._sending: set[asyncio.Task[None]] = set()
        bus.subscribe(self._deliver)

    def install(self, server: Server[Any]) -> None:
        server.add_request_handler("resources/subscribe", SubscribeRequestParams, self.subscribe)
        server.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, self.unsubscribe)

    async def subscribe(self, ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams) -> EmptyResult:
        connection = _connection(ctx)
        uris = self._by_connection.get(connection)
        if uris is None:
            uris = self._by_connection[connection] = set()
            connection.exit_stack.callback(self._by_connection.pop, connection, None)
        if len(uris) < MAX_URIS_PER_CONNECTION:
            uris.add(str(params.uri))
        return EmptyResult()

    async def unsubscribe(self, ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams) -> EmptyResult:
        self._by_connection.get(_connection(ctx), set()).discard(str(params.uri))
        return EmptyResult()

    def _deliver(self, event: ServerEvent) -> None:
        """A bus listener: synchronous and must not raise, so each send is its own task."""
        if not isinstance(event, ResourceUpdated):
            return
        for connection, uris in list(self._by_connection.items()):
            if event.uri in uris:
                task = asyncio.get_running_loop().create_task(
                    connection.notify("notifications/resources/updated", {"uri": event.uri})
                )
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)
