"""Block Kit for why a service failed, what changed and how loaded it is (``show``, ``events``, ``load``).

Pure, like ``bot/views.py``: every event text and field value comes from the API and is escaped and bounded
here (``escape``); times are Slack dates, rendered in each reader's zone.
"""

from __future__ import annotations

import json

from services_bot.bot.views import Block, escape, plain, status_label, when
from services_bot.core.insights import LoadAnswer, Timeline
from services_bot.core.models import Service
from services_bot.core.models_events import Event
from services_bot.core.service_fields import hidden_fields

SECTION_TEXT = 3000
MAX_BLOCKS = 50
TIMELINE_ROWS = 25
"""Events a Slack timeline shows (a section holds 3000 characters; the rest is said as a count)."""


def _event_line(e: Event) -> str:
    repeat = f" (×{e.count})" if e.count > 1 else ""
    mark = ":warning:" if e.kind == "warning" else ":red_circle:" if e.abnormal else ":white_circle:"
    moment = when(e.at) or "-"
    return f"{mark} {moment} *{escape(e.kind, 10)}* {escape(e.text, 400)}{repeat}"


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:SECTION_TEXT]}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}


def why_blocks(timeline: Timeline) -> list[Block]:
    """The latest abnormal events and the last update, as ``show`` adds them for a failed or concerning service."""
    blocks: list[Block] = []
    if timeline.abnormal:
        lines = "\n".join(_event_line(e) for e in timeline.abnormal)
        blocks.append(_section(f"*Latest abnormal events*\n{lines}"))
    if timeline.last_update is not None:
        u = timeline.last_update
        blocks.append(_context(f"Last update: {when(u.at) or '-'} · *{escape(u.result, 20)}*"))
    blocks += [_context(f":grey_exclamation: {escape(n, 500)}") for n in timeline.notes]
    return blocks


def hidden_blocks(service: Service) -> list[Block]:
    """The detail fields the list hides: notification topic, log channels, debug URL, pools, batch paths."""
    pairs = hidden_fields(service)
    if not pairs:
        return []
    fields = [{"type": "mrkdwn", "text": f"*{escape(k, 80)}*\n{escape(v, 400)}"[:2000]} for k, v in pairs[:10]]
    return [{"type": "section", "fields": fields}]


def service_actions(service: Service, console_url: str | None) -> Block:
    """Timeline (the service's events, to the clicker) and, when the region is known, Open in console."""
    value = json.dumps({"q": f"events {service.service_id}", "t": service.target})
    elements: list[Block] = [
        {
            "type": "button",
            "text": {"type": "plain_text", "text": "Timeline"},
            "action_id": "service_timeline",
            "value": value[:2000],
        }
    ]
    if console_url:
        elements.append(
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Open in console"},
                "action_id": "open_in_console",
                "url": console_url[:3000],
            }
        )
    return {"type": "actions", "elements": elements}


def timeline_view(service: Service, timeline: Timeline) -> list[Block]:
    head = f"{service.display_name}: events and updates"
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": plain(head, 150)}},
        _context(f"{status_label(service.status)} · {timeline.total} event(s) and update(s), newest first"),
    ]
    rows = timeline.entries[:TIMELINE_ROWS]
    if rows:
        text = ""
        for e in rows:
            line = _event_line(e) + "\n"
            if len(text) + len(line) > SECTION_TEXT:
                blocks.append(_section(text))
                text = ""
            text += line
        if text:
            blocks.append(_section(text))
    elif not timeline.notes:
        blocks.append(_section("No events in this window."))
    if timeline.total > len(rows):
        blocks.append(_context(f"Showing the newest {len(rows)} of {timeline.total}; narrow with since: or type:."))
    blocks += [_context(f":grey_exclamation: {escape(n, 500)}") for n in timeline.notes]
    return blocks[:MAX_BLOCKS]


def _pair(pair: tuple[float | None, float | None], unit: str = "") -> str:
    used, total = pair
    show = lambda v: "-" if v is None else f"{v:g}"  # noqa: E731
    return f"{show(used)}/{show(total)}{unit}"


def load_view(service: Service, answer: LoadAnswer) -> list[Block]:
    head = f"{service.display_name}: load"
    blocks: list[Block] = [{"type": "header", "text": {"type": "plain_text", "text": plain(head, 150)}}]
    load = answer.load
    if load is not None:
        count = lambda v: "-" if v is None else str(v)  # noqa: E731
        down = " · :warning: instances down" if load.short else ""
        rpm = f" · {load.requests_per_minute} requests/min" if load.requests_per_minute is not None else ""
        blocks.append(
            _section(
                f"{status_label(service.status)} · *{count(load.running)}/{count(load.wanted)}* running{down}{rpm}"
            )
        )
        for m in load.models[:20]:
            parts = [f"{count(m.running)}/{count(m.wanted)} running"]
            parts += [f"{label} {_pair(pair, unit)}" for label, pair, unit in m.usage()]
            if m.calls is not None:
                parts.append(f"{m.failed_calls or 0:,} failed of {m.calls:,} calls")
            if m.status:
                parts.append(f"`{escape(m.status, 20)}`")
            blocks.append(_section(f"*{escape(m.name, 120)}* · " + " · ".join(parts)))
    blocks += [_context(f":grey_exclamation: {escape(n, 500)}") for n in answer.notes]
    return blocks[:MAX_BLOCKS]
