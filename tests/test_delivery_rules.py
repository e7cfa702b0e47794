"""The pure rules under alert delivery, fast: which Slack failures heal, what ``/healthz`` makes of what delivery
saw, how history reads are paced, and the store's order and crash bookkeeping of the outbox (SQLite in tmp_path).
The end-to-end behaviour is in test_delivery_hardening.py."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from services_bot.bot.alerts import late_note, notice_metadata
from services_bot.bot.delivery_health import DeliveryHealth
from services_bot.bot.reconcile import HistoryPacer, is_posted_as
from services_bot.bot.slack_errors import SlackFailure, failure_of
from services_bot.core.notifications import Delivery, Notice
from services_bot.core.store import Store
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from tests.test_store import known, transition

NOW = datetime.now(UTC)


@pytest.mark.parametrize(
    ("failure", "scope"),
    [
        (SlackFailure("network: ClientConnectorError"), "transient"),
        (SlackFailure("fatal_error", 500), "transient"),
        (SlackFailure("HTTP 502", 502), "transient"),
        (SlackFailure("ratelimited", 429, 3.0), "transient"),
        (SlackFailure("service_unavailable", 200), "transient"),
        (SlackFailure("invalid_auth", 200), "token"),
        (SlackFailure("missing_scope", 200), "token"),
        (SlackFailure("not_in_channel", 200), "channel"),
        (SlackFailure("channel_not_found", 200), "channel"),
        (SlackFailure("invalid_blocks", 200), "message"),
        (SlackFailure("something_new", 200), "message"),
    ],
)
def test_only_failures_that_heal_are_retried(failure: SlackFailure, scope: str) -> None:
    assert failure.scope == scope
    assert failure.heals == (scope == "transient")


def _answer(status: int, body: dict[str, object], **headers: str) -> SlackApiError:
    response = AsyncSlackResponse(
        client=None, http_verb="POST", api_url="chat.postMessage", req_args={}, data=body, headers=headers,
        status_code=status,
    )  # fmt: skip
    return SlackApiError("failed", response)


@pytest.mark.parametrize(
    ("exc", "maybe_posted"),
    [
        (_answer(500, {"ok": False, "error": "fatal_error"}), True),
        (_answer(503, {"ok": False, "error": "fatal_error"}), False),
        (_answer(200, {"ok": False, "error": "internal_error"}), True),
        (_answer(429, {"ok": False, "error": "ratelimited"}, **{"Retry-After": "7"}), False),
        (_answer(200, {"ok": False, "error": "not_in_channel"}), False),
        (TimeoutError(), True),
        (aiohttp.ServerDisconnectedError(), True),
    ],
)
def test_a_failure_that_may_have_posted_is_told_apart(exc: BaseException, maybe_posted: bool) -> None:
    failure = failure_of(exc)
    assert failure.maybe_posted is maybe_posted
    if failure.status == 429:
        assert failure.retry_after == 7.0 and failure.heals


def test_metric_labels_stay_a_bounded_set() -> None:
    assert SlackFailure("not_in_channel", 200).metric_label == "not_in_channel"
    assert SlackFailure("made_up_by_a_proxy", 200).metric_label == "other"
    assert SlackFailure("HTTP 503", 503).metric_label == "http_503"
    assert SlackFailure("network: TimeoutError").metric_label == "network"
    assert SlackFailure("fatal_error", 500).describe() == "fatal_error (HTTP 500)"


def test_health_rules() -> None:
    seen = DeliveryHealth()
    now = datetime.now(UTC)
    report = seen.report(0, None, 0, stale_seconds=60)
    assert (report.problems, report.warnings) == ([], [])
    seen.failed("C1", SlackFailure("fatal_error", 500))
    assert seen.report(1, now - timedelta(seconds=10), 0, stale_seconds=60).problems == [], "young backlog is fine"
    stale = seen.report(2, now - timedelta(seconds=90), 0, stale_seconds=60)
    assert stale.problems and "2 alert(s) undelivered" in stale.problems[0] and "HTTP 500" in stale.problems[0]
    assert stale.body["last_error"]["heals"] is True and stale.body["oldest_undelivered_age_seconds"] >= 90
    seen.failed("C2", SlackFailure("not_in_channel", 200))
    degraded = seen.report(0, None, 1, stale_seconds=60)
    assert degraded.problems == [] and "C2" in degraded.warnings[0]
    assert degraded.body["refused_channels"] == {"C2": "not_in_channel"}
    seen.failed("C1", SlackFailure("invalid_auth", 200))
    assert "invalid_auth" in seen.report(0, None, 2, stale_seconds=60).problems[0]
    seen.succeeded("C1")
    after = seen.report(0, None, 2, stale_seconds=60)
    assert after.problems == [] and after.body["refused_channels"] == {"C2": "not_in_channel"}
    seen.succeeded("C2")
    assert seen.report(0, None, 2, stale_seconds=60).warnings == [] and seen.streak == 0


async def test_history_reads_are_spaced_by_the_tier_even_when_asked_at_once() -> None:
    pacer = HistoryPacer(per_minute=600)  # one call every 0.1 s
    stamps: list[float] = []

    async def call() -> None:
        await pacer.wait()
        stamps.append(time.monotonic())

    await asyncio.gather(*(call() for _ in range(4)))
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(gap >= 0.09 for gap in gaps), gaps
    pacer.hold(0.3)
    started = time.monotonic()
    await pacer.wait()
    assert time.monotonic() - started >= 0.29, "Retry-After holds the next read"


def test_notices_are_recognised_by_their_own_metadata() -> None:
    notice = Notice(kind="outage", target="prod", text="down", observed_at=NOW)
    row = Delivery(id=1, channel="C1", next_attempt_at=NOW, created_at=NOW, notice=notice)
    assert is_posted_as(notice_metadata(notice), row)
    other = notice.model_copy(update={"observed_at": NOW + timedelta(seconds=1)})
    assert not is_posted_as(notice_metadata(other), row), "another outage's notice is not this one"
    assert not is_posted_as({}, row)


def test_a_late_note_says_how_late_in_words() -> None:
    assert late_note(45, "Slack was unavailable")["elements"][0]["text"].endswith("Delayed 45 s: Slack was unavailable")
    assert "Delayed 16 min" in late_note(16 * 60 + 5, "x")["elements"][0]["text"]
    assert "Delayed 2 h 5 min" in late_note(2 * 3600 + 5 * 60, "x")["elements"][0]["text"]


async def test_a_service_row_waits_for_its_earlier_row_in_that_channel_only(tmp_path: Path) -> None:
    async with Store(tmp_path / "bot.db") as store:
        await store.add_subscription("C1", {"failed"})
        await store.add_subscription("C2", {"failed"})
        await store.record_poll("prod", "p1", [known("a", "failed")], [], [transition("a")], None)
        await store.record_poll("prod", "p2", [known("a"), known("b", "failed")], [], [
            transition("a", "running", from_status="failed"), transition("b"),
        ], None)  # fmt: skip
        due = await store.due_deliveries()
        first = {(d.channel, d.transition.service_id, d.transition.to_status) for d in due if d.transition}
        assert first == {("C1", "a", "failed"), ("C2", "a", "failed"), ("C1", "b", "failed"), ("C2", "b", "failed")}
        c1_a = next(d for d in due if d.channel == "C1" and d.transition and d.transition.service_id == "a")
        await store.mark_in_flight([c1_a.id])
        await store.mark_retry([c1_a.id], datetime.now(UTC) + timedelta(minutes=10), "fatal_error (HTTP 500)")
        later = await store.due_deliveries()
        assert not [d for d in later if d.channel == "C1" and d.transition and d.transition.service_id == "a"]
        c2_a = next(d for d in later if d.channel == "C2" and d.transition and d.transition.service_id == "a")
        await store.mark_done([c2_a.id], "1.0")
        recoveries = [d for d in await store.due_deliveries() if d.transition and d.transition.to_status == "running"]
        assert [d.channel for d in recoveries] == ["C2"], "C2's recovery may go; C1's waits for C1's failure"
        assert await store.undelivered_of_poll("C1", "p2") == 2


async def test_rows_left_in_flight_come_back_to_be_looked_up_first(tmp_path: Path) -> None:
    async with Store(tmp_path / "bot.db") as store:
        await store.add_subscription("C1", {"failed"})
        await store.record_poll("prod", "p1", [], [], [transition("a")], None)
        [row] = await store.due_deliveries()
        await store.mark_in_flight([row.id])
        await store.mark_in_flight([row.id])
        assert await store.requeue_in_flight("requeued after restart") == 1
        [again] = await store.due_deliveries()
        assert again.check_posted and again.attempts == 2 and again.first_attempt_at is not None
        assert (await store.undelivered())[0] == 1
        await store.mark_checked([again.id])
        [checked] = await store.due_deliveries()
        assert not checked.check_posted and checked.first_attempt_at == again.first_attempt_at
