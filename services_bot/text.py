"""Plain-text answers for the terminal (``services-bot ask``).

API strings are untrusted: control characters (terminal escapes) are stripped and long values cut, so a
service named with an escape sequence cannot repaint the operator's terminal.
"""

from __future__ import annotations

import re
from datetime import datetime

from services_bot.core.humanize import ago
from services_bot.core.insights import LoadAnswer, Timeline
from services_bot.core.models import FAILED_STATUSES, Service
from services_bot.core.models_events import Event
from services_bot.core.query import ListResult, Summary
from services_bot.core.service_fields import hidden_fields

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(value: object, width: int = 200) -> str:
    text = _CONTROL.sub("", "" if value is None else str(value)).replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _calls(service: Service) -> str:
    if service.invocation_times is None and service.failed_times is None:
        return "-"
    return f"{service.failed_times or 0}/{service.invocation_times or 0}"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()  # noqa: E731
    return [line(headers), *(line(r) for r in rows)]


def render_list(result: ListResult) -> str:
    first = result.offset + 1 if result.services else 0
    head = f"{result.total} service(s) — {result.description}"
    if result.total > len(result.services):
        head += f" (showing {first}–{result.offset + len(result.services)})"
    lines = [head, *_incomplete(result.warnings, result.complete)]
    if result.services:
        multi = len({s.target for s in result.services}) > 1
        headers = ["STATUS", "NAME", "TYPE", "WORKSPACE", "CHANGED", "FAILED/CALLS", *(["TARGET"] if multi else [])]
        rows = []
        for s in result.services:
            row = [
                clean(s.status or "unknown", 12),
                clean(s.display_name, 48),
                clean(s.infer_type or "-", 10),
                clean(s.workspace_id or "-", 32),
                ago(s.transition_at) or "-",
                _calls(s),
            ]
            rows.append([*row, clean(s.target, 20)] if multi else row)
        table = _table(headers, rows)
        lines.append(table[0])
        for s, row_text in zip(result.services, table[1:], strict=True):
            lines.append(row_text)
            if s.error_msg and s.status in FAILED_STATUSES:
                lines.append(f"    ↳ {clean(s.error_msg, 160)}")
    if result.next_cursor:
        lines.append(f"More: add cursor:{result.next_cursor}")
    if result.complete:
        lines.extend(f"warning: {w}" for w in result.warnings)
    return "\n".join(lines)


def _incomplete(warnings: list[str], complete: bool) -> list[str]:
    """A partial answer says so right under its count, not after the rows."""
    return [] if complete else [f"INCOMPLETE: {clean(w, 300)}" for w in warnings]


def render_summary(summary: Summary) -> str:
    lines = [f"{summary.total} service(s) — {summary.description}", *_incomplete(summary.warnings, summary.complete)]
    if summary.total:
        lines += [
            "",
            "By status:  " + ", ".join(f"{clean(k, 30)} {v}" for k, v in summary.by_status.items()),
            "By type:    " + ", ".join(f"{clean(k, 30)} {v}" for k, v in summary.by_infer_type.items()),
            "By API:     " + ", ".join(f"{clean(k, 30)} {v}" for k, v in summary.by_generation.items()),
        ]
    if summary.unhealthy_total:
        lines += ["", f"Unhealthy ({summary.unhealthy_total}):"]
        for s in summary.unhealthy:
            cause = f" — {clean(s.error_msg, 120)}" if s.error_msg else ""
            lines.append(
                f"  {clean(s.status, 12):<11} {clean(s.display_name, 48)}  {ago(s.transition_at) or '-'}{cause}"
            )
        if summary.unhealthy_total > len(summary.unhealthy):
            lines.append(f"  … and {summary.unhealthy_total - len(summary.unhealthy)} more (ask `unhealthy`)")
    else:
        lines += ["", "Nothing is failed or concerning." if summary.complete else "Nothing failed or concerning seen."]
    if summary.complete:
        lines.extend(f"warning: {w}" for w in summary.warnings)
    return "\n".join(lines)


def _dash(value: object) -> str:
    return "-" if value is None else str(value)


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC ({ago(value)})" if value else "-"


def render_service(s: Service, timeline: Timeline | None = None) -> str:
    lines = [
        f"{clean(s.display_name, 100)}  [{clean(s.status or 'unknown', 20)}]",
        f"  id:              {clean(s.service_id)}",
    ]
    fields = [
        ("type", s.infer_type),
        ("workspace", s.workspace_id),
        ("target", s.target),
        ("API", s.generation),
        ("description", s.description),
        (
            "progress",
            f"{s.shown_progress}%" if s.shown_progress is not None else None,
        ),
        ("error", s.error_msg),
        ("access address", s.access_address),
        ("custom domain", s.bind_access_address),
        (
            "calls",
            f"{s.invocation_times or 0} total, {s.failed_times or 0} failed"
            if s.invocation_times is not None
            else None,
        ),
        ("shared/subscribed", "yes" if s.is_shared else None),
        ("pool", s.cluster_id or s.pool_name),
        ("published", _when(s.publish_at) if s.publish_at else None),
        ("status changed", _when(s.transition_at) if s.transition_at else None),
        ("config updated", _when(s.update_time) if s.update_time else None),
        ("auto-stop", _when(s.due_time) if s.due_time else None),
    ]
    if s.schedule and not s.due_time:
        fields.append(
            (
                "schedule",
                "; ".join(f"{x.type or '?'} after {x.duration} {(x.time_unit or '').lower()}" for x in s.schedule),
            )
        )
    lines += [f"  {label + ':':<17}{clean(value)}" for label, value in fields if value]
    for c in s.config or []:
        spec = c.specification or "-"
        if c.custom_spec:
            extra = ", ".join(f"{k} {v}" for k, v in c.custom_spec.model_dump(exclude_none=True).items())
            spec += f" ({extra})" if extra else ""
        lines.append(
            f"  model:           {clean(c.model_name or c.model_id)} {clean(c.model_version or '')}"
            f"  weight {_dash(c.weight)}  instances {_dash(c.instance_count)}"
            f"  {clean(spec, 60)}  [{clean(c.status or '-', 12)}]"
        )
        for n in c.nodes or []:
            lines.append(
                f"    node:          {clean(n.name or n.id)}  {clean(n.instance_status or '-')}/{clean(n.state or '-')}"
                + (f" — {clean(n.message, 100)}" if n.message else "")
            )
    for d in s.deployments or []:
        lines.append(
            f"  deployment:      {clean(d.name, 60)}  {_dash(d.running_count)}/{_dash(d.count)} running"
            f"  {clean(d.flavor or '-', 60)}  pool {clean(d.pool or '-', 40)}  [{clean(d.status or '-', 12)}]"
        )
    lines += [f"  {clean(label, 40) + ':':<17}{clean(value)}" for label, value in hidden_fields(s)]
    lines += [f"  note:            {clean(n)}" for n in s.notes]
    if timeline is not None:
        lines += _why(timeline)
    return "\n".join(lines)


def _event_line(e: Event) -> str:
    repeat = f" (x{e.count})" if e.count > 1 else ""
    mark = "!" if e.abnormal else " "
    return f"  {mark} {_when(e.at) if e.at else '-':<30} {clean(e.kind, 8):<8} {clean(e.text, 300)}{repeat}"


def _why(timeline: Timeline) -> list[str]:
    """What ``show`` adds for a failed or concerning service: the latest abnormal events and the last update."""
    lines = []
    if timeline.abnormal:
        lines.append("  latest abnormal events:")
        lines += [_event_line(e) for e in timeline.abnormal]
    if timeline.last_update is not None:
        u = timeline.last_update
        lines.append(f"  last update:     {_when(u.at) if u.at else '-'}  {clean(u.result, 20)}")
    lines += [f"  note:            {clean(n)}" for n in timeline.notes]
    return lines


def render_timeline(s: Service, timeline: Timeline) -> str:
    head = (
        f"{clean(s.display_name, 100)}  [{clean(s.status or 'unknown', 20)}]: {timeline.total} event(s) and update(s)"
    )
    if timeline.total > len(timeline.entries):
        head += f" (showing the newest {len(timeline.entries)})"
    lines = [head, *(_event_line(e) for e in timeline.entries)]
    if not timeline.entries and not timeline.notes:
        lines.append("  (none in this window)")
    lines += [f"  note: {clean(n)}" for n in timeline.notes]
    return "\n".join(lines)


def _pair(pair: tuple[float | None, float | None], unit: str = "") -> str:
    used, total = pair
    return (
        f"{_dash(used if used is None else round(used, 2))}/{_dash(total if total is None else round(total, 2))}{unit}"
    )


def render_load(s: Service, answer: LoadAnswer) -> str:
    lines = [f"{clean(s.display_name, 100)}  [{clean(s.status or 'unknown', 20)}]"]
    load = answer.load
    if load is not None:
        instances = f"{_dash(load.running)}/{_dash(load.wanted)} running" + ("  (instances down)" if load.short else "")
        lines.append(f"  instances:       {instances}")
        if load.requests_per_minute is not None:
            lines.append(f"  requests/min:    {load.requests_per_minute}")
        for m in load.models:
            parts = [f"{_dash(m.running)}/{_dash(m.wanted)} running"]
            parts += [f"{label} {_pair(pair, unit)}" for label, pair, unit in m.usage()]
            if m.calls is not None:
                parts.append(f"calls {m.failed_calls or 0} failed/{m.calls}")
            if m.status:
                parts.append(f"[{clean(m.status, 12)}]")
            lines.append(f"  {clean(m.name, 60)}:  " + "  ".join(parts))
    lines += [f"  note:            {clean(n)}" for n in answer.notes]
    return "\n".join(lines)
