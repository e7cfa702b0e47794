"""Delivery of the outbox to Slack: nothing lost, nothing doubled, in order, no floods.

The watcher commits transitions and their outbox rows in one transaction; this worker posts them. A row is
marked ``in_flight`` before the post and ``done`` only after Slack's ok (with the alert thread it opens, in the
same transaction), so a crash leaves it ``in_flight``. On start such rows go back to pending, marked to be
looked up first: their channel is read back to their first attempt (``bot.reconcile``), and a row is posted
again only if the whole window was read and its metadata is not there. A failed read is retried, never
answered by posting.

Retry policy (``bot.slack_errors`` sorts the failures): a transient failure (no answer, HTTP 408/429/5xx,
``fatal_error``…) is retried for as long as it lasts. The whole worker waits: Retry-After for a 429, else a
backoff that doubles with each transient failure in a row, from ``backoff_seconds`` up to
``backoff_max_seconds``, with ±20 % jitter; one success resets it. So a Slack outage costs one probe per backoff
period, and when Slack is back the backlog goes out oldest first. A failure that may have posted all the same
(no answer, HTTP 500, ``fatal_error``…) marks the row to be looked up in its channel before its next try, as
after a crash; after a timeout, no sooner than one more timeout (Slack may still be carrying it out).

A message delivered ``late_note_seconds`` or more after its transition was seen says so at its top ("Delayed
16 min: Slack was unavailable"). Only a refusal that cannot heal ends a delivery (``failed``): it is counted
(``services_bot_deliveries_total{outcome="failed"}``, ``services_bot_slack_errors_total{error}``), shown in
``/healthz`` (``bot.delivery_health``), logged once, and told where a channel can hear it: the alert channel for
a channel that refuses alerts, the channel itself for a message it refused. A refused token ends nothing: it
can be told nowhere in Slack, so ``/healthz`` turns 503, and the alerts are held (``outcome="held"``), tried
again once per ``backoff_max_seconds``, and go out late, with their note, once someone fixes the token.

Order: a service's rows in a channel go out strictly one after the other (the store does not hand out a row
while an earlier one of that service is undelivered), so a recovery never overtakes the failure it resolves.

Shape of what is posted: one message per transition; more than ``group_threshold`` transitions for a
channel from one poll become one grouped message, and so do a channel's transitions from a poll with a
confirmed mass deletion (``Transition.grouped``), whatever the threshold; a poll's rows wait until all of them
are due, so a poll is never split between a grouped message and single alerts. Later transitions of a service
within a day go into the thread of its first alert, and the first alert is then updated to show the thread's
state (resolved, relapsed, where it stands) and who acknowledged it (``bot.alert_updates``). A mute that ends
is announced in the service's thread.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from services_bot.bot.alert_updates import refresh_alert
from services_bot.bot.alerts import (
    EVENT_TYPE,
    alert_message,
    change_words,
    grouped_message,
    late_note,
    metadata,
    notice_message,
    notice_metadata,
)
from services_bot.bot.alerts import batch_metadata as batch_meta
from services_bot.bot.delivery_health import DeliveryHealth, DeliveryReport
from services_bot.bot.reconcile import (
    HISTORY_PAGE_SIZE,
    TIER3_PER_MINUTE,
    HistoryPacer,
    HistoryUnreadable,
    PostedFinder,
)
from services_bot.bot.slack_errors import NETWORK_ERRORS, TOKEN_ERRORS, SlackFailure, failure_of
from services_bot.core.metrics import DELIVERIES, OLDEST_UNDELIVERED, SLACK_ERRORS, UNDELIVERED
from services_bot.core.notifications import AlertThread, Delivery, Notice, Transition
from services_bot.core.service_fields import ConsoleLink
from services_bot.core.store import Store
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

THREAD_WINDOW = timedelta(hours=24)
DUE_LIMIT = 500
REQUEUED = "requeued after restart"


class SlackUnavailable(Exception):
    """Slack cannot take posts for now: the pass stops and the whole worker waits ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"retry in {delay:.1f} s")
        self.delay = delay


class AlertDelivery:
    """Posts due outbox rows; ``wake()`` (a watcher listener) makes it look at once instead of at the next tick."""

    def __init__(
        self,
        store: Store,
        client: AsyncWebClient,
        *,
        group_threshold: int = 5,
        tick_seconds: float = 1.0,
        backoff_seconds: float = 2.0,
        backoff_max_seconds: float = 60.0,
        stale_seconds: float = 120.0,
        late_note_seconds: float = 60.0,
        alert_channel: str | None = None,
        history_per_minute: float = TIER3_PER_MINUTE,
        history_page_size: int = HISTORY_PAGE_SIZE,
        console_link: ConsoleLink | None = None,
    ) -> None:
        self.store = store
        self.console_link = console_link  # each alert's Open in console link, from its target's region
        self.client = client
        self.group_threshold = group_threshold
        self.tick_seconds = tick_seconds
        self.backoff_seconds = backoff_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.stale_seconds = stale_seconds
        self.late_note_seconds = late_note_seconds
        self.alert_channel = alert_channel
        self.finder = PostedFinder(client, HistoryPacer(history_per_minute), page_size=history_page_size)
        self.seen = DeliveryHealth()
        self.paused_until = 0.0
        self._soonest = 0.0
        self._told: set[tuple[str, str]] = set()
        self._history_streak: dict[str, int] = {}
        self._look_ups: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()

    async def wake(self, _transitions: list[Transition] | None = None) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Queue what a previous run left in flight for a look-up, then deliver until cancelled."""
        try:
            await self.reconcile()
        except Exception:
            log.exception("requeueing in-flight deliveries failed; they stay in flight until the next start")
        try:
            while True:
                settled = 0
                try:
                    if asyncio.get_running_loop().time() >= self.paused_until:
                        settled = await self.deliver_due()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("delivery pass failed")
                await self._idle(0.0 if settled else self._wait_seconds())
        finally:
            for task in self._look_ups.values():
                task.cancel()
            await asyncio.gather(*self._look_ups.values(), return_exceptions=True)

    async def _idle(self, seconds: float) -> None:
        """Wait for a wake-up or ``seconds``; after a pass that settled rows, look again at once (a service's
        next row became due when its earlier one settled)."""
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            pass
        self._wake.clear()

    def _wait_seconds(self) -> float:
        now = asyncio.get_running_loop().time()
        future = [moment - now for moment in (self.paused_until, self._soonest) if moment > now]
        return max(0.01, min([self.tick_seconds, *future]))

    async def reconcile(self) -> int:
        """Rows left in flight by a crash were maybe posted: they are looked up in their channel before any
        is posted again (``_checked``), while other rows go out."""
        count = await self.store.requeue_in_flight(REQUEUED)
        if count:
            log.info("in-flight deliveries will be looked up in their channels before posting count=%d", count)
        return count

    # -- one pass ----------------------------------------------------------------------------------

    async def deliver_due(self) -> int:
        """Settle every due row (grouping bursts); returns how many rows were settled. Mutes whose time is up
        are ended first, each becoming a notice in its service's thread."""
        await self.store.end_expired_mutes()
        due = await self.store.due_deliveries(datetime.now(UTC), limit=DUE_LIMIT)
        cut = len(due) >= DUE_LIMIT
        settled = 0
        try:
            for group in _groups(self._checked(due)):
                if await self._complete(group, cut):
                    settled += await self._deliver_group(group)
        except SlackUnavailable as exc:
            self.paused_until = asyncio.get_running_loop().time() + exc.delay
        await self._backlog()
        return settled

    async def _complete(self, group: list[Delivery], cut: bool) -> bool:
        """A poll's rows go out together: wait while some are not due (behind an earlier row of their service,
        or not yet retried), unless the pass was cut at ``DUE_LIMIT`` (a huge poll then goes in parts)."""
        transitions = [d for d in group if d.transition is not None]
        if cut or not transitions or not transitions[0].poll_id:
            return True
        return await self.store.undelivered_of_poll(group[0].channel, transitions[0].poll_id) == len(transitions)

    async def _deliver_group(self, group: list[Delivery]) -> int:
        transitions = [d for d in group if d.transition is not None]
        settled = 0
        if len(transitions) > self.group_threshold or _mass_deletion(transitions):
            poll_id = transitions[0].poll_id or ""
            text, blocks = grouped_message(
                poll_id, [d.transition for d in transitions if d.transition], channel=group[0].channel
            )
            meta = batch_meta(poll_id, [d.transition for d in transitions if d.transition])
            await self._post(transitions, text=text, blocks=blocks, metadata=meta)
            settled += len(transitions)
            others = [d for d in group if d.transition is None]
        else:
            others = group
        for delivery in others:
            await self._deliver_one(delivery)
            settled += 1
        return settled

    async def _deliver_one(self, delivery: Delivery) -> None:
        if delivery.notice is not None:
            notice = delivery.notice
            text, blocks = notice_message(notice)
            where = await self._notice_thread(delivery.channel, notice)
            await self._post([delivery], text=text, blocks=blocks, metadata=notice_metadata(notice), **where)
            return
        t = delivery.transition
        assert t is not None
        thread = await self._thread_of(delivery)
        link = self.console_link(t.target, t.service_id) if self.console_link else None
        text, blocks = alert_message(t, channel=delivery.channel, console_url=link)
        if thread is None:
            opens = t if t.kind != "deleted" else None
            await self._post([delivery], text=text, blocks=blocks, metadata=metadata(t), opens=opens)
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
        if ts and thread.transition_id is not None:
            await refresh_alert(self.store, self.client, delivery.channel, thread.transition_id, self.console_link)

    async def _notice_thread(self, channel: str, notice: Notice) -> dict[str, Any]:
        """A notice about one service (its mute ended) goes into that service's alert thread, if it has one."""
        if notice.service_id is None:
            return {}
        thread = await self.store.alert_thread(
            channel, notice.target, notice.service_id, datetime.now(UTC) - THREAD_WINDOW
        )
        return {"thread_ts": thread.root_ts} if thread is not None else {}

    async def _thread_of(self, delivery: Delivery) -> AlertThread | None:
        t = delivery.transition
        if t is None:
            return None
        return await self.store.alert_thread(
            delivery.channel, t.target, t.service_id, datetime.now(UTC) - THREAD_WINDOW
        )

    # -- posting and its outcomes ------------------------------------------------------------------

    async def _post(self, rows: list[Delivery], *, opens: Transition | None = None, **message: Any) -> str | None:
        """Post one message for ``rows`` and settle them; returns the message ts when posted. ``opens``: the
        transition whose alert thread this message starts. Raises ``SlackUnavailable`` on a transient failure."""
        ids = [d.id for d in rows]
        channel = rows[0].channel
        message = self._with_late_note(rows, message)
        await self.store.mark_in_flight(ids)
        try:
            response = await self.client.chat_postMessage(channel=channel, unfurl_links=False, **message)
        except (SlackApiError, *NETWORK_ERRORS) as exc:
            await self._not_posted(rows, failure_of(exc))
            return None
        ts = str(response.get("ts") or "")
        thread = _opened(rows[0], opens, ts) if opens is not None and ts else None
        await self.store.mark_done(ids, ts, message.get("thread_ts"), thread)
        DELIVERIES.labels("ok").inc()
        self.seen.succeeded(channel)
        self._told = {told for told in self._told if told[0] != channel}
        return ts

    async def _not_posted(self, rows: list[Delivery], failure: SlackFailure) -> None:
        channel = rows[0].channel
        SLACK_ERRORS.labels(failure.metric_label).inc()
        self.seen.failed(channel, failure)
        if failure.heals:
            DELIVERIES.labels("retry").inc()
            delay = failure.retry_after if failure.retry_after is not None else self._backoff(self.seen.streak)
            if failure.maybe_posted and failure.status is None:  # Slack may still be carrying it out
                delay = max(delay, float(getattr(self.client, "timeout", 30)))
            await self._retry_in([d.id for d in rows], delay, failure.describe(), look_up=failure.maybe_posted)
            log.warning("slack cannot take alerts now channel=%s error=%s retry_in=%.1fs", channel, failure, delay)
            raise SlackUnavailable(delay)
        if failure.scope == "token":
            # No post can succeed, yet nothing is wrong with the alerts: keep them until the token works again
            # (a restart with a new one, or scopes added to the app), probing once per longest backoff.
            DELIVERIES.labels("held").inc()
            delay = self.backoff_max_seconds
            await self._retry_in([d.id for d in rows], delay, failure.describe())
            log.error("slack refuses the bot's token error=%s alerts_held retry_in=%.0fs", failure, delay)
            raise SlackUnavailable(delay)
        DELIVERIES.labels("failed").inc()
        await self.store.mark_failed([d.id for d in rows], failure.describe())
        await self._report_refusal(rows, failure)

    def _backoff(self, streak: int) -> float:
        raw = self.backoff_seconds * 2 ** max(0, streak - 1)
        return min(self.backoff_max_seconds, min(self.backoff_max_seconds, raw) * random.uniform(0.8, 1.2))

    async def _retry_in(self, ids: list[int], delay: float, error: str, *, look_up: bool = False) -> None:
        await self.store.mark_retry(ids, datetime.now(UTC) + timedelta(seconds=delay), error, check_posted=look_up)
        soonest = asyncio.get_running_loop().time() + delay
        now = asyncio.get_running_loop().time()
        self._soonest = soonest if self._soonest <= now else min(self._soonest, soonest)

    def _with_late_note(self, rows: list[Delivery], message: dict[str, Any]) -> dict[str, Any]:
        """A message going out ``late_note_seconds`` after its rows were queued says how late, and why."""
        delay = (datetime.now(UTC) - min(d.created_at for d in rows)).total_seconds()
        if delay < self.late_note_seconds:
            return message
        reason = _late_reason([d.error for d in rows], self.seen.last_transient())
        return {**message, "blocks": [late_note(delay, reason), *(message.get("blocks") or [])]}

    async def _report_refusal(self, rows: list[Delivery], failure: SlackFailure) -> None:
        """Once per channel and error until that channel takes a post again: the log, and a notice where a
        channel can hear it (never a notice about a notice)."""
        channel = rows[0].channel
        if (channel, failure.error) in self._told:
            return
        self._told.add((channel, failure.error))
        log.error(
            "slack refuses alerts channel=%s error=%s scope=%s: %s", channel, failure, failure.scope, failure.hint
        )
        if any(d.notice is not None for d in rows):
            return
        where, notice = self._refusal_notice(rows, failure)
        if where is not None and notice is not None:
            await self.store.add_notice(where, notice)
            self._wake.set()

    def _refusal_notice(self, rows: list[Delivery], failure: SlackFailure) -> tuple[str | None, Notice | None]:
        channel = rows[0].channel
        if failure.scope == "channel" and self.alert_channel and self.alert_channel != channel:
            text = f"alerts cannot be posted there: Slack answers `{failure.error}`. {failure.hint}"
            return self.alert_channel, Notice(kind="delivery", target="", text=text, channel=channel)
        if failure.scope == "message":
            about = "; ".join(f"{t.display_name} {change_words(t).replace('*', '')}" for t in _transitions(rows))
            text = f"An alert could not be posted here (Slack answers `{failure.error}`): {about}."
            return channel, Notice(kind="delivery", target="", text=text[:1500])
        return None, None

    # -- after a crash -----------------------------------------------------------------------------

    def _checked(self, due: list[Delivery]) -> list[Delivery]:
        """The due rows that may be posted now. Rows a crash left unconfirmed are looked up first, one task per
        channel beside the passes (history is paced by Slack's rate tier; other rows need not wait for it)."""
        checking = [d for d in due if d.check_posted]
        for channel, rows in _by_channel(checking).items():
            task = self._look_ups.get(channel)
            if task is None or task.done():
                self._look_ups[channel] = asyncio.create_task(self._look_up(channel, rows), name=f"look-up {channel}")
        return [d for d in due if not d.check_posted]

    async def _look_up(self, channel: str, rows: list[Delivery]) -> None:
        """Find ``rows`` in ``channel``: settle the ones found, free the rest to be posted; a read that fails
        for now is retried later with backoff, never answered by posting."""
        try:
            threads = {d.id: thread.root_ts for d in rows if (thread := await self._thread_of(d)) is not None}
            try:
                found = await self.finder.find(channel, rows, threads)
            except HistoryUnreadable as exc:
                if exc.failure.heals:
                    await self._read_again_later(channel, rows, exc.failure)
                    return
                log.warning(
                    "cannot read channel history to look for alerts already posted channel=%s error=%s; posting "
                    "them again (one may show twice)",
                    channel,
                    exc.failure,
                )
                found = {}
            self._history_streak.pop(channel, None)
            for d in rows:
                if d.id in found:
                    await self._settle_found(d, found[d.id])
            await self.store.mark_checked([d.id for d in rows if d.id not in found])
            log.info("looked up in-flight rows channel=%s total=%d already_posted=%d", channel, len(rows), len(found))
        except Exception:
            log.exception("looking up in-flight deliveries failed channel=%s; trying again later", channel)
            await self._retry_in([d.id for d in rows], self.backoff_max_seconds, "looking up in the channel failed")
        finally:
            self._wake.set()

    async def _read_again_later(self, channel: str, rows: list[Delivery], failure: SlackFailure) -> None:
        streak = self._history_streak[channel] = self._history_streak.get(channel, 0) + 1
        delay = failure.retry_after if failure.retry_after is not None else self._backoff(streak)
        await self._retry_in([d.id for d in rows], delay, f"reading the channel history: {failure}")
        log.warning("channel history unreadable channel=%s error=%s read_again_in=%.1fs", channel, failure, delay)

    async def _settle_found(self, delivery: Delivery, message: dict[str, Any]) -> None:
        """A row found in the channel is done, with the bookkeeping its post would have done: the thread its
        alert opened, or the resolved mark its recovery owes the first alert."""
        ts = str(message.get("ts") or "")
        root = message.get("thread_ts")
        reply = bool(root) and root != ts
        t = delivery.transition
        thread = await self._thread_of(delivery)
        opens = None
        own_alert = (message.get("metadata") or {}).get("event_type") == EVENT_TYPE
        if t is not None and own_alert and not reply and t.kind != "deleted" and thread is None:
            opens = _opened(delivery, t, ts)
        await self.store.mark_done([delivery.id], ts, root if reply else None, opens)
        if reply and t is not None and thread is not None and thread.transition_id is not None:
            await refresh_alert(self.store, self.client, delivery.channel, thread.transition_id, self.console_link)

    # -- health --------------------------------------------------------------------------------------

    async def health(self) -> DeliveryReport:
        """The ``delivery`` section of ``/healthz``, its problems (503) and warnings (degraded)."""
        undelivered, oldest = await self._backlog()
        failed = await self.store.failed_since(datetime.now(UTC) - timedelta(days=1))
        return self.seen.report(undelivered, oldest, failed, stale_seconds=self.stale_seconds)

    async def _backlog(self) -> tuple[int, datetime | None]:
        undelivered, oldest = await self.store.undelivered()
        UNDELIVERED.set(undelivered)
        OLDEST_UNDELIVERED.set((datetime.now(UTC) - oldest).total_seconds() if oldest else 0)
        return undelivered, oldest


def _opened(delivery: Delivery, t: Transition, ts: str) -> AlertThread:
    return AlertThread(
        channel=delivery.channel,
        target=t.target,
        service_id=t.service_id,
        root_ts=ts,
        transition_id=t.id,
        delivery_id=delivery.id,
        opened_at=datetime.now(UTC),
    )


def _late_reason(errors: list[str | None], last_transient: SlackFailure | None) -> str:
    """Why rows went out late, in words, from their last errors (or what the worker last saw)."""
    seen = " ".join(e for e in errors if e)
    if "ratelimited" in seen or (not seen and last_transient is not None and last_transient.status == 429):
        return "Slack was rate limiting the bot"
    if seen == REQUEUED:
        return "the bot was restarting"
    if any(code in seen for code in TOKEN_ERRORS):
        return "Slack refused the bot's token"
    if seen or last_transient is not None:
        return "Slack was unavailable"
    return "delivery was held up"


def _transitions(rows: list[Delivery]) -> list[Transition]:
    return [d.transition for d in rows if d.transition is not None][:5]


def _mass_deletion(rows: list[Delivery]) -> bool:
    """Rows of a confirmed mass deletion go out as one message (a single row stays an ordinary alert)."""
    return len(rows) > 1 and any(d.transition is not None and d.transition.grouped for d in rows)


def _groups(due: list[Delivery]) -> list[list[Delivery]]:
    """Rows by (channel, poll), in the order of their first row."""
    groups: dict[tuple[str, str | None], list[Delivery]] = {}
    for d in due:
        groups.setdefault((d.channel, d.poll_id if d.transition else f"notice-{d.id}"), []).append(d)
    return list(groups.values())


def _by_channel(rows: list[Delivery]) -> dict[str, list[Delivery]]:
    channels: dict[str, list[Delivery]] = {}
    for d in rows:
        channels.setdefault(d.channel, []).append(d)
    return channels
