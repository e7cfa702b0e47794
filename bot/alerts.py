"""Block Kit for notifications: one alert per transition, a grouped alert for a burst, watcher notices, and the
answers of ``watches`` and ``history``. Pure functions; API text is escaped and bounded as in ``bot.views``.

Every alert carries message metadata (DESIGN.md) so that, after a crash, delivery can find what it already
posted in the channel instead of posting it twice.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from services_bot.bot.views import (
    SECTION_TEXT,
    Block,
    emoji,
    escape,
    fallback_text,
    mention,
    plain,
    status_label,
    when,
)
from services_bot.core.humanize import ago
from services_bot.core.models import UNHEALTHY_STATUSES
from services_bot.core.notifications import Acknowledgement, AuditEntry, Mute, Notice, Subscription, Transition

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


def came_from_words(t: Transition) -> str:
    """What follows ``:red_circle: failed · *name*`` on a line that already says where the service went:
    where it came from (``was running``), so the status word is not said twice (``running → *failed*``)."""
    was = escape(t.from_status or "?", 30)
    if t.kind == "new":
        return "appeared"
    if t.kind == "flap":
        return "changed and came back between two polls"
    return f"(was {was})"


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


def thread_state(later: list[Transition]) -> tuple[str, str] | None:
    """What the thread of a first alert says now, as (a line for the first alert, a prefix for its text): the
    service's latest change after it, resolved, relapsed after a recovery, or simply where it stands."""
    if not later:
        return None
    latest = later[-1]
    at = when(latest.transition_at or latest.observed_at)
    if latest.to_status == "running":
        return f":white_check_mark: *Resolved*: running again since {at}", "Resolved: "
    if any(t.to_status == "running" for t in later[:-1]):
        return f":repeat: *Relapsed*: {change_words(latest)} at {at}", "Relapsed: "
    return (
        f":arrow_right: *Now*: {change_words(latest)} at {at}",
        f"Now {fallback_text(latest.to_status or 'deleted', 30)}: ",
    )


def acks_line(acks: list[Acknowledgement]) -> str | None:
    """``:eyes: Acknowledged by @alice at <date>, @bob at <date>`` (times render in each reader's zone)."""
    if not acks:
        return None
    return (
        ":eyes: Acknowledged by "
        + ", ".join(f"{mention(a.user)} at {when(a.at)}" for a in acks[:10])
        + (f" and {len(acks) - 10} more" if len(acks) > 10 else "")
    )


def alert_message(
    t: Transition,
    *,
    channel: str | None = None,
    later: list[Transition] | None = None,
    acks: list[Acknowledgement] | None = None,
    console_url: str | None = None,
) -> tuple[str, list[Block]]:
    """The alert for one transition, with an Open in console link when ``console_url`` is known. A first alert
    being updated gets ``later`` (the changes in its thread since: it then shows whether that resolved, relapsed
    or where it stands) and ``acks`` (who is on it); ``channel`` goes into the Acknowledge button so a click can
    be checked against the channel it came from."""
    line = f"{transition_label(t)} · *{escape(t.display_name, 150)}* {came_from_words(t)}"
    blocks: list[Block] = []
    state = thread_state(later or [])
    if state is not None:
        blocks.append(_context(state[0]))
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": line}})
    if t.error_msg and t.kind != "deleted":
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"> {escape(t.error_msg, 2500)}"}})
    blocks.append(_context(_where(t)))
    acked = acks_line(acks or [])
    if acked:
        blocks.append(_context(acked))
    resolved = state is not None and state[1] == "Resolved: "
    buttons = []
    if t.kind != "deleted":
        buttons.append(_button("Details", "service_details", {"id": t.service_id, "t": t.target}))
    if t.id is not None and channel:
        buttons.append(_button("Acknowledge", "acknowledge_alert", {"c": channel, "x": t.id}))
    if not resolved:
        buttons.append(_button("Mute 1h", "mute_service", {"id": t.service_id, "t": t.target, "n": t.service_name}))
    if console_url and t.kind != "deleted":
        link = {"type": "button", "text": {"type": "plain_text", "text": "Open in console"}}
        buttons.append({**link, "action_id": "open_in_console", "url": console_url[:3000]})
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    # change_words is escaped mrkdwn already: only bounded here, not escaped twice
    text = f"{fallback_text(t.display_name, 150)}: {plain(change_words(t).replace('*', ''), 200)}"
    return (state[1] if state else "") + text, blocks


def updated_metadata(t: Transition, later: list[Transition], acks: list[Acknowledgement]) -> dict[str, Any]:
    """The first alert's metadata after an update: still its own transition (so a crash look-up matches it),
    plus the thread's state and who acknowledged it, for anything reading the channel."""
    meta = metadata(t)
    state = thread_state(later)
    meta["event_payload"]["thread_state"] = state[1].rstrip(": ").lower() if state else "open"
    meta["event_payload"]["latest_status"] = (later[-1].to_status or "") if later else (t.to_status or "")
    meta["event_payload"]["acknowledged_by"] = ",".join(a.user for a in acks)
    return meta


GROUP_CAUSES = 8
CAUSE_NAMES = 3


def cause_of(t: Transition) -> str:
    """A failure's cause for grouping: the first line of its error, bounded; services failing alike share it."""
    first = (t.error_msg or "").strip().splitlines()[0] if (t.error_msg or "").strip() else ""
    return first[:120]


def cause_lines(transitions: list[Transition]) -> list[str]:
    """``:red_circle: *8 failed*: OOMKilled (ocr-a, ocr-b, ocr-c, … +5)``, biggest group first."""
    groups: dict[tuple[str, str], list[Transition]] = {}
    for t in transitions:
        groups.setdefault((t.to_status or "deleted", cause_of(t) if t.kind != "deleted" else ""), []).append(t)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    lines = []
    for (status, cause), members in ordered[:GROUP_CAUSES]:
        named = sorted(members, key=lambda m: m.display_name.lower())[:CAUSE_NAMES]
        names = ", ".join(escape(m.display_name, 60) for m in named)
        more = f", … +{len(members) - CAUSE_NAMES}" if len(members) > CAUSE_NAMES else ""
        what = f": {escape(cause, 120)}" if cause else ""
        icon = emoji(status if status != "deleted" else None)
        lines.append(f"{icon} *{len(members)} {escape(status, 30)}*{what} ({names}{more})")
    if len(ordered) > GROUP_CAUSES:
        rest = sum(len(m) for _, m in ordered[GROUP_CAUSES:])
        lines.append(f"… {len(ordered) - GROUP_CAUSES} more causes ({rest} services)")
    return lines


def grouped_message(
    poll_id: str,
    transitions: list[Transition],
    *,
    channel: str | None = None,
    acks: list[Acknowledgement] | None = None,
) -> tuple[str, list[Block]]:
    """One message for a burst: the causes first (how many changed to what, and why, naming a few), then the
    first services one by one, and buttons for the rest and to acknowledge the lot. Well within Slack's limits:
    at most 8 blocks, each section under 3000 characters."""
    causes = "\n".join(cause_lines(transitions))
    lines = [f"• *{escape(t.display_name, 100)}* {change_words(t)}" for t in transitions[:GROUP_SHOWN]]
    blocks: list[Block] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": plain(f"{len(transitions)} services changed state", 150)},
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": _bounded(causes)}},
        {"type": "divider"},
        {"type": "section", "text": {"type": "mrkdwn", "text": _bounded("\n".join(lines))}},
    ]
    rest = len(transitions) - GROUP_SHOWN
    if rest > 0:
        blocks.append(_context(f"… and {rest} more"))
    acked = acks_line(acks or [])
    if acked:
        blocks.append(_context(acked))
    buttons = [_button("Show all", "show_transitions", {"p": poll_id})]
    if channel:
        buttons.append(_button("Acknowledge", "acknowledge_alert", {"c": channel, "p": poll_id}))
    blocks.append({"type": "actions", "elements": buttons})
    top = cause_lines(transitions)[:1]
    summary = plain(re.sub(r":[a-z_]+: |\*", "", top[0]), 200) if top else ""
    return f"{len(transitions)} services changed state" + (f": {summary}" if summary else ""), blocks


def _bounded(text: str) -> str:
    """A section's text within Slack's 3000 characters, cut at a line so no escape sequence is split."""
    if len(text) <= SECTION_TEXT:
        return text
    cut = text[: SECTION_TEXT - 2].rsplit("\n", 1)[0]
    return cut + "\n…"


NOTICE_ICONS = {
    "outage": ":rotating_light:",
    "recovered": ":white_check_mark:",
    "delivery": ":warning:",
    "mute_ended": ":loud_sound:",
}
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,30}$")


def notice_message(notice: Notice) -> tuple[str, list[Block]]:
    if notice.kind == "mute_ended":
        line = f"{NOTICE_ICONS['mute_ended']} The mute of *{escape(notice.text, 150)}* ended: alerts for it are back."
        return f"The mute of {fallback_text(notice.text, 150)} ended", [
            {"type": "section", "text": {"type": "mrkdwn", "text": line}},
            _context(f"at {when(notice.observed_at)}"),
        ]
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
    title: str,
    transitions: list[Transition],
    *,
    now: datetime | None = None,
    acks: dict[int, list[Acknowledgement]] | None = None,
    beyond: int = 0,
    older: dict[str, Any] | None = None,
) -> tuple[str, list[Block]]:
    """A list of transitions (``history``, a group's "Show all"), newest change first, cut to fit one message;
    each line says who acknowledged it. ``beyond``: how many more match past these; ``older``: the value of an
    "Older" button that shows them. Nothing is left out without saying how much.

    ``title`` may hold the service name a person typed: escaped in the top-level text, as written in the header."""
    text = fallback_text(title, 200)
    if not transitions:
        return text, [{"type": "section", "text": {"type": "mrkdwn", "text": f"{escape(title, 200)}: none."}}]
    lines = []
    for t in transitions:
        line = (
            f"{transition_label(t)} · *{escape(t.display_name, 100)}* {came_from_words(t)} · "
            f"{ago(t.transition_at or t.observed_at, now) or ''}"
        )
        if t.error_msg and t.to_status in UNHEALTHY_STATUSES:
            line += f"\n      _{escape(t.error_msg, 200)}_"
        who = (acks or {}).get(t.id or -1)
        if who:
            line += "\n      :eyes: acknowledged by " + ", ".join(mention(a.user) for a in who[:5])
        lines.append(line)
    sections, shown = line_sections(lines)
    blocks: list[Block] = [{"type": "header", "text": {"type": "plain_text", "text": plain(title, 150)}}, *sections]
    left = beyond + len(transitions) - shown
    if left > 0:
        blocks.append(_context(f"{shown} shown · {left} more, older" + (": press Older" if older else "")))
        if older:
            blocks.append({"type": "actions", "elements": [_button("Older", "history_older", older)]})
    return text, blocks


def mutes_message(channel_mutes: list[Mute], channel: str) -> tuple[str, list[Block]]:
    """This channel's active mutes: who set each, when it ends, and an Unmute button each."""
    if not channel_mutes:
        text = "Nothing is muted in this channel."
        return text, [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{len(channel_mutes)} muted in this channel"}}
    ]
    for m in channel_mutes[:40]:
        by = f" by {mention(m.set_by)}" if m.set_by else ""
        since = f" {when(m.set_at)}" if m.set_at else ""
        line = f":mute: *{escape(m.service_name or m.service_id, 150)}* until {when(m.until)} · muted{by}{since}"
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": line},
                "accessory": unmute_button(channel, m.target, m.service_id),
            }
        )
    if len(channel_mutes) > 40:
        blocks.append(_context(f"… and {len(channel_mutes) - 40} more: `/services unmute <service>`"))
    return f"{len(channel_mutes)} muted in this channel", blocks


def unmute_button(channel: str, target: str, service_id: str) -> Block:
    """Its value names the channel too: a click from any other channel is refused (``bot.notify``)."""
    return _button("Unmute", "unmute_service", {"c": channel, "t": target, "id": service_id})


AUDIT_WORDS = {
    "watch": "watch",
    "unwatch": "unwatch",
    "mute": "mute",
    "unmute": "unmute",
    "acknowledge": "acknowledged",
}


def audit_message(
    entries: list[AuditEntry], since_words: str, total: int, *, every_channel: bool
) -> tuple[str, list[Block]]:
    """``/services audit``: every state-changing action, newest first, with who, where and when."""
    where = "every channel" if every_channel else "this channel"
    title = f"Audit of {where}, last {since_words}: {total} actions"
    if not entries:
        return title, [{"type": "section", "text": {"type": "mrkdwn", "text": f"{escape(title, 200)}. None."}}]
    lines = []
    for e in entries:
        place = f" in <#{e.channel}>" if every_channel and _CHANNEL_ID.match(e.channel) else ""
        about = f" *{escape(e.detail, 200)}*" if e.detail else ""
        target = f" (target {escape(e.target, 60)})" if e.target else ""
        lines.append(f"{when(e.at)} {mention(e.user)} {AUDIT_WORDS[e.action]}{about}{target}{place}")
    sections, shown = line_sections(lines)
    blocks: list[Block] = [{"type": "header", "text": {"type": "plain_text", "text": plain(title, 150)}}, *sections]
    if total > shown:
        blocks.append(_context(f"{shown} shown · {total - shown} more, older: narrow it with `audit since:1d`"))
    return fallback_text(title, 200), blocks


def line_sections(lines: list[str], *, chars: int = 2900, most: int = 44) -> tuple[list[Block], int]:
    """``lines`` packed into mrkdwn sections of at most ``chars`` characters (Slack allows 3000) and at most
    ``most`` sections (a message holds 50 blocks; a header and a footer stay possible), and how many lines fit:
    the caller says how many were left out."""
    sections: list[Block] = []
    chunk: list[str] = []
    shown = 0
    for line in lines:
        if chunk and sum(len(x) + 1 for x in chunk) + len(line) > chars:
            sections.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(chunk)}})
            chunk = []
            if len(sections) >= most:
                break
        chunk.append(line)
        shown += 1
    if chunk:
        sections.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(chunk)}})
    return sections, shown


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}


def _button(text: str, action_id: str, value: dict[str, Any]) -> Block:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": json.dumps(value)[:2000],
    }
