"""After a crash: was this row already posted? Its channel is read back to the row's first attempt, and every
message is matched by its metadata (alerts, grouped alerts and notices each carry their own), so a row is
posted again only once the whole window was read and it is not there.

Reading history is rate limited apart from posting. ``conversations.history`` and ``conversations.replies``
are **Tier 3 (50+ requests a minute)** for internal apps (this bot, installed from ``manifest.yaml``) and
Marketplace apps. Since 2025-05-29 a *commercially distributed, non-Marketplace* app gets 1 request a minute
and at most 15 messages a page for them (existing installations of such apps since 2026-03-03); such an
install sets ``SERVICES_BOT_SLACK_HISTORY_PER_MINUTE=1`` and ``SERVICES_BOT_SLACK_HISTORY_PAGE_SIZE=15``.
``HistoryPacer`` spaces the calls evenly within that budget, and a 429's ``Retry-After`` holds it further.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from services_bot.bot.alerts import BATCH_EVENT_TYPE, EVENT_TYPE, NOTICE_EVENT_TYPE, metadata, notice_metadata
from services_bot.bot.slack_errors import NETWORK_ERRORS, SlackFailure, failure_of
from services_bot.core.notifications import Delivery
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

TIER3_PER_MINUTE = 50
"""Slack's Tier 3, which conversations.history and .replies have for internal and Marketplace apps."""
HISTORY_PAGE_SIZE = 200
"""Slack recommends at most 200 messages a page; it allows up to 999 (15 for non-Marketplace apps)."""
CLOCK_SKEW = timedelta(minutes=5)
"""Slack's clock and ours may differ: the history is read from this long before the first attempt."""

Message = dict[str, Any]


class HistoryUnreadable(Exception):
    """The channel could not be read to the end of the window; ``failure`` says whether trying later can help."""

    def __init__(self, failure: SlackFailure) -> None:
        super().__init__(failure.describe())
        self.failure = failure


class HistoryPacer:
    """At most ``per_minute`` calls a minute, evenly spaced (a burst of history pages never trips the tier);
    ``hold`` pushes the next call back, for a 429's ``Retry-After``."""

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 60.0 / per_minute
        self.clock = clock
        self.next_at = 0.0

    async def wait(self) -> None:
        """Take the next free slot (before sleeping, so concurrent callers get different slots)."""
        now = self.clock()
        slot = max(self.next_at, now)
        self.next_at = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)

    def hold(self, seconds: float) -> None:
        self.next_at = max(self.next_at, self.clock() + seconds)


class PostedFinder:
    """Looks rows up in their channel: the channel history back to the oldest row's first attempt, then the
    thread each remaining row would have been posted in (replies that were not broadcast are only there)."""

    def __init__(self, client: AsyncWebClient, pacer: HistoryPacer, *, page_size: int = HISTORY_PAGE_SIZE) -> None:
        self.client = client
        self.pacer = pacer
        self.page_size = page_size

    async def find(self, channel: str, rows: list[Delivery], threads: dict[int, str]) -> dict[int, Message]:
        """``{row id: the message that carries it}`` for the rows already in ``channel``; ``threads`` maps a
        row id to the root ts of the thread it would have gone to. Raises ``HistoryUnreadable``."""
        found: dict[int, Message] = {}
        oldest = min(_tried_from(d) for d in rows) - CLOCK_SKEW
        await self._search(found, rows, "conversations_history", channel=channel, oldest=f"{oldest.timestamp():.6f}")
        for root in sorted({threads[d.id] for d in rows if d.id in threads and d.id not in found}):
            await self._search(found, rows, "conversations_replies", channel=channel, ts=root)
        return found

    async def _search(self, found: dict[int, Message], rows: list[Delivery], method: str, **args: Any) -> None:
        """Page through one listing until it ends or every row is found."""
        cursor: str | None = None
        while len(found) < len(rows):
            page = await self._page(method, cursor=cursor, **args)
            for message in page.get("messages") or []:
                for d in rows:
                    if d.id not in found and is_posted_as(message.get("metadata") or {}, d):
                        found[d.id] = message
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor or not page.get("has_more", True):
                return

    async def _page(self, method: str, **args: Any) -> dict[str, Any]:
        await self.pacer.wait()
        call = getattr(self.client, method)
        try:
            response = await call(include_all_metadata=True, limit=self.page_size, **args)
        except (SlackApiError, *NETWORK_ERRORS) as exc:
            failure = failure_of(exc)
            if failure.retry_after is not None:
                self.pacer.hold(failure.retry_after)
            raise HistoryUnreadable(failure) from None
        return dict(response.data) if isinstance(response.data, dict) else {}


def _tried_from(d: Delivery) -> datetime:
    """Nothing of a row can be in Slack before its first attempt (older rows: before it was queued)."""
    return d.first_attempt_at or d.created_at


def is_posted_as(meta: dict[str, Any], delivery: Delivery) -> bool:
    """Whether a message's metadata is the one this row posts: its alert, its poll's grouped alert, its notice."""
    payload = meta.get("event_payload") or {}
    kind = meta.get("event_type")
    if delivery.notice is not None:
        ours = notice_metadata(delivery.notice)["event_payload"]
        return kind == NOTICE_EVENT_TYPE and all(payload.get(k) == v for k, v in ours.items())
    t = delivery.transition
    if t is None:
        return False
    if kind == BATCH_EVENT_TYPE:
        return bool(t.poll_id) and payload.get("poll_id") == t.poll_id
    if kind != EVENT_TYPE:
        return False
    ours = metadata(t)["event_payload"]
    return all(payload.get(k) == ours[k] for k in ("service_id", "from_status", "to_status", "transition_at"))
