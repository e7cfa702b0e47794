"""``POST /response/{id}``: the response_url Slack hands out with each slash command and each click.

Slack's rules, as read from its docs: the body is a JSON message; ``response_type`` ``ephemeral`` (the
default) shows it only to the user who acted, ``in_channel`` to everyone; ``replace_original`` replaces the
message the url is bound to (the clicked message; for a command, the last answer sent to it) and
``delete_original`` deletes it. A url works 5 times within 30 minutes, then answers 404. Answers are plain
text (``ok`` or an error word), as Slack's are.

Each post is recorded in the call log as method ``response_url`` (its body as ``args``), beside the Web API
calls: a test that checks everything the bot sent to Slack reads one log, answers to commands and clicks included.
"""

from __future__ import annotations

import json
import time
from typing import Any

from services_bot.workspace.blocks import BlockError, validate_blocks, with_block_ids
from services_bot.workspace.state import Message, WorkspaceState
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response


def _text(error: str, status: int) -> Response:
    return PlainTextResponse(error, status_code=status)


async def respond(request: Request) -> Response:
    """Record the post in the call log, then carry it out; the log keeps the status and error word it got."""
    state: WorkspaceState = request.app.state.workspace
    raw = await request.body()
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = None
    rid = request.path_params["rid"]
    args = body if isinstance(body, dict) else {"raw": raw.decode(errors="replace")}
    call = state.record_call("response_url", args, "POST")
    call["response_url"] = rid
    answer = _carry_out(state, rid, body)
    call["status"] = answer.status_code
    call["ok"] = answer.status_code == 200
    call["error"] = None if call["ok"] else bytes(answer.body).decode()
    return answer


def _carry_out(state: WorkspaceState, rid: str, body: Any) -> Response:
    """Slack's rules for one post: the url's use limits, then delete, replace or a new message."""
    binding = state.response_urls.get(rid)
    if binding is None:
        return _text("no_service", 404)
    if time.monotonic() - binding.created > state.settings.response_url_ttl_seconds:
        return _text("expired_url", 404)
    if binding.uses >= state.settings.response_url_max_uses:
        return _text("used_url", 404)
    if not isinstance(body, dict):
        return _text("invalid_payload", 400)
    text = body.get("text") if isinstance(body.get("text"), str) else ""
    blocks = body.get("blocks")
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return _text("invalid_blocks", 400)
    if blocks is not None:
        if not isinstance(blocks, list):
            return _text("invalid_blocks", 400)
        try:
            validate_blocks(blocks)
        except BlockError:
            return _text("invalid_blocks", 400)
        blocks = with_block_ids(blocks) or None
    delete = body.get("delete_original") is True or body.get("delete_original") == "true"
    replace = body.get("replace_original") is True or body.get("replace_original") == "true"
    if not delete and not text and not blocks:
        return _text("no_text", 400)
    binding.uses += 1
    original = state.find(binding.channel, binding.message_ts) if binding.message_ts else None

    if delete:
        if original is not None:
            state.delete(original)
        if not text and not blocks:
            return _text("ok", 200)
        original = None
    if replace and original is not None:
        original.text, original.blocks, original.replaced = text, blocks, True
        original.attachments = None
        state.changed(original)
        return _text("ok", 200)

    in_channel = body.get("response_type") == "in_channel"
    thread_ts = body.get("thread_ts") if isinstance(body.get("thread_ts"), str) else binding.thread_ts
    message = Message(
        ts=state.next_ts(),
        channel=binding.channel,
        user=state.settings.bot_user_id,
        text=text,
        blocks=blocks,
        thread_ts=thread_ts,
        ephemeral=not in_channel,
        visible_to=None if in_channel else binding.user,
        source="response_url",
    )
    state.add(message)
    if binding.kind == "command":
        binding.message_ts = message.ts
    return _text("ok", 200)
