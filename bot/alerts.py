"""Block Kit for notifications: one alert per transition, a grouped alert for a burst, watcher notices, and the
answers of ``watches`` and ``history``. Pure functions; API text is escaped and bounded as in ``bot.views``.

Every alert carries message metadata (DESIGN.md) so that, after a crash, delivery can find what it already
posted in the channel instead of posting it twice.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime
from typing import Any

from services_bot.bot.views import Block, escape, fallback_text, plain, status_label, when
from services_bot.core.humanize import ago
from services_bot.core.models import UNHEALTHY_STATUSES
from services_bot.core.notifications import Notice, Subscription, Transition

EVENT_TYPE = "modelarts_service_status_changed"
BATCH_EVENT_TYPE = "modelarts_service_status_changed_batch"
NOTICE_EVENT_TYPE = "services_bot_notice"
GROUP_SHOWN = 10


def metadata(t: Transition) -> dict[str, Any]:
    return {
        "event_type": EVENT_TYPE,
        "event_payload": {
            "service_id": t.service_id,
            "service_name": t.service_name or "",
            "from_status": t.from_status or "",
            "to_status": t.to_status or "",
            "transition_at": t.transition_at.isoformat() if t.transition_at else "",
            "project_id": t.project_id or "",
        },
    }


def batch_metadata(poll_id: str, channel_transitions: list[Transition]) -> dict[str, Any]:
    return {
        "event_type": BATCH_EVENT_TYPE,
        "event_payload": {"poll_id": poll_id, "count": len(channel_transitions)},
    }


def notice_metadata(notice: Notice) -> dict[str, Any]:
    """A notice's own identity, so a notice in flight at a crash is found again rather than posted twice."""
    return {
        "event_type": NOTICE_EVENT_TYPE,
        "event_payload": {
            "kind": notice.kind,
            "target": notice.target,
            "channel": notice.channel or "",
            "observed_at": notice.observed_at.isoformat(),
        },
    }


def change_words(t: Transition) -> str:
    """``running → *failed*``, or what a new, deleted or flapping service did, in words."""
    to, was = escape(t.to_status or "?", 30), escape(t.from_status or "?", 30)
    if t.kind == "new":
        return f"appeared as *{to}*"
    if t.kind == "deleted":
        return f"was deleted (last *{was}*)"
    if t.kind == "flap":
        return f"changed and came back to *{to}* between two polls"
    return f"{was} → *{to}*"


def transition_label(t: Transition) -> str:
    """The emoji and word of where a transition went (``:red_circle: failed``; ``deleted`` for a deleted one)."""
    if t.kind == "deleted":
        return status_label(None, "deleted")
    return status_label(t.to_status)


def _where(t: Transition) -> str:
    parts = [f"project {escape(t.project_id, 60)}" if t.project_id else f"target {escape(t.target, 60)}"]
    if t.workspace_id:
        parts.append(f"workspace {escape(t.workspace_id, 60)}")
    if t.infer_type:
        parts.append(escape(t.infer_type, 20))
    parts.append(when(t.transition_at or t.observed_at) or "")
    return " · ".join(p for p in parts if p)


def alert_message(t: Transition, *, resolved_by: Transition | None = None) -> tuple[str, list[Block]]:
    """The alert for one transition (``resolved_by``: the recovery that closed it, shown on the first alert)."""
    line = f"{transition_label(t)} · *{escape(t.display_name, 150)}* {change_words(t)}"
    blocks: list[Block] = []
    if resolved_by is not None:
        since = ago(resolved_by.transition_at or resolved_by.observed_at) or "now"
        blocks.append(_context(f":white_check_mark: *Resolved*: running again ({since})"))
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": line}})
    if t.error_msg and t.kind != "deleted":
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"> {escape(t.error_msg, 2500)}"}})
    blocks.append(_context(_where(t)))
    buttons = []
    if t.kind != "deleted":
        buttons.append(_button("Details", "service_details", {"id": t.service_id, "t": t.target}))
    if resolved_by is None:
        buttons.append(_button("Mute 1h", "mute_service", {"id": t.service_id, "t": t.target, "n": t.service_name}))
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    # change_words is escaped mrkdwn already: only bounded here, not escaped twice
    text = f"{fallback_text(t.display_name, 150)}: {plain(change_words(t).replace('*', ''), 200)}"
    return ("Resolved: " if resolved_by else "") + text, blocks


def grouped_message(poll_id: str, transitions: list[Transition]) -> tuple[str, list[Block]]:
    """One message for a burst: counts by new status, the first services, and a button for the rest."""
    counts = Counter(t.to_status or "deleted" for t in transitions)
    summary = " · ".join(
        f"{status_label(s if s != 'deleted' else None, s)}: *{n}*" for s, n in counts.most_common()
    )
    lines = [f"• *{escape(t.display_name, 100)}* {change_words(t)}" for t in transitions[:GROUP_SHOWN]]
    blocks: list[Block] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": plain(f"{len(transitions)} services changed state", 150)},
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": summary[:3000]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}},
    ]
    rest = len(transitions) - GROUP_SHOWN
    if rest > 0:
        blocks.append(_context(f"… and {rest} more"))
    blocks.append({"type": "actions", "elements": [_button("Show all", "show_transitions", {"p": poll_id})]})
    return f"{len(transitions)} services changed state", blocks


NOTICE_ICONS = {"outage": ":rotating_light:", "recovered": ":white_check_mark:", "delivery": ":warning:"}
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,30}$")


def notice_message(notice: Notice) -> tuple[str, list[Block]]:
    about = f"<#{notice.channel}>: " if notice.channel and _CHANNEL_ID.match(notice.channel) else ""
    text = f"{NOTICE_ICONS[notice.kind]} {about}{escape(notice.text, 2000)}"
    where = f"target {escape(notice.target, 60)} · " if notice.target else ""
    return fallback_text(notice.text, 3000), [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        _context(f"{where}{when(notice.observed_at)}"),
    ]


def late_note(delay_seconds: float, reason: str) -> Block:
    """The line on a message posted late, so a change from minutes ago is not read as happening now."""
    return _context(f":hourglass: Delayed {_span(delay_seconds)}: {escape(reason, 200)}")


def _span(seconds: float) -> str:
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def watches_message(channel_subscriptions: list[Subscription]) -> tuple[str, list[Block]]:
    if not channel_subscriptions:
        text = "This channel watches nothing. Start with `/services watch failed,concerning`."
        return text, [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    lines = [f"*{n}.* {escape(s.describe(), 300)}" for n, s in enumerate(channel_subscriptions, start=1)]
    blocks: list[Block] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "*This channel is told about*\n" + "\n".join(lines)}},
        _context("`/services unwatch N` removes one · `/services watch &lt;statuses&gt; [name:…]` adds one"),
    ]
    return f"{len(channel_subscriptions)} watches in this channel", blocks


def transitions_message(
    title: str, transitions: list[Transition], *, now: datetime | None = None
) -> tuple[str, list[Block]]:
    """A list of transitions (``history``, a group's "Show all"), newest first, cut to fit one message.

    ``title`` may hold the service name a person typed: escaped in the top-level text, as written in the header."""
    text = fallback_text(title, 200)
    if not transitions:
        return text, [{"type": "section", "text": {"type": "mrkdwn", "text": f"{escape(title, 200)}: none."}}]
    blocks: list[Block] = [{"type": "header", "text": {"type": "plain_text", "text": plain(title, 150)}}]
    chunk: list[str] = []
    for t in transitions:
        line = (
            f"{transition_label(t)} · *{escape(t.display_name, 100)}* {change_words(t)} · "
            f"{ago(t.transition_at or t.observed_at, now) or ''}"
        )
        if t.error_msg and t.to_status in UNHEALTHY_STATUSES:
            line += f"\n      _{escape(t.error_msg, 200)}_"
        if sum(len(x) + 1 for x in chunk) + len(line) > 2900:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(chunk)}})
            chunk = []
            if len(blocks) >= 45:
                break
        chunk.append(line)
    if chunk and len(blocks) < 46:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(chunk)}})
    return text, blocks


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}


def _button(text: str, action_id: str, value: dict[str, Any]) -> Block:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": json.dumps(value)[:2000],
    }
