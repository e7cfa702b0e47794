"""What a person does in Slack, done for real: run a slash command or click a button, which makes the
workspace send the bot the same signed request Slack would send, and show the bot's answer as Slack would.

Requests are form-encoded and signed with Slack's v0 scheme (``slack_sdk``'s ``SignatureVerifier`` makes the
signature), sent with Slack's 3 s timeout. A test can ask for a stale timestamp or a bad signature to see the
bot refuse them.

When the app has a Socket Mode connection open, the same payloads go over it as envelopes instead (the ack's
``payload`` is the ack body), as Slack does for an app with Socket Mode on; ``via`` picks one way explicitly.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import httpx
from services_bot.workspace.blocks import buttons, with_block_ids
from services_bot.workspace.socket_mode import NoConnection
from services_bot.workspace.state import SLACKBOT, Message, WorkspaceState
from slack_sdk.signature import SignatureVerifier

USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"


class UserActionError(Exception):
    """The action cannot be done (unknown channel, no such button, no app URL); ``status`` is the control
    API's HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def trigger_id() -> str:
    return f"{secrets.randbelow(10**13)}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"


def _channel(state: WorkspaceState, ref: str) -> tuple[str, str]:
    channel = state.channel(ref)
    if channel is None:
        raise UserActionError(f"no channel {ref!r} (known: {', '.join(state.channels)})", 404)
    return channel.id, channel.name


def _user(state: WorkspaceState, ref: str | None) -> tuple[str, str]:
    user = state.user(ref)
    if user is None:
        known = ", ".join(u.id for u in state.settings.users)
        raise UserActionError(f"no user {ref!r} (known: {known})", 404)
    return user.id, user.name


def _app_url(state: WorkspaceState) -> str:
    url = state.settings.app_url
    if not url:
        raise UserActionError("the workspace has no app_url: set it with POST /_workspace/app_url", 409)
    return url


def route(state: WorkspaceState, via: str | None, *, signing: bool) -> str:
    """How a request reaches the app: ``socket`` when asked, or by default when a Socket Mode connection is
    open; else ``http`` (which needs the app URL). Signing options (a timestamp, a bad signature) mean HTTP."""
    if via not in (None, "http", "socket"):
        raise UserActionError("via must be http or socket")
    if via is None:
        via = "socket" if state.sockets.connected() and not signing else "http"
    if via == "socket":
        if signing:
            raise UserActionError("timestamp and bad_signature are for HTTP delivery; Socket Mode signs nothing")
        if not state.sockets.connected():
            raise UserActionError("the app has no Socket Mode connection open", 409)
    else:
        _app_url(state)
    return via


async def deliver(
    state: WorkspaceState,
    http: httpx.AsyncClient,
    via: str,
    *,
    form: str,
    envelope_type: str,
    payload: dict[str, Any],
    timestamp: int | str | None,
    bad_signature: bool,
) -> dict[str, Any]:
    """Send one request the chosen way; the result has the same keys either way, plus ``via``."""
    if via == "socket":
        try:
            result = await state.sockets.deliver(
                envelope_type, payload, accepts_response_payload=envelope_type == "slash_commands"
            )
        except NoConnection as exc:
            raise UserActionError(str(exc), 409) from None
    else:
        result = await send_signed(state, http, form, timestamp=timestamp, bad_signature=bad_signature)
    result["via"] = via
    return result


def signed_request(
    state: WorkspaceState, body: str, *, timestamp: int | str | None = None, bad_signature: bool = False
) -> tuple[str, dict[str, str]]:
    """The app URL and the headers Slack would send ``body`` with, signed now (or at ``timestamp``)."""
    url = _app_url(state)
    ts = str(int(time.time()) if timestamp is None else timestamp)
    secret = state.settings.signing_secret + ("-wrong" if bad_signature else "")
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "User-Agent": USER_AGENT,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature or "",
    }
    return url, headers


async def send_signed(
    state: WorkspaceState,
    http: httpx.AsyncClient,
    body: str,
    *,
    timestamp: int | str | None = None,
    bad_signature: bool = False,
) -> dict[str, Any]:
    """POST ``body`` to the bot as Slack does and describe what came back (status, ack time, body)."""
    url, headers = signed_request(state, body, timestamp=timestamp, bad_signature=bad_signature)
    ts = headers["X-Slack-Request-Timestamp"]
    started = time.perf_counter()
    result: dict[str, Any] = {"status": None, "ack_ms": None, "ack_body": None, "timed_out": False, "error": None}
    try:
        response = await http.post(
            url, content=body.encode(), headers=headers, timeout=state.settings.ack_timeout_seconds
        )
    except httpx.TimeoutException:
        result["timed_out"] = True
        result["error"] = "operation_timeout"
    except httpx.HTTPError as exc:
        result["error"] = f"dispatch_failed: {type(exc).__name__}: {exc}"
    else:
        result["status"] = response.status_code
        ctype = response.headers.get("content-type", "")
        parsed: Any = response.text
        if "json" in ctype and response.content:
            try:
                parsed = response.json()
            except ValueError:
                parsed = response.text
        result["ack_body"] = parsed
    result["ack_ms"] = round((time.perf_counter() - started) * 1000, 3)
    result["timestamp"] = ts
    return result


def _failure_word(result: dict[str, Any]) -> str | None:
    """Slack's word for a failed ack, as shown to the user (``/services failed with the error "..."``)."""
    if result["timed_out"]:
        return "operation_timeout"
    if result["status"] is None:
        return "dispatch_failed"
    if result["status"] >= 500:
        return "http_service_error"
    if result["status"] >= 400:
        return "http_client_error"
    return None


def _store_ack(state: WorkspaceState, result: dict[str, Any], channel: str, user: str, rid: str) -> None:
    """A command's ack body is a message to the asker (or to the channel with ``response_type: in_channel``)."""
    body = result["ack_body"]
    text: str = ""
    blocks: list[dict[str, Any]] | None = None
    in_channel = False
    if isinstance(body, dict):
        text = body.get("text") if isinstance(body.get("text"), str) else ""
        blocks = body.get("blocks") if isinstance(body.get("blocks"), list) else None
        in_channel = body.get("response_type") == "in_channel"
    elif isinstance(body, str):
        text = body.strip()
    if not text and not blocks:
        return
    message = Message(
        ts=state.next_ts(),
        channel=channel,
        user=state.settings.bot_user_id,
        text=text,
        blocks=with_block_ids(blocks) if blocks else None,
        ephemeral=not in_channel,
        visible_to=None if in_channel else user,
        source="ack",
    )
    state.add(message)
    result["stored_ts"] = message.ts
    binding = state.response_urls.get(rid)
    if binding is not None:
        binding.message_ts = message.ts


async def run_command(
    state: WorkspaceState,
    http: httpx.AsyncClient,
    *,
    text: str,
    channel: str,
    command: str = "/services",
    user: str | None = None,
    timestamp: int | str | None = None,
    bad_signature: bool = False,
    via: str | None = None,
    send: bool = True,
) -> dict[str, Any]:
    """Type ``command text`` in ``channel``: send the slash-command request and show the ack.

    ``send=False`` signs the request and hands it back (``request``: url, headers, body) instead of sending it,
    for a sender elsewhere (a benchmark's own process) to time on the wire; its answers still arrive here
    through the ``response_url``, while an ack body it gets stays with that sender."""
    how = route(state, via, signing=timestamp is not None or bad_signature or not send)
    channel_id, channel_name = _channel(state, channel)
    user_id, user_name = _user(state, user)
    if not command.startswith("/"):
        command = "/" + command
    response_url = state.new_response_url("command", channel_id, user_id)
    rid = response_url.rsplit("/", 1)[1]
    s = state.settings
    fields = {
        "token": s.verification_token,
        "team_id": s.team_id,
        "team_domain": s.team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": s.app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id(),
    }
    state.events.publish("command", channel=channel_id, user=user_id, command=command, text=text)
    if not send:
        form = urlencode(fields)
        url, headers = signed_request(state, form, timestamp=timestamp, bad_signature=bad_signature)
        return {
            "request": {"url": url, "headers": headers, "body": form},
            "response_url": response_url,
            "sent": fields,
        }
    result = await deliver(
        state,
        http,
        how,
        form=urlencode(fields),
        envelope_type="slash_commands",
        payload=dict(fields),
        timestamp=timestamp,
        bad_signature=bad_signature,
    )
    result["response_url"] = response_url
    result["sent"] = fields
    failure = _failure_word(result)
    if failure is not None:
        state.add(
            Message(
                ts=state.next_ts(),
                channel=channel_id,
                user=SLACKBOT,
                from_app=False,
                ephemeral=True,
                visible_to=user_id,
                source="slackbot",
                text=f'{command} failed with the error "{failure}"',
            )
        )
    elif result["status"] == 200:
        _store_ack(state, result, channel_id, user_id, rid)
    return result


def _find_button(message: Message, action_id: str, value: str | None) -> tuple[str | None, dict[str, Any]]:
    found = buttons(message.blocks)
    for block_id, element in found:
        if element.get("action_id") == action_id and (value is None or element.get("value") == value):
            return block_id, element
    shown = ", ".join(f"{e.get('action_id')}={e.get('value')!r}" for _, e in found) or "none"
    wanted = action_id if value is None else f"{action_id}={value!r}"
    raise UserActionError(f"message {message.ts} has no button {wanted} (buttons: {shown})", 404)


async def run_click(
    state: WorkspaceState,
    http: httpx.AsyncClient,
    *,
    channel: str,
    message_ts: str,
    action_id: str,
    value: str | None = None,
    user: str | None = None,
    timestamp: int | str | None = None,
    bad_signature: bool = False,
    via: str | None = None,
) -> dict[str, Any]:
    """Click a button on a message (normal or ephemeral): send the ``block_actions`` payload."""
    how = route(state, via, signing=timestamp is not None or bad_signature)
    channel_id, channel_name = _channel(state, channel)
    user_id, user_name = _user(state, user)
    message = state.find(channel_id, message_ts)
    if message is None:
        raise UserActionError(f"no message {message_ts} in {channel_id}", 404)
    if message.ephemeral and message.visible_to != user_id:
        raise UserActionError(f"ephemeral message {message_ts} is only visible to {message.visible_to}", 404)
    block_id, element = _find_button(message, action_id, value)
    if element.get("type") != "button":
        raise UserActionError(f"{action_id} is a {element.get('type')}, only buttons can be clicked here")
    s = state.settings
    response_url = state.new_response_url("click", channel_id, user_id, message.ts, message.thread_ts)
    container: dict[str, Any] = {
        "type": "message",
        "message_ts": message.ts,
        "channel_id": channel_id,
        "is_ephemeral": message.ephemeral,
    }
    if message.thread_ts:
        container["thread_ts"] = message.thread_ts
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id,
        "text": element.get("text"),
        "type": "button",
        "action_ts": f"{time.time():.6f}",
    }
    if "value" in element:
        action["value"] = element["value"]
    if "style" in element:
        action["style"] = element["style"]
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": s.team_id},
        "api_app_id": s.app_id,
        "token": s.verification_token,
        "container": container,
        "trigger_id": trigger_id(),
        "team": {"id": s.team_id, "domain": s.team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_name},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [action],
    }
    if not message.ephemeral:
        replies = state.replies(channel_id, message.ts)
        payload["message"] = message.to_slack(s, include_metadata=False, replies=replies)
    state.events.publish(
        "click",
        channel=channel_id,
        user=user_id,
        message_ts=message.ts,
        action_id=action_id,
        value=element.get("value"),
    )
    body = urlencode({"payload": json.dumps(payload, separators=(",", ":"))})
    result = await deliver(
        state,
        http,
        how,
        form=body,
        envelope_type="interactive",
        payload=payload,
        timestamp=timestamp,
        bad_signature=bad_signature,
    )
    result["response_url"] = response_url
    result["sent"] = payload
    return result
