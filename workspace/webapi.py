"""Slack's Web API as the bot sees it: ``/api/{method}``, an independent reading of Slack's docs.

slack_sdk sends some methods as JSON bodies (chat.*), some as GET query strings (conversations.*), and
other clients send form bodies; every way is accepted and merged into one argument dict. Values that Slack
accepts as JSON text in a form (``blocks``, ``metadata``, ``attachments``) are decoded here, so the rest of
the code sees objects. Answers are HTTP 200 with ``{"ok": ...}`` except injected 429/5xx faults.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from services_bot.workspace.blocks import BlockError, validate_blocks, with_block_ids
from services_bot.workspace.state import Message, WorkspaceState, ts_key
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

MAX_TEXT = 40_000


class ApiError(Exception):
    """An ``{"ok": false, "error": ...}`` answer; ``messages`` go to ``response_metadata.messages`` as Slack
    does for argument errors."""

    def __init__(self, error: str, *messages: str) -> None:
        super().__init__(error)
        self.error = error
        self.messages = list(messages)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error": self.error}
        if self.messages:
            body["response_metadata"] = {"messages": self.messages}
        return body


Args = dict[str, Any]
Handler = Callable[[WorkspaceState, Args], Awaitable[dict[str, Any]]]


# -- argument parsing ----------------------------------------------------------------------------------


async def read_args(request: Request) -> Args:
    """Query string, then the body (JSON or form-encoded) on top."""
    args: Args = dict(request.query_params)
    raw = await request.body()
    if raw.strip():
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json":
            try:
                body = json.loads(raw)
            except ValueError:
                raise ApiError("invalid_json") from None
            if not isinstance(body, dict):
                raise ApiError("invalid_json")
            args.update(body)
        elif ctype in ("application/x-www-form-urlencoded", ""):
            args.update(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        elif ctype.startswith("multipart/"):
            form = await request.form()
            args.update({k: v for k, v in form.items() if isinstance(v, str)})
        else:
            raise ApiError("invalid_form_data")
    return args


def _missing(key: str) -> ApiError:
    return ApiError("invalid_arguments", f"[ERROR] missing required field: {key}")


def opt_str(args: Args, key: str) -> str | None:
    value = args.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise ApiError("invalid_arguments", f"[ERROR] {key} must be a string")
    return value


def req_str(args: Args, key: str) -> str:
    value = opt_str(args, key)
    if value is None:
        raise _missing(key)
    return value


def opt_bool(args: Args, key: str) -> bool:
    value = args.get(key)
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return False


def opt_int(args: Args, key: str, default: int, lo: int, hi: int) -> int:
    value = args.get(key)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ApiError("invalid_arguments", f"[ERROR] {key} must be an integer") from None
    return min(max(number, lo), hi)


def opt_json(args: Args, key: str, kind: type) -> Any:
    """A value that may come as an object (JSON body) or as JSON text (form body)."""
    value = args.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ApiError(f"invalid_{key}", f"[ERROR] {key} is not valid JSON") from None
    if not isinstance(value, kind):
        raise ApiError(f"invalid_{key}", f"[ERROR] {key} must be a JSON {kind.__name__}")
    return value


def opt_ts(args: Args, key: str) -> str | None:
    value = opt_str(args, key)
    if value is None:
        return None
    try:
        ts_key(value)
    except ValueError:
        raise ApiError("invalid_ts_" + key.removesuffix("_ts"), f"[ERROR] {key} is not a timestamp") from None
    return value


def metadata_arg(args: Args) -> dict[str, Any] | None:
    meta = opt_json(args, "metadata", dict)
    if meta is None:
        return None
    if not isinstance(meta.get("event_type"), str) or not meta["event_type"]:
        raise ApiError("invalid_metadata_format", "[ERROR] metadata.event_type must be a non-empty string")
    payload = meta.get("event_payload", {})
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError:
            raise ApiError("invalid_metadata_format", "[ERROR] metadata.event_payload is not JSON") from None
    if not isinstance(payload, dict):
        raise ApiError("invalid_metadata_format", "[ERROR] metadata.event_payload must be an object")
    return {"event_type": meta["event_type"], "event_payload": payload}


def content_args(args: Args, *, required: bool) -> tuple[str | None, list[dict[str, Any]] | None, list[Any] | None]:
    """text, blocks and attachments, checked the way Slack checks them."""
    text = opt_str(args, "text")
    blocks = opt_json(args, "blocks", list)
    attachments = opt_json(args, "attachments", list)
    if blocks is not None:
        try:
            validate_blocks(blocks)
        except BlockError as exc:
            raise ApiError("invalid_blocks", f"[ERROR] {exc}") from None
        blocks = with_block_ids(blocks)
    if required and not text and not blocks and not attachments:
        raise ApiError("no_text")
    if text is not None and len(text) > MAX_TEXT:
        raise ApiError("msg_too_long")
    return text, blocks, attachments


def channel_arg(state: WorkspaceState, args: Args, *, posting: bool = False) -> str:
    ref = req_str(args, "channel")
    channel = state.channel(ref)
    if channel is None:
        raise ApiError("channel_not_found")
    if posting and not channel.is_member:
        raise ApiError("not_in_channel")
    return channel.id


# -- cursors -------------------------------------------------------------------------------------------


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        if not text.startswith("offset:"):
            raise ValueError(text)
        return max(0, int(text.removeprefix("offset:")))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError("invalid_cursor") from None


def page(items: list[Any], args: Args, default_limit: int) -> tuple[list[Any], dict[str, Any]]:
    limit = opt_int(args, "limit", default_limit, 1, 999)
    if args.get("limit") in (0, "0"):
        limit = default_limit
    start = decode_cursor(opt_str(args, "cursor"))
    chunk = items[start : start + limit]
    more = start + limit < len(items)
    return chunk, {"has_more": more, "response_metadata": {"next_cursor": encode_cursor(start + limit) if more else ""}}


def in_window(message: Message, args: Args) -> bool:
    oldest, latest = opt_ts(args, "oldest"), opt_ts(args, "latest")
    inclusive = opt_bool(args, "inclusive")
    key = ts_key(message.ts)
    if oldest is not None and (key < ts_key(oldest) or (key == ts_key(oldest) and not inclusive)):
        return False
    return not (latest is not None and (key > ts_key(latest) or (key == ts_key(latest) and not inclusive)))


# -- methods -------------------------------------------------------------------------------------------


async def auth_test(state: WorkspaceState, args: Args) -> dict[str, Any]:
    s = state.settings
    return {
        "ok": True,
        "url": f"{state.url}/",
        "team": s.team_name,
        "user": s.bot_user_name,
        "team_id": s.team_id,
        "user_id": s.bot_user_id,
        "bot_id": s.bot_id,
        "app_id": s.app_id,
        "is_enterprise_install": False,
    }


async def api_test(state: WorkspaceState, args: Args) -> dict[str, Any]:
    return {"ok": True, "args": {k: v for k, v in args.items() if k != "token"}}


async def chat_post_message(state: WorkspaceState, args: Args) -> dict[str, Any]:
    channel = channel_arg(state, args, posting=True)
    text, blocks, attachments = content_args(args, required=True)
    metadata = metadata_arg(args)
    thread_ts = opt_ts(args, "thread_ts")
    if thread_ts is not None:
        parent = state.find(channel, thread_ts)
        if parent is None or parent.ephemeral:
            raise ApiError("thread_not_found")
        thread_ts = parent.thread_ts or parent.ts  # a reply's ts means its thread, as in Slack
    message = Message(
        ts=state.next_ts(),
        channel=channel,
        user=state.settings.bot_user_id,
        text=text or "",
        blocks=blocks,
        attachments=attachments,
        metadata=metadata,
        thread_ts=thread_ts,
        reply_broadcast=thread_ts is not None and opt_bool(args, "reply_broadcast"),
    )
    state.add(message)
    view = message.to_slack(state.settings, include_metadata=True, replies=[])
    return {"ok": True, "channel": channel, "ts": message.ts, "message": view}


async def chat_update(state: WorkspaceState, args: Args) -> dict[str, Any]:
    channel = channel_arg(state, args, posting=True)
    ts = opt_ts(args, "ts")
    if ts is None:
        raise _missing("ts")
    message = state.find(channel, ts)
    if message is None or message.ephemeral:
        raise ApiError("message_not_found")
    if not message.from_app:
        raise ApiError("cant_update_message")
    text, blocks, attachments = content_args(args, required=False)
    metadata = metadata_arg(args)
    if text is None and blocks is None and attachments is None and metadata is None:
        raise ApiError("no_text")
    if text is not None:
        message.text = text
    if blocks is not None:
        message.blocks = blocks or None
    if attachments is not None:
        message.attachments = attachments or None
    if metadata is not None:
        message.metadata = metadata
    message.edited = {"user": state.settings.bot_user_id, "ts": state.next_ts()}
    state.changed(message)
    view = message.to_slack(state.settings, include_metadata=True, replies=[])
    return {"ok": True, "channel": channel, "ts": message.ts, "text": message.text, "message": view}


async def chat_delete(state: WorkspaceState, args: Args) -> dict[str, Any]:
    channel = channel_arg(state, args)
    ts = opt_ts(args, "ts")
    if ts is None:
        raise _missing("ts")
    message = state.find(channel, ts)
    if message is None or message.ephemeral:
        raise ApiError("message_not_found")
    if not message.from_app:
        raise ApiError("cant_delete_message")
    state.delete(message)
    return {"ok": True, "channel": channel, "ts": ts}


async def chat_post_ephemeral(state: WorkspaceState, args: Args) -> dict[str, Any]:
    channel = channel_arg(state, args, posting=True)
    person = state.user(req_str(args, "user"))
    if person is None:
        raise ApiError("user_not_in_channel")
    text, blocks, attachments = content_args(args, required=True)
    thread_ts = opt_ts(args, "thread_ts")
    message = Message(
        ts=state.next_ts(),
        channel=channel,
        user=state.settings.bot_user_id,
        text=text or "",
        blocks=blocks,
        attachments=attachments,
        thread_ts=thread_ts,
        ephemeral=True,
        visible_to=person.id,
    )
    state.add(message)
    return {"ok": True, "message_ts": message.ts}


async def conversations_history(state: WorkspaceState, args: Args) -> dict[str, Any]:
    channel = channel_arg(state, args)
    with_meta = opt_bool(args, "include_all_metadata")
    stored = state.messages.get(channel, [])
    visible = [m for m in stored if not m.ephemeral and (not m.is_reply() or m.reply_broadcast) and in_window(m, args)]
    visible.sort(key=lambda m: ts_key(m.ts), reverse=True)
    chunk, paging = page(visible, args, 100)
    out = [m.to_slack(state.settings, include_metadata=with_meta, replies=state.replies(channel, m.ts)) for m in chunk]
    return {
        "ok": True,
        "messages": out,
        **paging,
        "pin_count": 0,
        "channel_actions_ts": None,
        "channel_actions_count": 0,
    }


async def conversations_replies(state: WorkspaceState, args: Args) -> dict[str, Any]:
    channel = channel_arg(state, args)
    ts = opt_ts(args, "ts")
    if ts is None:
        raise _missing("ts")
    message = state.find(channel, ts)
    if message is None or message.ephemeral:
        raise ApiError("thread_not_found")
    parent_ts = message.thread_ts or message.ts
    parent = state.find(channel, parent_ts)
    thread = ([parent] if parent else []) + state.replies(channel, parent_ts)
    thread = [m for m in thread if m is parent or in_window(m, args)]
    with_meta = opt_bool(args, "include_all_metadata")
    chunk, paging = page(thread, args, 1000)
    out = [
        m.to_slack(
            state.settings, include_metadata=with_meta, replies=state.replies(channel, m.ts) if m is parent else []
        )
        for m in chunk
    ]
    return {"ok": True, "messages": out, **paging}


def channel_view(state: WorkspaceState, channel_id: str) -> dict[str, Any]:
    c = state.channels[channel_id]
    return {
        "id": c.id,
        "name": c.name,
        "name_normalized": c.name,
        "is_channel": True,
        "is_group": False,
        "is_im": False,
        "is_private": False,
        "is_archived": False,
        "is_general": c.name == "general",
        "is_member": c.is_member,
        "created": 1700000000,
        "creator": state.settings.default_user.id,
        "context_team_id": state.settings.team_id,
        "topic": {"value": c.topic, "creator": "", "last_set": 0},
        "purpose": {"value": "", "creator": "", "last_set": 0},
        "num_members": len(state.settings.users) + 1,
    }


async def conversations_info(state: WorkspaceState, args: Args) -> dict[str, Any]:
    return {"ok": True, "channel": channel_view(state, channel_arg(state, args))}


async def conversations_list(state: WorkspaceState, args: Args) -> dict[str, Any]:
    chunk, paging = page([channel_view(state, c) for c in state.channels], args, 100)
    return {"ok": True, "channels": chunk, "response_metadata": paging["response_metadata"]}


async def chat_get_permalink(state: WorkspaceState, args: Args) -> dict[str, Any]:
    channel = channel_arg(state, args)
    ts = opt_ts(args, "message_ts")
    if ts is None:
        raise _missing("message_ts")
    message = state.find(channel, ts)
    if message is None or message.ephemeral:
        raise ApiError("message_not_found")
    link = f"{state.url}/archives/{channel}/p{ts.replace('.', '')}"
    if message.is_reply():
        link += f"?thread_ts={message.thread_ts}&cid={channel}"
    return {"ok": True, "channel": channel, "permalink": link}


async def apps_connections_open(state: WorkspaceState, args: Args) -> dict[str, Any]:
    """A one-time websocket URL for Socket Mode (the app-level token is checked in ``api``)."""
    url = await state.sockets.issue_url()
    if url is None:
        raise ApiError("service_unavailable")
    return {"ok": True, "url": url}


async def usergroups_users_list(state: WorkspaceState, args: Args) -> dict[str, Any]:
    """The members of a user group (``S…``), as Slack answers it; an unknown group is ``no_such_subteam``."""
    group = req_str(args, "usergroup")
    members = state.settings.usergroups.get(group)
    if members is None:
        raise ApiError("no_such_subteam")
    return {"ok": True, "users": list(members)}


METHODS: dict[str, Handler] = {
    "api.test": api_test,
    "apps.connections.open": apps_connections_open,
    "auth.test": auth_test,
    "chat.postMessage": chat_post_message,
    "chat.update": chat_update,
    "chat.delete": chat_delete,
    "chat.postEphemeral": chat_post_ephemeral,
    "chat.getPermalink": chat_get_permalink,
    "conversations.history": conversations_history,
    "conversations.replies": conversations_replies,
    "conversations.info": conversations_info,
    "conversations.list": conversations_list,
    "usergroups.users.list": usergroups_users_list,
}
NO_AUTH = {"api.test"}
APP_TOKEN_METHODS = {"apps.connections.open"}
"""Methods that take the app-level token (``xapp-…``); every other one takes the bot token."""


def _token(request: Request, args: Args) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    token = args.get("token")
    return token if isinstance(token, str) and token else None


async def api(request: Request) -> Response:
    """``/api/{method}``: auth, record the call, apply faults, run the method."""
    state: WorkspaceState = request.app.state.workspace
    method = request.path_params["method"]
    try:
        args = await read_args(request)
    except ApiError as exc:
        return JSONResponse(exc.body())
    recorded = {k: v for k, v in args.items() if k != "token"}
    for key, kind in (("blocks", list), ("attachments", list), ("metadata", dict)):
        if isinstance(recorded.get(key), str):
            with contextlib.suppress(ApiError):
                recorded[key] = opt_json(recorded, key, kind)
    call = state.record_call(method, recorded, request.method, request.headers.get("user-agent"))

    def answer(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
        call["ok"], call["error"], call["status"] = body.get("ok"), body.get("error"), status
        return JSONResponse(body, status_code=status, headers=headers)

    handler = METHODS.get(method)
    if handler is None:
        return answer({"ok": False, "error": "unknown_method", "req_method": method})
    if method not in NO_AUTH:
        token = _token(request, args)
        if token is None:
            return answer({"ok": False, "error": "not_authed"})
        app_level = method in APP_TOKEN_METHODS
        wanted, other = (
            (state.settings.app_token, state.settings.bot_token)
            if app_level
            else (state.settings.bot_token, state.settings.app_token)
        )
        if token != wanted:
            return answer({"ok": False, "error": "not_allowed_token_type" if token == other else "invalid_auth"})
    fault = state.faults.take(method)
    if fault.latency > 0:
        await asyncio.sleep(fault.latency)
    if fault.kind == "ratelimited":
        call["fault"] = "ratelimited"
        return answer({"ok": False, "error": "ratelimited"}, 429, {"Retry-After": str(fault.retry_after)})
    if fault.kind == "status":
        call["fault"] = f"status {fault.status}"
        return answer({"ok": False, "error": "fatal_error" if fault.status >= 500 else "request_failed"}, fault.status)
    if fault.kind == "error":
        call["fault"] = fault.error
        return answer({"ok": False, "error": fault.error})
    try:
        body = await handler(state, args)
    except ApiError as exc:
        return answer(exc.body())
    return answer(body)
