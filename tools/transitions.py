"""The transitions tool: status changes the watcher observed, newest first, with a total and a cursor.

The cursor holds the window's start and the last row's position, so page two is the continuation of page one
even while new transitions arrive (they are newer, so they land before page one, never inside the listing).
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import BaseModel, Field
from services_bot.core.errors import QueryError, ServicesBotError
from services_bot.core.limits import MAX_DURATION_CHARS, MAX_SERVICE_REF_CHARS
from services_bot.core.notifications import MAX_HISTORY_SINCE, parse_duration
from services_bot.core.store.history import sort_key
from services_bot.core.store.records import from_ms, to_ms
from services_bot.tools.conventions import answer, at_most, register, tool_error
from services_bot.tools.http import caller_scope
from services_bot.tools.rendering import paging_line, table
from services_bot.tools.services import CursorArg, StatusName, TargetArg
from services_bot.tools.state import ToolState


class AckRow(BaseModel):
    """An acknowledgement of an alert in Slack: the Slack user id, the channel, and when (UTC)."""

    user: str
    channel: str
    at: datetime

    def __str__(self) -> str:  # a cell of the text table
        return f"{self.user} at {self.at:%Y-%m-%dT%H:%M:%SZ}"


class TransitionRow(BaseModel):
    """One observed status change."""

    service_id: str
    service_name: str | None = None
    kind: str = Field(description="changed, new (appeared), deleted, or flap (changed and came back between polls).")
    from_status: str | None = None
    to_status: str | None = None
    transition_at: datetime | None = Field(None, description="When ModelArts says it changed (UTC).")
    observed_at: datetime = Field(description="When the watcher saw it (UTC).")
    acknowledged_by: list[AckRow] = Field(default_factory=list, description="Who said they are on it, and when.")
    error_msg: str | None = None
    target: str | None = None


class TransitionList(BaseModel):
    total: int = Field(description="All transitions matching the filters since `since`, including other pages.")
    returned: int
    transitions: list[TransitionRow] = Field(description="Newest first.")
    since: datetime
    next_cursor: str | None = Field(None, description="Pass as `cursor` to get the next page; null when done.")


COLUMNS = (
    "service_name", "kind", "from_status", "to_status", "transition_at", "observed_at", "service_id", "target",
    "acknowledged_by", "error_msg",
)  # fmt: skip


def _fingerprint(service: str | None, to_status: list[str] | None, target: str | None) -> str:
    data = json.dumps([service, sorted(to_status or []), target])
    return hashlib.sha256(data.encode()).hexdigest()[:12]


def encode_cursor(start: datetime, last_ms: int, last_id: int, fingerprint: str) -> str:
    raw = json.dumps({"s": to_ms(start), "m": last_ms, "i": last_id, "f": fingerprint}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, fingerprint: str) -> tuple[datetime, tuple[int, int]]:
    try:
        data = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))
        start, position, owner = int(data["s"]), (int(data["m"]), int(data["i"])), str(data["f"])
    except (ValueError, KeyError, TypeError):
        raise QueryError(
            "The cursor is not one this tool issued.", hint="Drop the cursor to start from the newest transitions."
        ) from None
    if owner != fingerprint:
        raise QueryError(
            "The cursor belongs to other filters.",
            hint="Pass a cursor only with the service, to_status and target it came with, or drop it.",
        )
    return from_ms(start), position  # type: ignore[return-value]


def register_transition_tools(server: MCPServer, state: ToolState) -> None:
    @register(server, title="List status changes")
    async def list_transitions(
        since: Annotated[
            str,
            Field(
                description="How far back: 30m, 2h, 1d, 1w (at most 366 days). Default 24h. Ignored with a cursor.",
                json_schema_extra=at_most(MAX_DURATION_CHARS),
            ),
        ] = "24h",
        service: Annotated[
            str | None,
            Field(
                description=f"Only this service (id or exact name); at most {MAX_SERVICE_REF_CHARS} characters.",
                json_schema_extra=at_most(MAX_SERVICE_REF_CHARS),
            ),
        ] = None,
        to_status: Annotated[
            list[StatusName] | None, Field(description='Only changes to these statuses, e.g. ["failed"].')
        ] = None,
        target: TargetArg = None,
        limit: Annotated[int, Field(ge=1, le=200, description="Most transitions per page (1-200).")] = 50,
        cursor: CursorArg = None,
    ) -> Annotated[CallToolResult, TransitionList]:
        """Status changes the watcher observed, newest first: what failed, recovered, appeared or was deleted,
        and when.

        Use it for "what changed in the last hour?" or a service's recent history. `total` counts every match;
        pass `next_cursor` back as `cursor` for the next page. Needs the watcher of `services-bot serve`.
        Example: {"since": "2h", "to_status": ["failed"]}.
        """
        store = state.store
        if store is None:
            raise ToolError(
                "No transition history here: the watcher runs inside `services-bot serve`. Point "
                "SERVICES_BOT_DB at its store file, or use this tool on the MCP endpoint of `serve`."
            )
        fingerprint = _fingerprint(service, to_status, target)
        try:
            if cursor:
                start, before = decode_cursor(cursor, fingerprint)
            else:
                window = parse_duration(since, at_most=MAX_HISTORY_SINCE, hint="History goes back at most 366 days.")
                start, before = datetime.now(UTC) - window, None
            filters = {"since": start, "service": service, "to_statuses": to_status, "target": target}
            scope = caller_scope().targets
            found = await store.transitions(**filters, limit=limit + 1, before=before, targets=scope)
            total = await store.count_transitions(**filters, targets=scope)
            acks = await store.acknowledgements(t.id for t in found[:limit] if t.id is not None)
        except ServicesBotError as exc:  # a bad duration or cursor, or the store's problem and its fix
            raise tool_error(exc) from None
        page, more = found[:limit], len(found) > limit
        last = page[-1] if page else None
        next_cursor = (
            encode_cursor(start, *sort_key(last), fingerprint) if more and last else None
        )
        rows = [
            TransitionRow(
                **t.model_dump(include=set(TransitionRow.model_fields) - {"acknowledged_by"}),
                acknowledged_by=[AckRow(user=a.user, channel=a.channel, at=a.at) for a in acks.get(t.id or -1, [])],
            )
            for t in page
        ]
        result = TransitionList(total=total, returned=len(rows), transitions=rows, since=start, next_cursor=next_cursor)
        lines = [
            f"Transitions since {start:%Y-%m-%dT%H:%M:%SZ}, newest first.",
            paging_line(total, len(rows), next_cursor, "transitions"),
            *table(rows, COLUMNS),
        ]
        return answer(result, "\n".join(lines), always=("next_cursor",))
