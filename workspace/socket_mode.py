"""Slack's Socket Mode, as the bot's ``SocketModeClient`` sees it: a one-time websocket URL from
``apps.connections.open``, a ``hello`` on connect, events as envelopes that the app acks over the same socket,
and ``disconnect`` messages when Slack wants the app to move to a fresh connection.

Read from Slack's docs and slack_sdk's client: an envelope is ``{"envelope_id", "type", "payload",
"accepts_response_payload"}`` with ``type`` ``slash_commands`` (the command's form fields as an object),
``interactive`` (a ``block_actions`` payload) or ``events_api``; the ack is ``{"envelope_id", "payload"?}`` and
its ``payload`` plays the part of an HTTP ack's body. Slack waits 3 s for the ack.

The websocket listens on a loopback port of its own (as Slack's ``wss-primary.slack.com`` is another host than
``slack.com/api``), served by aiohttp, which the bot's client uses too; it starts when the first URL is issued and
runs on the workspace server's loop. Nothing here imports the rest of the workspace, so ``state`` can own a hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from services_bot.workspace.settings import WorkspaceSettings

from services_bot.background import listen

log = logging.getLogger(__name__)

SOCKET_PATH = "/_workspace/socket/"
TICKET_TTL_SECONDS = 60.0
"""An issued URL is good for one connection within this time (Slack's expire quickly too)."""


class NoConnection(Exception):
    """Nothing to deliver over: no Socket Mode connection is open."""


@dataclass
class Connection:
    """One open websocket of the app."""

    id: str
    ws: web.WebSocketResponse
    connected_at: float = field(default_factory=time.time)
    delivered: int = 0
    acked: int = 0
    pending: set[str] = field(default_factory=set)
    gone: asyncio.Event = field(default_factory=asyncio.Event)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "connected_at": self.connected_at,
            "delivered": self.delivered,
            "acked": self.acked,
            "pending": len(self.pending),
        }


class SocketHub:
    """The workspace's Socket Mode side: issued tickets, open connections and envelopes waiting for an ack.

    All of it is used on the workspace server's loop; other threads may only read ``connected()`` and
    ``describe()``.
    """

    def __init__(self, settings: WorkspaceSettings) -> None:
        self.settings = settings
        self.url = ""
        """``ws://host:port`` once listening."""
        self.closed = False
        self.tickets: dict[str, float] = {}
        self.connections: dict[str, Connection] = {}
        self.acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.opened_total = 0
        self.refused_total = 0
        self._ids = itertools.count(1)
        self._next = 0
        self._runner: web.AppRunner | None = None
        self._starting: asyncio.Lock | None = None

    # -- listening ---------------------------------------------------------------------------------------

    async def _ensure_listening(self) -> None:
        if self._runner is not None:
            return
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._runner is not None:
                return
            app = web.Application()
            app.router.add_get(SOCKET_PATH + "{ticket}", self._serve)
            runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
            await runner.setup()
            sock = listen(self.settings.host, 0)
            try:
                await web.SockSite(runner, sock).start()
            except BaseException:
                sock.close()
                await runner.cleanup()
                raise
            host, port = sock.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            self.url = f"ws://{shown}:{port}"
            self._runner = runner

    async def issue_url(self) -> str | None:
        """A one-time ``ws://`` URL for ``apps.connections.open``; None once the workspace is stopping."""
        if self.closed:
            return None
        await self._ensure_listening()
        now = time.monotonic()
        self.tickets = {t: at for t, at in self.tickets.items() if now - at < TICKET_TTL_SECONDS}
        ticket = secrets.token_urlsafe(18)
        self.tickets[ticket] = now
        return f"{self.settings.socket_url or self.url}{SOCKET_PATH}{ticket}?app_id={self.settings.app_id}"

    async def close(self) -> None:
        """Close every connection and stop listening (the workspace is stopping)."""
        self.closed = True
        for conn in list(self.connections.values()):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001, message=b"workspace stopping")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.url, self._starting = "", None
        self.tickets.clear()

    def reopen(self) -> None:
        """The workspace (re)starts: issue URLs again (the listener starts with the first one)."""
        self.closed = False

    # -- one connection ----------------------------------------------------------------------------------

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        issued = self.tickets.pop(request.match_info["ticket"], None)
        if self.closed or issued is None or time.monotonic() - issued > TICKET_TTL_SECONDS:
            self.refused_total += 1
            return web.Response(status=401, text="invalid_ticket: ask apps.connections.open for a new URL")
        ws = web.WebSocketResponse(autoping=True)  # answers the client's pings, so it never looks stale
        await ws.prepare(request)
        conn = Connection(id=f"conn-{next(self._ids)}", ws=ws)
        self.connections[conn.id] = conn
        self.opened_total += 1
        log.debug("socket %s connected", conn.id)
        try:
            await ws.send_json(
                {
                    "type": "hello",
                    "num_connections": len(self.connections),
                    "debug_info": {
                        "host": "workspace-stand-in",
                        "build_number": 1,
                        "approximate_connection_time": 18060,
                    },
                    "connection_info": {"app_id": self.settings.app_id},
                }
            )
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._received(conn, message.data)
        except (ConnectionError, RuntimeError) as exc:  # the app went away mid-send
            log.debug("socket %s failed: %s", conn.id, exc)
        finally:
            self.connections.pop(conn.id, None)
            conn.gone.set()
            for envelope_id in conn.pending:
                waiter = self.acks.get(envelope_id)
                if waiter is not None and not waiter.done():
                    waiter.set_exception(ConnectionError("the connection closed before the ack"))
            log.debug("socket %s closed", conn.id)
        return ws

    def _received(self, conn: Connection, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            return
        if not isinstance(message, dict) or not isinstance(message.get("envelope_id"), str):
            return
        waiter = self.acks.get(message["envelope_id"])
        if waiter is not None and not waiter.done():
            conn.acked += 1
            waiter.set_result(message)

    # -- delivery ----------------------------------------------------------------------------------------

    def connected(self) -> bool:
        return bool(self.connections)

    def _pick(self) -> Connection:
        """Slack spreads envelopes over an app's connections; here, in turn."""
        conns = [c for c in list(self.connections.values()) if not c.ws.closed]
        if not conns:
            raise NoConnection("no Socket Mode connection is open")
        self._next += 1
        return conns[self._next % len(conns)]

    async def deliver(self, type_: str, payload: dict[str, Any], *, accepts_response_payload: bool) -> dict[str, Any]:
        """Send one envelope and wait for its ack, described as an HTTP delivery is: ``status`` (200 once
        acked), ``ack_ms``, ``ack_body`` (the ack's ``payload``), ``timed_out``, ``error``."""
        conn = self._pick()
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": type_,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        if type_ == "events_api":
            envelope.update(retry_attempt=0, retry_reason="")
        result: dict[str, Any] = {
            "status": None,
            "ack_ms": None,
            "ack_body": None,
            "timed_out": False,
            "error": None,
            "envelope_id": envelope_id,
            "connection": conn.id,
            "timestamp": None,
        }
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.acks[envelope_id] = waiter
        conn.pending.add(envelope_id)
        started = time.perf_counter()
        try:
            await conn.ws.send_str(json.dumps(envelope, separators=(",", ":")))
            conn.delivered += 1
            ack = await asyncio.wait_for(waiter, self.settings.ack_timeout_seconds)
        except TimeoutError:
            result["timed_out"], result["error"] = True, "operation_timeout"
        except (ConnectionError, RuntimeError) as exc:
            result["error"] = f"dispatch_failed: {type(exc).__name__}: {exc}"
        else:
            result["status"] = 200
            result["ack_body"] = ack.get("payload")
        finally:
            self.acks.pop(envelope_id, None)
            conn.pending.discard(envelope_id)
        result["ack_ms"] = round((time.perf_counter() - started) * 1000, 3)
        return result

    async def drop_all(self, reason: str | None = "refresh_requested", grace: float = 1.0) -> int:
        """Drop every connection: send ``{"type": "disconnect", "reason": ...}`` (unless ``reason`` is None,
        which is a plain network drop), give the app ``grace`` seconds to leave by itself, then close."""
        conns = list(self.connections.values())
        for conn in conns:
            if reason is not None:
                with contextlib.suppress(Exception):
                    await conn.ws.send_json(
                        {"type": "disconnect", "reason": reason, "debug_info": {"host": "workspace-stand-in"}}
                    )
        if grace > 0 and conns:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(c.gone.wait() for c in conns)), grace)
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1000, message=reason.encode() if reason else b"")
        return len(conns)

    def describe(self) -> dict[str, Any]:
        return {
            "url": self.url or None,
            "connected": self.connected(),
            "connections": [c.describe() for c in list(self.connections.values())],
            "opened_total": self.opened_total,
            "refused_total": self.refused_total,
        }
