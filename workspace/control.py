"""The ``/_workspace/`` control API: what a person does (commands, clicks), what a test inspects (messages,
calls) and what goes wrong on purpose (faults). A web page drives the workspace through the same endpoints.

No authentication: it listens on loopback for tests and the demo. Bodies and answers are JSON objects;
errors are ``{"error": "..."}`` with 400 (bad input), 404 (unknown channel, message or button) or 409 (no
app URL yet, or no Socket Mode connection for ``"via": "socket"``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from services_bot.workspace.state import Message, WorkspaceState, ts_key
from services_bot.workspace.users import UserActionError, run_click, run_command
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

LONG_POLL_MAX = 20.0


def _ws(request: Request) -> WorkspaceState:
    return request.app.state.workspace


def _http(request: Request) -> httpx.AsyncClient:
    return request.app.state.http


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise UserActionError("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise UserActionError("the body must be a JSON object")
    return body


def _str(body: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise UserActionError(f"{key} is required")
        return None
    if not isinstance(value, str):
        raise UserActionError(f"{key} must be a string")
    return value


def _number(body: dict[str, Any], key: str, *, integer: bool = False) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or (integer and value % 1):
        raise UserActionError(f"{key} must be a non-negative {'integer' if integer else 'number'}")
    return value


def _flag(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"))


def handled(fn: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Turn ``UserActionError`` into its JSON answer, so handlers read as the happy path."""

    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except UserActionError as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)

    return wrapper


def _timestamp(body: dict[str, Any]) -> int | str | None:
    value = body.get("timestamp")
    if value is None or (isinstance(value, int | str) and not isinstance(value, bool)):
        return value
    raise UserActionError("timestamp must be an integer or a string")


@handled
async def info(request: Request) -> Response:
    """Who is who, for a page to draw the sidebar."""
    ws = _ws(request)
    s = ws.settings
    return JSONResponse(
        {
            "url": ws.url,
            "api_url": ws.url + "/api/",
            "app_url": s.app_url,
            "team": {"id": s.team_id, "domain": s.team_domain, "name": s.team_name},
            "bot": {"user_id": s.bot_user_id, "name": s.bot_user_name, "bot_id": s.bot_id, "app_id": s.app_id},
            "channels": [c.model_dump() for c in ws.channels.values()],
            "users": [u.model_dump() for u in s.users],
            "last_event": ws.events.seq,
            "socket_mode": ws.sockets.describe(),
        }
    )


@handled
async def command(request: Request) -> Response:
    body = await _body(request)
    result = await run_command(
        _ws(request),
        _http(request),
        text=_str(body, "text") or "",
        channel=_str(body, "channel") or "C0GENERAL",
        command=_str(body, "command") or "/services",
        user=_str(body, "user"),
        timestamp=_timestamp(body),
        bad_signature=_flag(body.get("bad_signature")),
        via=_str(body, "via"),
        send=_flag(body.get("send", True)),
    )
    return JSONResponse(result)


@handled
async def click(request: Request) -> Response:
    body = await _body(request)
    result = await run_click(
        _ws(request),
        _http(request),
        channel=_str(body, "channel", required=True) or "",
        message_ts=_str(body, "message_ts", required=True) or "",
        action_id=_str(body, "action_id", required=True) or "",
        value=_str(body, "value"),
        user=_str(body, "user"),
        timestamp=_timestamp(body),
        bad_signature=_flag(body.get("bad_signature")),
        via=_str(body, "via"),
    )
    return JSONResponse(result)


def _view(ws: WorkspaceState, message: Message) -> dict[str, Any]:
    view = message.to_view()
    if not message.ephemeral and not message.is_reply():
        view["reply_count"] = len(ws.replies(message.channel, message.ts))
    return view


@handled
async def messages(request: Request) -> Response:
    """Messages oldest first (thread replies included, each with its ``thread_ts``). ``channel`` limits to
    one channel; ``include_ephemeral=0`` hides ephemeral ones; ``user`` shows only the ephemeral ones that
    user can see."""
    ws = _ws(request)
    q = request.query_params
    ref = q.get("channel")
    if ref:
        channel = ws.channel(ref)
        if channel is None:
            raise UserActionError(f"no channel {ref!r}", 404)
        channels = [channel.id]
    else:
        channels = list(ws.messages)
    with_ephemeral = _flag(q.get("include_ephemeral", "1"))
    viewer = q.get("user")
    found = [
        m
        for c in channels
        for m in ws.messages.get(c, [])
        if not m.ephemeral or (with_ephemeral and (viewer is None or m.visible_to == viewer))
    ]
    found.sort(key=lambda m: ts_key(m.ts))
    return JSONResponse({"messages": [_view(ws, m) for m in found]})


@handled
async def post_as_user(request: Request) -> Response:
    """A person writes in a channel (for the page; the bot is not told, it subscribes to no events)."""
    ws = _ws(request)
    body = await _body(request)
    ref = _str(body, "channel", required=True) or ""
    channel = ws.channel(ref)
    if channel is None:
        raise UserActionError(f"no channel {ref!r}", 404)
    user = ws.user(_str(body, "user"))
    if user is None:
        raise UserActionError("no such user", 404)
    text = _str(body, "text", required=True) or ""
    message = ws.add(
        Message(
            ts=ws.next_ts(),
            channel=channel.id,
            user=user.id,
            text=text,
            from_app=False,
            thread_ts=_str(body, "thread_ts"),
            source="user",
        )
    )
    return JSONResponse(_view(ws, message))


@handled
async def calls(request: Request) -> Response:
    ws = _ws(request)
    if request.method == "DELETE":
        ws.calls.clear()
        return JSONResponse({"ok": True})
    method = request.query_params.get("method")
    found = [c for c in ws.calls if method is None or c["method"] == method]
    return JSONResponse({"calls": found})


@handled
async def socket_disconnect(request: Request) -> Response:
    """Drop every Socket Mode connection, as Slack does when it refreshes them: ``{"type": "disconnect",
    "reason": ...}`` first (default ``refresh_requested``), then close whatever the app has not closed itself
    within ``grace`` seconds (default 1). ``reason`` null drops them at once, as a network failure would. The app
    is expected to reconnect through ``apps.connections.open``."""
    ws = _ws(request)
    body = await _body(request)
    reason = _str(body, "reason") if "reason" in body else "refresh_requested"
    grace = _number(body, "grace")
    grace = (0.0 if reason is None else 1.0) if grace is None else grace
    if grace > 10:
        raise UserActionError("grace must be at most 10 seconds")
    dropped = await ws.sockets.drop_all(reason, grace)
    return JSONResponse({"dropped": dropped, "socket_mode": ws.sockets.describe()})


@handled
async def reset(request: Request) -> Response:
    _ws(request).reset()
    return JSONResponse({"ok": True})


@handled
async def app_url(request: Request) -> Response:
    ws = _ws(request)
    if request.method == "POST":
        body = await _body(request)
        url = _str(body, "url")
        if url is not None and not url.startswith(("http://", "https://")):
            raise UserActionError("url must be an http(s) URL")
        ws.settings.app_url = url
    return JSONResponse({"app_url": ws.settings.app_url})


@handled
async def faults(request: Request) -> Response:
    """Arm faults. One body sets one method's (or ``*``'s) faults, or one channel's membership:
    ``rate_limited`` N (+ ``retry_after`` s), ``error`` + ``count``, ``status`` + ``count``, ``latency`` s;
    ``{"channel": ..., "not_in_channel": true}``. DELETE clears them all (channel membership too)."""
    ws = _ws(request)
    if request.method == "DELETE":
        ws.faults.by_method.clear()
        for spec in ws.settings.channels:
            if spec.id in ws.channels:
                ws.channels[spec.id].is_member = spec.is_member
        return JSONResponse({"ok": True})
    if request.method == "POST":
        body = await _body(request)
        ref = _str(body, "channel")
        if ref is not None:
            channel = ws.channel(ref)
            if channel is None:
                raise UserActionError(f"no channel {ref!r}", 404)
            if "not_in_channel" in body:
                channel.is_member = not _flag(body["not_in_channel"])
        method = _str(body, "method")
        if method is not None:
            fault = ws.faults.get(method)
            count = _number(body, "count", integer=True)
            if (n := _number(body, "rate_limited", integer=True)) is not None:
                fault.rate_limited = int(n)
                retry_after = _number(body, "retry_after", integer=True)
                fault.retry_after = 1 if retry_after is None else int(retry_after)
            if "error" in body:
                fault.error = _str(body, "error")
                fault.error_count = int(count if count is not None else 1) if fault.error else 0
            if (status := _number(body, "status", integer=True)) is not None:
                if not 400 <= status <= 599:
                    raise UserActionError("status must be from 400 to 599")
                fault.status, fault.status_count = int(status), int(count if count is not None else 1)
            if (latency := _number(body, "latency")) is not None:
                fault.latency = float(latency)
        elif ref is None:
            raise UserActionError("give a method or a channel")
    return JSONResponse(
        {
            "methods": ws.faults.as_dict(),
            "not_in_channel": [c.id for c in ws.channels.values() if not c.is_member],
        }
    )


@handled
async def events(request: Request) -> Response:
    """Events after ``after`` (a sequence number), waiting up to ``timeout`` s (max 20) for the first one.
    ``last`` is the newest sequence number, to pass as ``after`` next time."""
    ws = _ws(request)
    try:
        after = int(request.query_params.get("after", "0"))
        timeout = min(float(request.query_params.get("timeout", LONG_POLL_MAX)), LONG_POLL_MAX)
    except ValueError:
        raise UserActionError("after must be an integer and timeout a number") from None
    if after > ws.events.seq:  # from before a restart: answer at once so the page can start over
        return JSONResponse({"events": [], "last": ws.events.seq})
    # wait in slices so a page that went away, or a workspace shutting down, ends the wait within a second
    deadline = time.monotonic() + max(timeout, 0.0)
    while True:
        found = await ws.events.wait_after(after, min(0.5, max(deadline - time.monotonic(), 0.0)))
        if found or time.monotonic() >= deadline or ws.closing or await request.is_disconnected():
            break
    return JSONResponse({"events": found, "last": ws.events.seq})


ROUTES: list[tuple[str, Callable[[Request], Awaitable[Response]], list[str]]] = [
    ("/_workspace/info", info, ["GET"]),
    ("/_workspace/command", command, ["POST"]),
    ("/_workspace/click", click, ["POST"]),
    ("/_workspace/messages", messages, ["GET"]),
    ("/_workspace/messages", post_as_user, ["POST"]),
    ("/_workspace/calls", calls, ["GET", "DELETE"]),
    ("/_workspace/reset", reset, ["POST"]),
    ("/_workspace/app_url", app_url, ["GET", "POST"]),
    ("/_workspace/faults", faults, ["GET", "POST", "DELETE"]),
    ("/_workspace/socket/disconnect", socket_disconnect, ["POST"]),
    ("/_workspace/events", events, ["GET"]),
]
