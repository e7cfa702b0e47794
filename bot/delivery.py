"""Delivery of the outbox to Slack: nothing lost, nothing doubled, no floods.

The watcher commits transitions and their outbox rows in one transaction; this worker posts them. A row is
marked ``in_flight`` before the post and ``done`` only after Slack's ok, so a crash leaves it ``in_flight``;
on start such rows are looked up in the channel by their message metadata and only posted if not found.
429 answers are honoured (``Retry-After``), other transient failures retried with backoff, and errors that
will not heal (``channel_not_found``, ``not_in_channel``, ``invalid_auth``…) fail the row, are reported once to
the operator log and hold up no other channel.

Shape of what is posted: one message per transition; more than ``group_threshold`` transitions for a
channel from one poll become one grouped message, and so do a channel's transitions from a poll with a
confirmed mass deletion (``Transition.grouped``), whatever the threshold; later transitions of a service
within a day go into the thread of its first alert, and a recovery to ``running`` also marks that first
alert resolved.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.alerts import BATCH_EVENT_TYPE, EVENT_TYPE, alert_message, grouped_message, metadata, notice_message
from bot.alerts import batch_metadata as batch_meta
from core.metrics import DELIVERIES, SLACK_ERRORS
from core.notifications import Delivery, Transition
from core.store import Store

log = logging.getLogger(__name__)

PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "missing_scope",
        "restricted_action",
        "invalid_blocks",
        "invalid_metadata_format",
        "invalid_metadata_schema",
        "msg_too_long",
        "no_text",
    }
)
THREAD_WINDOW = timedelta(hours=24)
RECONCILE_LOOKBACK = timedelta(minutes=10)


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after


class AlertDelivery:
    """Posts due outbox rows; ``wake()`` (a watcher listener) makes it look at once instead of at the next tick."""

    def __init__(
        self,
        store: Store,
        client: AsyncWebClient,
        *,
        group_threshold: int = 5,
        max_attempts: int = 10,
        tick_seconds: float = 1.0,
        backoff_seconds: float = 2.0,
        backoff_max_seconds: float = 300.0,
    ) -> None:
        self.store = store
        self.client = client
        self.group_threshold = group_threshold
        self.max_attempts = max_attempts
        self.tick_seconds = tick_seconds
        self.backoff_seconds = backoff_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.reported: set[tuple[str, str]] = set()
        self.paused_until = 0.0
        self._wake = asyncio.Event()

    async def wake(self, _transitions: list[Transition] | None = None) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Reconcile what a previous run left in flight, then deliver until cancelled."""
        try:
            await self.reconcile()
        except Exception:
            log.exception("reconciling in-flight deliveries failed; they stay in flight until the next start")
        loop = asyncio.get_running_loop()
        while True:
            wait = self.tick_seconds
            try:
                if loop.time() >= self.paused_until:
                    await self.deliver_due()
                else:
                    wait = min(wait, self.paused_until - loop.time())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivery pass failed")
            try:
                async with asyncio.timeout(max(0.01, wait)):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    # -- one pass ----------------------------------------------------------------------------------

    async def deliver_due(self) -> int:
        """Post every due row (grouping bursts); returns how many rows were settled."""
        due = await self.store.due_deliveries(datetime.now(UTC), limit=500)
        settled = 0
        for group in _groups(due):
            try:
                settled += await self._deliver_group(group)
            except RateLimited as exc:
                self.paused_until = asyncio.get_running_loop().time() + exc.retry_after
                log.warning("slack rate limited deliveries retry_after=%.0fs", exc.retry_after)
                break
        return settled

    async def _deliver_group(self, group: list[Delivery]) -> int:
        transitions = [d for d in group if d.transition is not None]
        if len(transitions) > self.group_threshold or _mass_deletion(transitions):
            poll_id = transitions[0].poll_id or ""
            text, blocks = grouped_message(poll_id, [d.transition for d in transitions if d.transition])
            meta = batch_meta(poll_id, [d.transition for d in transitions if d.transition])
            await self._post(transitions, text=text, blocks=blocks, metadata=meta)
            others = [d for d in group if d.transition is None]
        else:
            others = group
        for delivery in others:
            await self._deliver_one(delivery)
        return len(group)

    async def _deliver_one(self, delivery: Delivery) -> None:
        if delivery.notice is not None:
            text, blocks = notice_message(delivery.notice)
            await self._post([delivery], text=text, blocks=blocks)
            return
        t = delivery.transition
        assert t is not None
        thread = await self.store.alert_thread(
            delivery.channel, t.target, t.service_id, datetime.now(UTC) - THREAD_WINDOW
        )
        text, blocks = alert_message(t)
        if thread is None:
            ts = await self._post([delivery], text=text, blocks=blocks, metadata=metadata(t))
            if ts and t.kind != "deleted":
                await self.store.open_alert_thread(delivery.channel, t.target, t.service_id, ts, t.id, delivery.id)
            return
        reopened = thread.resolved and t.to_status != "running"
        ts = await self._post(
            [delivery],
            text=text,
            blocks=blocks,
            metadata=metadata(t),
            thread_ts=thread.root_ts,
            reply_broadcast=reopened,
        )
        if ts and t.to_status == "running" and not thread.resolved:
            await self._mark_resolved(delivery.channel, thread.root_ts, thread.transition_id, t)

    async def _mark_resolved(self, channel: str, root_ts: str, root_id: int | None, recovery: Transition) -> None:
        """Show the first alert as resolved; a failed update is logged, the recovery reply is already posted."""
        root = await self.store.transition(root_id) if root_id else None
        if root is None:
            return
        text, blocks = alert_message(root, resolved_by=recovery)
        try:
            await self.client.chat_update(channel=channel, ts=root_ts, text=text, blocks=blocks)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("could not mark the first alert resolved channel=%s error=%s", channel, _error_of(exc))
            return
        await self.store.resolve_alert_thread(channel, recovery.target, recovery.service_id, root_ts)

    async def _post(self, rows: list[Delivery], **message: Any) -> str | None:
        """Post one message for ``rows`` and settle them; returns the message ts when posted."""
        ids = [d.id for d in rows]
        channel = rows[0].channel
        await self.store.mark_in_flight(ids)
        try:
            response = await self.client.chat_postMessage(channel=channel, unfurl_links=False, **message)
        except SlackApiError as exc:
            await self._failed(rows, exc)
            return None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            await self._retry(rows, f"network: {type(exc).__name__}")
            return None
        ts = str(response.get("ts") or "")
        await self.store.mark_done(ids, ts, message.get("thread_ts"))
        DELIVERIES.labels("ok").inc()
        return ts

    async def _failed(self, rows: list[Delivery], exc: SlackApiError) -> None:
        error = _error_of(exc)
        channel = rows[0].channel
        SLACK_ERRORS.labels(error if error in PERMANENT_ERRORS or error == "ratelimited" else "other").inc()
        if exc.response is not None and exc.response.status_code == 429:
            retry_after = float(exc.response.headers.get("Retry-After", "1") or 1)
            await self.store.mark_retry(
                [d.id for d in rows], datetime.now(UTC) + timedelta(seconds=retry_after), "ratelimited"
            )
            raise RateLimited(retry_after)
        if error in PERMANENT_ERRORS:
            DELIVERIES.labels("failed").inc()
            await self.store.mark_failed([d.id for d in rows], error)
            if (channel, error) not in self.reported:
                self.reported.add((channel, error))
                log.error(
                    "slack refuses alerts for channel=%s error=%s: %s",
                    channel,
                    error,
                    "invite the bot to the channel" if error == "not_in_channel" else "fix it; later alerts fail too",
                )
            return
        await self._retry(rows, error)

    async def _retry(self, rows: list[Delivery], error: str) -> None:
        attempts = max(d.attempts for d in rows) + 1
        ids = [d.id for d in rows]
        if attempts >= self.max_attempts:
            DELIVERIES.labels("failed").inc()
            await self.store.mark_failed(ids, f"gave up after {attempts} attempts: {error}")
            log.error("gave up delivering channel=%s after=%d error=%s", rows[0].channel, attempts, error)
            return
        DELIVERIES.labels("retry").inc()
        delay = min(self.backoff_max_seconds, self.backoff_seconds * 2 ** (attempts - 1)) * random.uniform(0.8, 1.2)
        await self.store.mark_retry(ids, datetime.now(UTC) + timedelta(seconds=delay), error)

    # -- after a crash -----------------------------------------------------------------------------

    async def reconcile(self) -> int:
        """Rows left in flight were maybe posted: find them by metadata, else queue them again."""
        stuck = await self.store.in_flight_deliveries()
        found = 0
        for delivery in stuck:
            ts = await self._find_posted(delivery)
            if ts:
                await self.store.mark_done([delivery.id], ts)
                found += 1
            else:
                await self.store.mark_retry([delivery.id], datetime.now(UTC), "requeued after restart")
        if stuck:
            log.info("reconciled in-flight deliveries total=%d already_posted=%d", len(stuck), found)
        return found

    async def _find_posted(self, delivery: Delivery) -> str | None:
        oldest = (delivery.created_at - RECONCILE_LOOKBACK).timestamp()
        try:
            history = await self.client.conversations_history(
                channel=delivery.channel, oldest=f"{oldest:.6f}", include_all_metadata=True, limit=200
            )
            messages = list(history.get("messages") or [])
            t = delivery.transition
            if t is not None:
                since = delivery.created_at - THREAD_WINDOW
                thread = await self.store.alert_thread(delivery.channel, t.target, t.service_id, since)
                if thread is not None:
                    replies = await self.client.conversations_replies(
                        channel=delivery.channel, ts=thread.root_ts, include_all_metadata=True, limit=200
                    )
                    messages += list(replies.get("messages") or [])
        except (SlackApiError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("cannot read channel history channel=%s error=%s", delivery.channel, _error_of(exc))
            return None
        for message in messages:
            if _is_this(message.get("metadata") or {}, delivery):
                return str(message.get("ts"))
        return None


def _is_this(meta: dict[str, Any], delivery: Delivery) -> bool:
    payload = meta.get("event_payload") or {}
    t = delivery.transition
    if t is None:
        return False
    if meta.get("event_type") == BATCH_EVENT_TYPE:
        return bool(t.poll_id) and payload.get("poll_id") == t.poll_id
    if meta.get("event_type") != EVENT_TYPE:
        return False
    ours = metadata(t)["event_payload"]
    return all(payload.get(k) == ours[k] for k in ("service_id", "from_status", "to_status", "transition_at"))


def _mass_deletion(rows: list[Delivery]) -> bool:
    """Rows of a confirmed mass deletion go out as one message (a single row stays an ordinary alert)."""
    return len(rows) > 1 and any(d.transition is not None and d.transition.grouped for d in rows)


def _groups(due: list[Delivery]) -> list[list[Delivery]]:
    """Rows by (channel, poll), in the order of their first row."""
    groups: dict[tuple[str, str | None], list[Delivery]] = {}
    for d in due:
        groups.setdefault((d.channel, d.poll_id if d.transition else f"notice-{d.id}"), []).append(d)
    return list(groups.values())


def _error_of(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError) and exc.response is not None:
        return str(exc.response.get("error") or f"HTTP {exc.response.status_code}")
    return type(exc).__name__
