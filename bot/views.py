"""Block Kit views of the query layer's answers: pure functions from answers to Slack blocks.

Everything the API sends, and everything a person typed, is untrusted: wherever Slack parses text (mrkdwn text
objects, and a message's top-level ``text``) it is escaped (``&``, ``<``, ``>``: ``escape``, ``fallback_text``)
so a service named ``<!channel>`` renders literally and pings no one. plain_text objects are not parsed and are
shown as written, so there it is only bounded (``plain``): escaping would show ``&lt;`` on screen. Every text is
cut to Slack's limits (section text 3000, header 150, button value 2000, 50 blocks a message) so a large answer
paginates instead of failing.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from services_bot.core.humanize import ago
from services_bot.core.models import FAILED_STATUSES, Service
from services_bot.core.query import ListResult, Summary

MAX_BLOCKS = 50
SECTION_TEXT = 3000
HEADER_TEXT = 150
BUTTON_VALUE = 2000
STATUS_EMOJI = {
    "running": ":large_green_circle:",
    "deploying": ":large_blue_circle:",
    "concerning": ":large_orange_circle:",
    "failed": ":red_circle:",
    "stopped": ":white_circle:",
    "finished": ":white_check_mark:",
    "stopping": ":double_vertical_bar:",
    "deleting": ":wastebasket:",
    "pending": ":hourglass_flowing_sand:",
    "waiting": ":hourglass:",
    "error": ":x:",  # v2's "abnormal": unhealthy like failed, told apart at a glance
    "upgrading": ":arrows_counterclockwise:",
    "interrupting": ":black_circle:",
    "init": ":large_yellow_circle:",
}

Block = dict[str, Any]


def escape(value: object, limit: int = 500) -> str:
    """mrkdwn-safe text: the three control characters escaped, long values cut with an ellipsis."""
    text = "" if value is None else str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plain(value: object, limit: int) -> str:
    """plain_text fields are not parsed as mrkdwn; they only need the length bound (never for top-level text)."""
    text = " ".join(("" if value is None else str(value)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fallback_text(value: object, limit: int) -> str:
    """An untrusted value in a message's top-level ``text``: one line, bounded, and escaped, because Slack parses
    that text as mrkdwn (notifications, previews, screen readers and clients without blocks show it), so a raw
    ``<!channel>`` there would ping the channel even when every block is escaped."""
    return escape(plain(value, limit), limit)


_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")


def mention(user_id: str | None) -> str:
    """``<@U123>`` for a well-formed Slack user id (Slack renders the name); anything else is not trusted."""
    return f"<@{user_id}>" if user_id and _USER_ID.match(user_id) else "someone"


def emoji(status: str | None) -> str:
    """Only the emoji, for building labels: what is posted says ``status_label`` so the word comes with it."""
    return STATUS_EMOJI.get(status or "", ":grey_question:")


def status_label(status: str | None, word: str | None = None) -> str:
    """A status's emoji followed by its word (``:red_circle: failed``), never the emoji alone: a Slack client, or
    the demo page on a machine, without a colour-emoji font shows a blank box for the emoji, and the word still
    says what it means. ``word`` names what an emoji-less status stands for (``deleted``)."""
    return f"{emoji(status)} {escape(word or status or 'unknown', 30)}"


def _button(text: str, action_id: str, value: str, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": plain(text, 75)},
        "action_id": action_id,
        "value": value[:BUTTON_VALUE],
    }
    if style:
        button["style"] = style
    return button


def service_line(s: Service, now: datetime | None = None) -> str:
    calls = (
        f" · {s.failed_times or 0:,}/{s.invocation_times:,} failed calls" if s.invocation_times is not None else ""
    )
    line = (
        f"{status_label(s.status)} · *{escape(s.display_name, 120)}* · "
        f"{escape(s.infer_type or '-', 20)} · ws {escape(s.workspace_id or '-', 40)} · "
        f"{ago(s.transition_at, now) or 'never changed'}{calls}"
    )
    if s.status in FAILED_STATUSES and s.error_msg:
        line += f"\n> {escape(s.error_msg, 600)}"
    return line


def list_view(
    result: ListResult, command_text: str, *, shareable: bool = True, now: datetime | None = None
) -> list[Block]:
    """Header with the count and filter, one line per service with a Details button, paging buttons.

    Button values carry the command text and the page position, so a click re-runs the query statelessly.
    """
    shown = result.services[: MAX_BLOCKS - 4]
    header = f"{result.total} service{'s' if result.total != 1 else ''}: {result.description}"
    blocks: list[Block] = [{"type": "header", "text": {"type": "plain_text", "text": plain(header, HEADER_TEXT)}}]
    blocks += incomplete_blocks(result.warnings, result.complete)
    if not shown:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "Nothing matches."}})
    for s in shown:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": service_line(s, now)[:SECTION_TEXT]},
                "accessory": _button("Details", "service_details", json.dumps({"id": s.service_id, "t": s.target})),
            }
        )
    position = f"{result.offset + 1}–{result.offset + len(shown)} of {result.total}" if shown else "0 of 0"
    context = [position, *(escape(w, 300) for w in result.warnings if result.complete)]
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": "  ·  ".join(context)[:3000]}]})
    buttons = []
    if result.offset > 0:
        previous = max(0, result.offset - result.limit)
        buttons.append(_button("Previous", "page_previous", json.dumps({"q": command_text, "o": previous})))
    if result.next_cursor:
        buttons.append(_button("Next", "page_next", json.dumps({"q": command_text, "c": result.next_cursor})))
    if shareable:
        share = json.dumps({"q": command_text, "o": result.offset})
        buttons.append(_button("Share in channel", "share_in_channel", share))
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return blocks


def incomplete_blocks(warnings: list[str], complete: bool) -> list[Block]:
    """A partial answer says so first, in words, before any count can be taken for the whole fleet."""
    if complete or not warnings:
        return []
    text = ":warning: *Incomplete answer.* " + " ".join(escape(w, 300) for w in warnings[:5])
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text[:SECTION_TEXT]}}]


def notes_blocks(warnings: list[str]) -> list[Block]:
    """A complete answer's notes (how old an answer from the watcher's state is, and why), under its header."""
    if not warnings:
        return []
    text = "  ·  ".join(f":hourglass: {escape(w, 300)}" for w in warnings[:5])
    return [{"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}]


def summary_view(summary: Summary, *, now: datetime | None = None) -> list[Block]:
    header = f"{summary.total} services: {summary.description}"
    by_status = "\n".join(f"{status_label(k)}: *{v}*" for k, v in summary.by_status.items()) or "none"
    by_type = "\n".join(f"{escape(k, 30)}: *{v}*" for k, v in summary.by_infer_type.items()) or "none"
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": plain(header, HEADER_TEXT)}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*By status*\n{by_status}"[:2000]},
                {"type": "mrkdwn", "text": f"*By type*\n{by_type}"[:2000]},
            ],
        },
        {"type": "divider"},
    ]
    blocks[1:1] = incomplete_blocks(summary.warnings, summary.complete) or notes_blocks(summary.warnings)
    if not summary.unhealthy_total:
        nothing = "Nothing is failed or concerning." if summary.complete else "Nothing failed or concerning was seen."
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": nothing}})
    for s in summary.unhealthy[: MAX_BLOCKS - len(blocks) - 1]:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": service_line(s, now)[:SECTION_TEXT]}})
    if summary.unhealthy_total > len(summary.unhealthy):
        more = f"… and {summary.unhealthy_total - len(summary.unhealthy)} more: `/services unhealthy`"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    return blocks[:MAX_BLOCKS]


def when(value: datetime | None) -> str | None:
    """A time Slack renders in each reader's time zone and keeps current ("Today 14:02"), so an edited message
    never shows a frozen "(0s ago)"; the fallback, for clients that cannot, is the same moment in UTC."""
    if value is None:
        return None
    utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return f"<!date^{int(utc.timestamp())}^{{date_short_pretty}} {{time}}|{utc:%Y-%m-%d %H:%M} UTC>"


def details_view(s: Service) -> list[Block]:
    """Status, progress, error, models, address, nodes, schedule and times of one service."""
    head = f"{s.display_name} ({s.status or 'unknown'})"
    facts = [
        ("Status", status_label(s.status)),
        ("Type", escape(s.infer_type, 30)),
        ("Workspace", escape(s.workspace_id, 60)),
        ("Service id", f"`{escape(s.service_id, 80)}`"),
        (
            "Progress",
            f"{s.shown_progress}%" if s.shown_progress is not None else None,
        ),
        (
            "Calls",
            f"{s.failed_times or 0:,} failed of {s.invocation_times:,}" if s.invocation_times is not None else None,
        ),
        ("Published", when(s.publish_at)),
        ("Status changed", when(s.transition_at)),
        ("Auto-stop", when(s.due_time)),
        ("Access address", escape(s.access_address, 300) if s.access_address else None),
        ("API", s.generation),
    ]
    fields = [{"type": "mrkdwn", "text": f"*{k}*\n{v}"[:2000]} for k, v in facts if v]
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": plain(head, HEADER_TEXT)}},
        {"type": "section", "fields": fields[:10]},
    ]
    if s.error_msg:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*Error*\n> {escape(s.error_msg, 2800)}"}}
        )
    if s.schedule and not s.due_time:
        text = "; ".join(
            f"{escape(x.type or '?', 20)} after {x.duration} {escape((x.time_unit or '').lower(), 20)}"
            for x in s.schedule
        )
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"Schedule: {text}"[:3000]}]})
    for c in (s.config or [])[:20]:
        line = (
            f"*Model* {escape(c.model_name or c.model_id, 100)} {escape(c.model_version or '', 40)} · "
            f"weight {c.weight if c.weight is not None else '-'} · instances "
            f"{c.instance_count if c.instance_count is not None else '-'} · {escape(c.specification or '-', 80)}"
            f" · `{escape(c.status or '-', 20)}`"
        )
        for n in (c.nodes or [])[:10]:
            message = f" — {escape(n.message, 200)}" if n.message else ""
            state = f"{escape(n.instance_status or '-', 20)}/{escape(n.state or '-', 20)}"
            line += f"\n    node {escape(n.name or n.id, 80)}: {state}{message}"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": line[:SECTION_TEXT]}})
    for d in (s.deployments or [])[:20]:
        line = (
            f"*Deployment* {escape(d.name or '-', 100)} · {_count(d.running_count)}/{_count(d.count)} running · "
            f"{escape(d.flavor or '-', 80)} · pool {escape(d.pool or '-', 80)} · `{escape(d.status or '-', 20)}`"
        )
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": line[:SECTION_TEXT]}})
    return blocks[:MAX_BLOCKS]


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)
