"""The notification store and the notification commands' grammar: what survives a restart, what gets routed
where, what a typo in `watch`/`history`/`mute` tells the user. No network: SQLite files in tmp_path."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from services_bot.core.errors import QueryError
from services_bot.core.notifications import (
    Notice,
    Subscription,
    Transition,
    parse_duration,
    parse_history_args,
    parse_mute_args,
    parse_unwatch_args,
    parse_watch_args,
    route,
)
from services_bot.core.store import MIGRATIONS, KnownService, Store

NOW = datetime.now(UTC)


def transition(service_id: str = "s1", to: str | None = "failed", **kw: object) -> Transition:
    fields: dict[str, object] = {
        "target": "prod",
        "project_id": "p",
        "service_id": service_id,
        "service_name": f"ocr-{service_id}",
        "kind": "changed",
        "from_status": "running",
        "to_status": to,
        "transition_at": NOW,
        "observed_at": NOW,
        "infer_type": "real-time",
        "workspace_id": "0",
        **kw,
    }
    return Transition.model_validate(fields)


def known(service_id: str, status: str = "running") -> KnownService:
    return KnownService(service_id, f"ocr-{service_id}", status, 1000, "real-time", "0")


# -- grammar ---------------------------------------------------------------------------------------


def test_watch_args_take_statuses_groups_and_filters() -> None:
    fields = parse_watch_args(["failed,concerning", "name:ocr-*", "type:Real-Time", "ws:0", "target:prod"])
    assert fields == {
        "statuses": frozenset({"failed", "error", "concerning"}),  # failed takes v2's error with it
        "name_glob": "ocr-*",
        "infer_type": "real-time",
        "workspace_id": "0",
        "target": "prod",
    }
    assert parse_watch_args(["unhealthy", "stopped"])["statuses"] == {"failed", "error", "concerning", "stopped"}
    assert parse_watch_args(["name:ocr"])["statuses"] == {"failed", "error", "concerning"}  # default: unhealthy


@pytest.mark.parametrize(
    ("args", "message", "suggestion"),
    [
        (["faild"], "Unknown status 'faild'. Did you mean 'failed'?", "failed"),
        (["nam:ocr"], "Unknown filter 'nam:'. Did you mean 'name:'?", "name"),
        (["type:realtime"], "Unknown service type 'realtime'. Did you mean 'real-time'?", "real-time"),
        (["name:"], "'name:' has no value.", None),
        (["name:a", "name:b"], "'name:' is given twice.", None),
    ],
)
def test_watch_typos_are_explained(args: list[str], message: str, suggestion: str | None) -> None:
    with pytest.raises(QueryError) as caught:
        parse_watch_args(args)
    assert caught.value.message == message
    assert caught.value.hint
    assert caught.value.suggestion == suggestion


def test_durations() -> None:
    assert parse_duration("30m") == timedelta(minutes=30)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("2D") == timedelta(days=2)
    assert parse_duration("45") == timedelta(minutes=45)
    for bad in ("", "h", "2x", "1h-", "0m", "soon"):
        with pytest.raises(QueryError, match=r"duration|zero"):
            parse_duration(bad)


def test_history_mute_and_unwatch_args() -> None:
    assert parse_history_args([]) == (None, timedelta(hours=24))
    assert parse_history_args(["ocr-prod", "since:2d"]) == ("ocr-prod", timedelta(days=2))
    assert parse_history_args(["since:30m"]) == (None, timedelta(minutes=30))
    with pytest.raises(QueryError, match="one service"):
        parse_history_args(["a", "b"])
    with pytest.raises(QueryError, match="Unknown option 'until:'"):
        parse_history_args(["until:1h"])
    assert parse_mute_args(["ocr-prod"]) == ("ocr-prod", timedelta(hours=1))
    assert parse_mute_args(["ocr-prod", "2h"]) == ("ocr-prod", timedelta(hours=2))
    with pytest.raises(QueryError, match="at most 30 days"):
        parse_mute_args(["ocr-prod", "31d"])
    with pytest.raises(QueryError, match="needs a service"):
        parse_mute_args([])
    assert parse_unwatch_args(["2"]) == 2
    for bad in ([], ["x"], ["0"], ["1", "2"]):
        with pytest.raises(QueryError, match="number"):
            parse_unwatch_args(bad)


# -- routing ---------------------------------------------------------------------------------------


def test_a_subscription_hears_arrivals_recoveries_and_departures_of_its_statuses() -> None:
    sub = Subscription(channel="C", statuses=frozenset({"failed"}))
    assert sub.matches(transition(to="failed"))
    assert sub.matches(transition(from_status="failed", to="running"))  # recovered
    assert sub.matches(transition(kind="deleted", from_status="failed", to=None))
    assert sub.matches(transition(kind="new", from_status=None, to="failed"))
    assert sub.matches(transition(kind="flap", from_status="failed", to="failed"))
    assert not sub.matches(transition(from_status="deploying", to="running"))
    assert not sub.matches(transition(kind="deleted", from_status="running", to=None))


def test_filters_route_to_the_right_channels() -> None:
    subs = [
        Subscription(channel="all", statuses=frozenset({"failed"})),
        Subscription(channel="ocr", statuses=frozenset({"failed"}), name_glob="OCR-*"),
        Subscription(channel="ocr", statuses=frozenset({"failed"}), name_glob="ocr"),  # same channel: one row
        Subscription(channel="batch", statuses=frozenset({"failed"}), infer_type="batch"),
        Subscription(channel="ws1", statuses=frozenset({"failed"}), workspace_id="1"),
        Subscription(channel="dev", statuses=frozenset({"failed"}), target="dev"),
    ]
    t = transition()
    assert [c for c, _ in route([t], subs)] == ["all", "ocr"]
    other = transition(service_name="asr-x", infer_type="batch", workspace_id="1", target="dev")
    assert [c for c, _ in route([other], subs)] == ["all", "batch", "ws1", "dev"]
    assert subs[1].describe() == "failed · name:OCR-*"
    wide = Subscription(channel="x", statuses=frozenset({"concerning", "failed", "stopped"}), infer_type="real-time")
    assert wide.describe() == "failed, concerning, stopped · type:real-time"


# -- store -----------------------------------------------------------------------------------------


async def test_a_fresh_file_is_migrated_in_wal_mode_and_reopening_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "bot.db"
    async with Store(path) as store:
        assert await store.schema_version() == len(MIGRATIONS)
        assert await store.journal_mode() == "wal"
        await store.set_meta("k", "v")
    async with Store(path) as store:
        assert await store.schema_version() == len(MIGRATIONS)
        assert await store.get_meta("k") == "v"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_a_first_schema_store_keeps_its_history_and_learns_grouped_transitions(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
        conn.execute(
            "INSERT INTO transitions (target, service_id, kind, observed_ms) VALUES ('prod', 'old', 'changed', 1)"
        )
    async with Store(path) as store:
        assert await store.schema_version() == len(MIGRATIONS)
        [old] = await store.transitions()
        assert old.service_id == "old" and old.grouped is False
        await store.add_subscription("C1", {"failed"})
        gone = transition("a", None, kind="deleted", from_status="failed", grouped=True)
        await store.record_poll("prod", "p1", [], ["a"], [gone, transition("b")], 2000)
        assert [d.transition.grouped for d in await store.deliveries() if d.transition] == [True, False]


async def test_state_subscriptions_and_outbox_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    async with Store(path) as store:
        await store.add_subscription("C1", {"failed"}, created_by="U1")
        await store.record_poll("prod", "p1", [known("a"), known("b")], [], [], 1000, baseline=True)
        stored = await store.record_poll("prod", "p2", [known("a", "failed")], [], [transition("a")], 2000)
        assert stored[0].id is not None and stored[0].poll_id == "p2"
        await store.mark_in_flight([d.id for d in await store.due_deliveries()])
    async with Store(path) as store:  # a crash between posting and confirming
        assert set(await store.known_services("prod")) == {"a", "b"}
        assert (await store.known_services("prod"))["a"].status == "failed"
        state = await store.target_state("prod")
        assert state.baselined and state.watermark_ms == 2000
        assert [s.created_by for s in await store.subscriptions("C1")] == ["U1"]
        [again] = await store.in_flight_deliveries()
        assert again.attempts == 1 and again.transition is not None and again.transition.service_id == "a"
        assert await store.due_deliveries() == []


async def test_one_outbox_row_per_matching_channel_and_none_where_muted(tmp_path: Path) -> None:
    async with Store(tmp_path / "bot.db") as store:
        await store.add_subscription("C1", {"failed"})
        await store.add_subscription("C1", {"failed", "concerning"})
        await store.add_subscription("C2", {"failed"}, name_glob="ocr-*")
        await store.add_subscription("C3", {"stopped"})
        await store.mute("C2", "prod", "b", "ocr-b", NOW + timedelta(hours=1))
        await store.mute("C1", "prod", "a", "ocr-a", NOW - timedelta(minutes=1))  # expired
        await store.record_poll("prod", "p", [], [], [transition("a"), transition("b")], None)
        rows = [(d.channel, d.transition.service_id) for d in await store.due_deliveries() if d.transition]
        assert rows == [("C1", "a"), ("C2", "a"), ("C1", "b")]
        assert await store.is_muted("C2", "prod", "b")
        assert not await store.is_muted("C2", "prod", "b", NOW + timedelta(hours=2))
        assert await store.unmute("C2", "prod", "b") and not await store.unmute("C2", "prod", "b")


async def test_delivery_lifecycle(tmp_path: Path) -> None:
    async with Store(tmp_path / "bot.db") as store:
        await store.add_subscription("C1", {"failed"})
        await store.record_poll("prod", "p", [], [], [transition("a"), transition("b")], None)
        notice_id = await store.add_notice("C9", Notice(kind="outage", target="prod", text="down"))
        due = await store.due_deliveries(limit=10)
        assert [d.id for d in due] == sorted(d.id for d in due) and len(due) == 3
        assert due[2].notice is not None and due[2].notice.text == "down" and due[2].id == notice_id
        first, second, _ = (d.id for d in due)
        await store.mark_in_flight([first, second])
        await store.mark_done([first], "111.1", thread_ts="100.0")
        now = datetime.now(UTC)  # not the import-time NOW: a long suite run would make "in 5 minutes" past already
        await store.mark_retry([second], now + timedelta(minutes=5), "ratelimited")
        assert [d.id for d in await store.due_deliveries()] == [notice_id]
        assert [d.id for d in await store.due_deliveries(now + timedelta(minutes=6))] == [second, notice_id]
        await store.mark_failed([notice_id], "channel_not_found")
        [done] = await store.deliveries(state="done")
        assert (done.ts, done.thread_ts) == ("111.1", "100.0")
        [retry] = await store.deliveries(state="pending")
        assert (retry.id, retry.attempts, retry.error) == (second, 1, "ratelimited")


async def test_watches_are_numbered_per_channel_and_unwatch_removes_one(tmp_path: Path) -> None:
    async with Store(tmp_path / "bot.db") as store:
        a = await store.add_subscription("C1", {"failed"})
        await store.add_subscription("C2", {"failed"})
        b = await store.add_subscription("C1", {"stopped"}, name_glob="ocr-*")
        assert await store.add_subscription("C1", {"failed"}) == a  # the same watch twice is one watch
        assert [s.id for s in await store.subscriptions("C1")] == [a.id, b.id]
        removed = await store.remove_subscription("C1", 1)
        assert removed.id == a.id
        assert [s.id for s in await store.subscriptions("C1")] == [b.id]
        with pytest.raises(QueryError, match="No subscription number 2") as caught:
            await store.remove_subscription("C1", 2)
        assert "1 subscription" in caught.value.hint
        with pytest.raises(QueryError) as caught:
            await store.remove_subscription("C7", 1)
        assert "no subscriptions" in caught.value.hint


async def test_the_default_subscription_follows_the_settings(tmp_path: Path) -> None:
    async with Store(tmp_path / "bot.db") as store:
        first = await store.ensure_default_subscription("C1", {"failed", "concerning"})
        assert first is not None and first.is_default
        assert await store.ensure_default_subscription("C1", {"failed", "concerning"}) == first
        changed = await store.ensure_default_subscription("C1", {"failed"})
        assert changed is not None and changed.id == first.id and changed.statuses == {"failed"}
        assert len(await store.subscriptions()) == 1
        await store.remove_subscription("C1", 1)
        assert await store.ensure_default_subscription("C1", {"failed"}) is None  # a removal is respected
        assert await store.ensure_default_subscription("C1", {"failed", "stopped"}) is not None  # until it changes
        moved = await store.ensure_default_subscription("C2", {"failed"})
        assert [s.channel for s in await store.subscriptions()] == ["C2"] and moved is not None
        assert await store.ensure_default_subscription(None, {"failed"}) is None
        assert await store.subscriptions() == []


async def test_history_filters_and_prune(tmp_path: Path) -> None:
    async with Store(tmp_path / "bot.db", history_days=7) as store:
        await store.add_subscription("C1", {"failed"})
        old = NOW - timedelta(days=10)
        rows = [
            transition("a", observed_at=old),
            transition("a", from_status="failed", to="running", observed_at=NOW - timedelta(hours=2)),
            transition("b", observed_at=NOW - timedelta(minutes=5)),
            transition("c", to="stopped", target="dev", observed_at=NOW),
        ]
        await store.record_poll("prod", "p", [], [], rows, None)
        assert [t.service_id for t in await store.transitions()] == ["c", "b", "a", "a"]
        assert [t.service_id for t in await store.transitions(since=NOW - timedelta(hours=1))] == ["c", "b"]
        assert [t.to_status for t in await store.transitions(service="OCR-a")] == ["running", "failed"]
        assert [t.service_id for t in await store.transitions(to_statuses=["failed"])] == ["b", "a"]
        assert [t.service_id for t in await store.transitions(target="dev")] == ["c"]
        assert len(await store.transitions(limit=1)) == 1
        assert (await store.prune(NOW))["transitions"] == 0  # the old one still waits for delivery
        await store.mark_done([d.id for d in await store.due_deliveries()], "1.0")
        assert await store.prune(NOW + timedelta(days=3)) == {
            "outbox": 1,
            "transitions": 1,
            "mutes": 0,
            "alert_threads": 0,
            "acknowledgements": 0,
            "audit": 0,
        }
        assert [t.service_id for t in await store.transitions()] == ["c", "b", "a"]


async def test_alert_threads(tmp_path: Path) -> None:
    async with Store(tmp_path / "bot.db") as store:
        assert await store.alert_thread("C1", "prod", "a", NOW - timedelta(hours=24)) is None
        await store.open_alert_thread("C1", "prod", "a", "100.1", 7, delivery_id=3, opened_at=NOW)
        thread = await store.alert_thread("C1", "prod", "a", NOW - timedelta(hours=24))
        assert thread is not None and (thread.root_ts, thread.transition_id, thread.resolved) == ("100.1", 7, False)
        assert await store.alert_thread("C1", "prod", "a", NOW + timedelta(seconds=1)) is None
        assert await store.resolve_alert_thread("C1", "prod", "a")
        thread = await store.alert_thread("C1", "prod", "a", NOW - timedelta(hours=24))
        assert thread is not None and thread.resolved


async def test_the_store_never_blocks_the_event_loop(tmp_path: Path) -> None:
    async with Store(tmp_path / "bot.db") as store:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        upserts = [known(f"s{i}") for i in range(20_000)]
        await store.record_poll("prod", "p", upserts, [], [], 1, baseline=True)
        task.cancel()
        assert ticks > 1  # the loop kept running while SQLite wrote
        assert len(await store.known_services("prod")) == 20_000


# -- the lifecycle tables: acknowledgements, mutes that end, audit, routing by channel access ------------------


async def test_acknowledgements_are_once_per_person_and_only_for_alerts_posted_in_the_channel(tmp_path: Path) -> None:
    async with Store(tmp_path / "bot.db") as store:
        await store.add_subscription("C1", {"failed"})
        [t] = await store.record_poll("prod", "p", [], [], [transition("a")], None)
        assert t.id is not None
        assert not await store.was_posted("C1", t.id), "not posted yet: nothing to acknowledge"
        [row] = await store.due_deliveries()
        await store.mark_done([row.id], "10.1")
        assert await store.was_posted("C1", t.id) and not await store.was_posted("C2", t.id)
        assert (await store.acknowledge("C1", t.id, "U1"))[0]
        new, acks = await store.acknowledge("C1", t.id, "U1")
        assert not new and [a.user for a in acks] == ["U1"], "a second click by the same person changes nothing"
        _, acks = await store.acknowledge("C1", t.id, "U2")
        assert [a.user for a in acks] == ["U1", "U2"]
        assert [a.user for a in (await store.acknowledgements([t.id]))[t.id]] == ["U1", "U2"]
        assert await store.thread_of_transition("C1", t.id) == ("10.1", None)


async def test_a_mute_that_ends_becomes_one_notice_and_is_gone(tmp_path: Path) -> None:
    now = datetime.now(UTC)  # not the import-time NOW: "in a minute" must still be ahead when the test runs
    async with Store(tmp_path / "bot.db") as store:
        await store.mute("C1", "prod", "a", "ocr-a", now + timedelta(minutes=1), set_by="U1")
        await store.mute("C1", "prod", "b", "ocr-b", now + timedelta(hours=1), set_by="U2")
        [first, _] = await store.mutes("C1")
        assert (first.service_id, first.set_by) == ("a", "U1") and first.set_at is not None
        later = now + timedelta(minutes=2)
        assert await store.end_expired_mutes(later) == 1
        assert await store.end_expired_mutes(later) == 0, "announced once"
        [notice] = [d.notice for d in await store.due_deliveries(later)]
        assert notice is not None and (notice.kind, notice.service_id, notice.text) == ("mute_ended", "a", "ocr-a")
        assert [m.service_id for m in await store.mutes("C1")] == ["b"]


async def test_no_alert_is_queued_for_a_channel_that_may_not_see_the_target(tmp_path: Path) -> None:
    async with Store(
        tmp_path / "bot.db", channel_sees=lambda channel, target: channel != "C2" or target == "dev"
    ) as store:
        await store.add_subscription("C1", {"failed"})
        await store.add_subscription("C2", {"failed"})
        await store.record_poll("prod", "p", [], [], [transition("a"), transition("b", target="dev")], None)
        rows = [(d.channel, d.transition.service_id) for d in await store.due_deliveries() if d.transition]
        assert rows == [("C1", "a"), ("C1", "b"), ("C2", "b")]


async def test_the_audit_is_newest_first_bounded_and_pruned(tmp_path: Path) -> None:
    async with Store(tmp_path / "bot.db", history_days=7) as store:
        await store.audit("watch", "C1", "U1", detail="failed")
        await store.audit("mute", "C2", "U2", target="prod", service_id="a", detail="x" * 5000)
        entries = await store.audit_entries(NOW - timedelta(minutes=1))
        assert [e.action for e in entries] == ["mute", "watch"] and len(entries[0].detail) == 500
        assert [e.channel for e in await store.audit_entries(NOW - timedelta(minutes=1), "C1")] == ["C1"]
        assert await store.audit_count(NOW - timedelta(minutes=1)) == 2
        assert (await store.prune(datetime.now(UTC) + timedelta(days=8)))["audit"] == 2
