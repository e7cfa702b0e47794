"""The watcher against a live emulator over loopback: what a channel is told when services change, what it is
not told, what one poll costs, and what happens when ModelArts cannot be reached."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from services_bot.bot.delivery import AlertDelivery
from services_bot.core.models import KNOWN_STATUSES
from services_bot.core.notifications import Transition, parse_watch_args
from services_bot.core.store import Store
from services_bot.core.watcher import Watcher
from services_bot.emulator import EmulatorServer, EmulatorSettings
from services_bot.workspace import WorkspaceClient, WorkspaceServer
from slack_sdk.web.async_client import AsyncWebClient

from tests.conftest import Control, queries_for

SERVICES, SEED = 300, 11
ALERTS = "C-alerts"
UNHEALTHY = ("failed", "concerning")


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorSettings(port=0, services=SERVICES, seed=SEED, workspaces=0)) as emu:
        yield emu


@pytest.fixture
def ctl(server: EmulatorServer) -> Iterator[Control]:
    control = Control(server.url)
    control.reset(services=SERVICES, seed=SEED)
    yield control
    control.http.close()


@asynccontextmanager
async def watching(
    server: EmulatorServer, db: Path, settings: dict[str, Any] | None = None, **options: Any
) -> AsyncIterator[tuple[Watcher, Store]]:
    """A watcher on the emulator with a fresh store whose default subscription sends failed/concerning to ALERTS."""
    async with queries_for(server, services_bot_max_retries=0, **(settings or {})) as queries, Store(db) as store:
        await store.ensure_default_subscription(ALERTS, {"failed", "concerning"})
        yield Watcher(queries.clients, store, **options), store


def services(ctl: Control, server: EmulatorServer, **filters: Any) -> list[dict[str, Any]]:
    rows = ctl.list_raw(server.settings.project_id, server.settings.token, **filters)["services"]
    return sorted(rows, key=lambda r: r["service_id"])


async def channels(store: Store) -> list[tuple[str, str | None]]:
    return [(d.channel, d.transition.service_id if d.transition else None) for d in await store.deliveries()]


async def watch(store: Store, channel: str, *words: str) -> None:
    await store.add_subscription(channel, **parse_watch_args(list(words)))


async def test_the_first_poll_is_a_silent_baseline_and_a_quiet_poll_costs_one_request(
    server: EmulatorServer, ctl: Control, tmp_path: Path
) -> None:
    """On a target pinned to v1; one that reads both generations pays the same once per generation (test_v2)."""
    async with watching(server, tmp_path / "w.db", {"modelarts_api_generation": "v1"}) as (watcher, store):
        first = await watcher.poll_once()
        assert [t.mode for t in first.targets] == ["baseline"] and first.ok
        assert first.transitions == [] and await store.deliveries() == []
        assert len(await store.known_services("default")) == SERVICES
        ctl.clear_requests()
        checked = await watcher.poll_once()  # the run's first scan also checks once that the API sorts as asked
        assert checked.transitions == [] and checked.requests == 2
        ctl.clear_requests()
        quiet = await watcher.poll_once()
        assert [t.mode for t in quiet.targets] == ["incremental"] and quiet.transitions == []
        assert ctl.requests()["by_route"]["list"] == 1 and ctl.requests()["total"] == 1
        assert quiet.requests == 1


async def test_a_failure_is_one_transition_with_its_error_and_one_row_per_matching_channel(
    server: EmulatorServer, ctl: Control, tmp_path: Path
) -> None:
    heard: list[list[Transition]] = []

    async def listener(transitions: list[Transition]) -> None:
        heard.append(transitions)

    async def broken(_transitions: list[Transition]) -> None:
        raise RuntimeError("listener bug")

    victim = services(ctl, server, status="running")[0]
    prefix = victim["service_name"][:4]
    async with watching(server, tmp_path / "w.db") as (watcher, store):
        await watch(store, "C-team", "failed", f"name:{prefix.upper()}*")
        await watch(store, "C-stopped", "stopped")
        watcher.add_listener(broken)
        watcher.add_listener(listener)
        await watcher.poll_once()
        before = datetime.now(UTC)
        ctl.set_status(victim["service_id"], "failed", "CUDA out of memory")
        result = await watcher.poll_once()
        [t] = result.transitions
        assert (t.kind, t.from_status, t.to_status, t.error_msg) == (
            "changed",
            "running",
            "failed",
            "CUDA out of memory",
        )
        assert (t.service_id, t.service_name, t.target) == (victim["service_id"], victim["service_name"], "default")
        assert t.project_id == server.settings.project_id and t.id is not None
        assert t.transition_at is not None and abs(t.transition_at - before) < timedelta(seconds=5)
        assert t.observed_at >= t.transition_at - timedelta(seconds=1)
        assert await channels(store) == [(ALERTS, t.service_id), ("C-team", t.service_id)]
        assert heard == [[t]]
        ctl.set_status(victim["service_id"], "running")
        [back] = (await watcher.poll_once()).transitions
        assert (back.from_status, back.to_status) == ("failed", "running")
        assert (await channels(store))[2:] == [(ALERTS, t.service_id), ("C-team", t.service_id)]  # recovered
        assert [t.to_status for t in await store.transitions(service=victim["service_name"])] == ["running", "failed"]


async def test_new_and_deleted_services_are_reported_in_the_next_poll(
    server: EmulatorServer, ctl: Control, tmp_path: Path
) -> None:
    doomed = services(ctl, server, status="failed")[0]
    async with watching(server, tmp_path / "w.db") as (watcher, store):
        await watcher.poll_once()
        ctl.delete(f"/services/{doomed['service_id']}")
        born = ctl.add(service_name="brand-new-ocr", status="concerning")
        result = await watcher.poll_once()
        kinds = {t.kind: t for t in result.transitions}
        assert set(kinds) == {"new", "deleted"}
        assert (kinds["new"].service_id, kinds["new"].from_status, kinds["new"].to_status) == (
            born["service_id"],
            None,
            "concerning",
        )
        assert (kinds["deleted"].service_id, kinds["deleted"].from_status, kinds["deleted"].to_status) == (
            doomed["service_id"],
            "failed",
            None,
        )
        assert result.targets[0].reason == "service count changed"  # noticed at once, not at the next resync
        assert doomed["service_id"] not in await store.known_services("default")
        assert len(await store.deliveries(channel=ALERTS)) == 2


async def test_a_flap_between_two_polls_is_reported(server: EmulatorServer, ctl: Control, tmp_path: Path) -> None:
    victim = services(ctl, server, status="failed")[0]
    async with watching(server, tmp_path / "w.db") as (watcher, store):
        await watcher.poll_once()
        ctl.set_status(victim["service_id"], "running")
        ctl.set_status(victim["service_id"], "failed")
        [t] = (await watcher.poll_once()).transitions
        assert (t.kind, t.from_status, t.to_status) == ("flap", "failed", "failed")
        assert await channels(store) == [(ALERTS, victim["service_id"])]
        assert (await watcher.poll_once()).transitions == []  # the overlap window does not report it twice


async def test_a_muted_service_is_stored_but_not_posted_in_that_channel(
    server: EmulatorServer, ctl: Control, tmp_path: Path
) -> None:
    victim = services(ctl, server, status="running")[0]
    async with watching(server, tmp_path / "w.db") as (watcher, store):
        await watch(store, "C-other", "failed")
        await store.mute(ALERTS, "default", victim["service_id"], None, datetime.now(UTC) + timedelta(hours=1))
        await watcher.poll_once()
        ctl.set_status(victim["service_id"], "failed")
        assert len((await watcher.poll_once()).transitions) == 1
        assert await channels(store) == [("C-other", victim["service_id"])]


async def test_filters_route_by_type_workspace_and_target(server: EmulatorServer, ctl: Control, tmp_path: Path) -> None:
    victim = services(ctl, server, status="running", infer_type="batch")[0]
    async with watching(server, tmp_path / "w.db") as (watcher, store):
        for channel, words in {
            "C-batch": ["failed", "type:batch"],
            "C-edge": ["failed", "type:edge"],
            "C-ws0": ["unhealthy", "ws:0"],
            "C-ws1": ["unhealthy", "ws:1"],
            "C-default": ["failed", "target:default"],
            "C-dev": ["failed", "target:dev"],
            "C-name": ["failed", f"name:{victim['service_name']}"],
            "C-nope": ["failed", "name:zzz-*"],
        }.items():
            await watch(store, channel, *words)
        await watcher.poll_once()
        ctl.set_status(victim["service_id"], "failed")
        await watcher.poll_once()
        assert [c for c, _ in await channels(store)] == [ALERTS, "C-batch", "C-ws0", "C-default", "C-name"]


@pytest.mark.parametrize("offset_mode", ["page", "record"])
async def test_many_changes_are_paged_newest_first_without_a_full_listing(
    server: EmulatorServer, ctl: Control, tmp_path: Path, offset_mode: str
) -> None:
    ctl.quirks(offset_mode=offset_mode)
    victims = services(ctl, server, status="running")[:45]
    async with watching(server, tmp_path / "w.db", {"services_bot_page_size": 100}, first_page=20) as (watcher, _s):
        await watcher.poll_once()  # the baseline lists 3 pages and learns how offsets are read
        await watcher.poll_once()  # the first scan checks the order once
        for victim in victims:
            ctl.set_status(victim["service_id"], "concerning")
        ctl.clear_requests()
        result = await watcher.poll_once()
        assert result.targets[0].mode == "incremental"
        assert {t.service_id for t in result.transitions} == {v["service_id"] for v in victims}
        assert ctl.requests()["by_route"]["list"] == 3  # 20 + 20 + 40 rows, newest first
        assert result.targets[0].detail_requests == 20  # error messages looked up for at most detail_limit


async def test_a_poll_that_fails_midway_changes_nothing_and_an_outage_is_told_once(
    server: EmulatorServer, ctl: Control, tmp_path: Path
) -> None:
    doomed, victim = services(ctl, server, status="running")[:2]
    options = {"outage_polls": 2, "alert_channel": "C-ops", "resync_polls": 1}
    async with watching(server, tmp_path / "w.db", {"services_bot_page_size": 50}, **options) as (watcher, store):
        await watcher.poll_once()
        ctl.delete(f"/services/{doomed['service_id']}")
        ctl.set_status(victim["service_id"], "failed")
        ctl.faults(error_status=503, error_count=1000, error_after=2)
        ctl.clear_requests()
        failed = await watcher.poll_once()
        assert not failed.ok and failed.transitions == [] and failed.notices == []
        statuses = Counter(entry["status"] for entry in ctl.requests()["log"])
        assert statuses[200] == 2 and statuses[503] >= 1  # two pages were read before it broke
        known = await store.known_services("default")
        assert doomed["service_id"] in known and known[victim["service_id"]].status == "running"
        assert await store.deliveries() == []
        assert watcher.consecutive_failures == 1 and "503" in (watcher.last_error or "")
        second = await watcher.poll_once()
        assert [n.kind for n in second.notices] == ["outage"]
        assert (await watcher.poll_once()).notices == []  # still down: no second notice
        assert watcher.health()["targets"]["default"]["reachable"] is False
        ctl.post("/faults", {"error_count": 0})
        back = await watcher.poll_once()
        assert back.ok and [n.kind for n in back.notices] == ["recovered"]
        assert {(t.kind, t.service_id) for t in back.transitions} == {
            ("deleted", doomed["service_id"]),
            ("changed", victim["service_id"]),
        }
        ops = [d.notice.kind for d in await store.deliveries(channel="C-ops") if d.notice]
        assert ops == ["outage", "recovered"]
        assert watcher.consecutive_failures == 0 and watcher.last_success_at is not None


async def test_answers_asking_for_polls_during_a_blip_do_not_declare_an_outage(
    server: EmulatorServer, ctl: Control, tmp_path: Path
) -> None:
    """Three questions in a few seconds while ModelArts blips are three failed on-demand polls; the outage notice
    still needs ``outage_polls`` failed polls of the watcher's own loop (an answer only waits, and says the API
    is not answering). A success of an answer's poll does end a counted run."""
    options = {"outage_polls": 2, "alert_channel": "C-ops"}
    async with watching(server, tmp_path / "w.db", **options) as (watcher, store):
        await watcher.poll_once()
        ctl.faults(error_status=503, error_count=1000)
        for _ in range(3):
            asked = watcher.poll_if_older(0)
            assert asked is not None
            assert (await asked).notices == []
        assert watcher.consecutive_failures == 0 and watcher.targets["default"].failing
        assert [n.kind for n in (await watcher.poll_once()).notices] == []
        assert [n.kind for n in (await watcher.poll_once()).notices] == ["outage"]
        ctl.post("/faults", {"error_count": 0})
        asked = watcher.poll_if_older(0)
        assert asked is not None and [n.kind for n in (await asked).notices] == ["recovered"]
        assert not watcher.targets["default"].failing
        ops = [d.notice.kind for d in await store.deliveries(channel="C-ops") if d.notice]
        assert ops == ["outage", "recovered"]


async def test_after_a_restart_the_watcher_resumes_without_a_new_baseline(
    server: EmulatorServer, ctl: Control, tmp_path: Path
) -> None:
    victim = services(ctl, server, status="running")[0]
    async with watching(server, tmp_path / "w.db") as (watcher, _store):
        await watcher.poll_once()
    ctl.set_status(victim["service_id"], "failed")  # while the bot was down
    async with watching(server, tmp_path / "w.db") as (watcher, store):
        result = await watcher.poll_once()
        assert result.targets[0].mode == "full" and result.targets[0].reason == "start"
        assert [(t.service_id, t.to_status) for t in result.transitions] == [(victim["service_id"], "failed")]
        assert len(await store.subscriptions()) == 1  # the default subscription was not duplicated
        assert (await watcher.poll_once()).targets[0].mode == "incremental"


async def test_notify_baseline_reports_services_already_unhealthy(
    server: EmulatorServer, ctl: Control, tmp_path: Path
) -> None:
    unhealthy = {r["service_id"] for s in ("failed", "concerning") for r in services(ctl, server, status=s)}
    async with watching(server, tmp_path / "w.db", notify_baseline=True, detail_limit=0) as (watcher, store):
        result = await watcher.poll_once()
        assert {t.service_id for t in result.transitions} == unhealthy
        assert {t.kind for t in result.transitions} == {"new"}
        assert len(await store.deliveries(channel=ALERTS)) == len(unhealthy)


async def test_the_loop_keeps_polling_until_cancelled(server: EmulatorServer, ctl: Control, tmp_path: Path) -> None:
    async with watching(server, tmp_path / "w.db", poll_seconds=0.02) as (watcher, _store):
        task = asyncio.create_task(watcher.run())
        for _ in range(200):
            if watcher.polls >= 3:
                break
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert watcher.polls >= 3 and watcher.errors == 0


async def test_a_full_listing_over_many_pages_is_diffed_a_page_at_a_time(
    server: EmulatorServer, ctl: Control, tmp_path: Path
) -> None:
    """With 40-row pages the baseline and a resync each read 8 pages (plus the offset probe once), and the
    resync still finds a change, an arrival and a deletion spread over different pages."""
    rows = services(ctl, server, status="running")
    changed, doomed = rows[0], rows[-1]
    async with watching(server, tmp_path / "w.db", {"services_bot_page_size": 40}, resync_polls=1) as (watcher, store):
        ctl.clear_requests()
        first = await watcher.poll_once()
        assert first.targets[0].mode == "baseline" and first.transitions == []
        assert first.targets[0].rows == SERVICES and ctl.requests()["by_route"]["list"] == 9
        assert len(await store.known_services("default")) == SERVICES
        ctl.set_status(changed["service_id"], "failed", "disk full")
        ctl.delete(f"/services/{doomed['service_id']}")
        born = ctl.add(service_name="late-arrival", status="concerning")
        ctl.clear_requests()
        result = await watcher.poll_once()
        assert result.targets[0].reason == "resync" and result.targets[0].rows == SERVICES
        assert ctl.requests()["by_route"]["list"] == 8
        got = {(t.kind, t.service_id, t.to_status) for t in result.transitions}
        assert got == {
            ("changed", changed["service_id"], "failed"),
            ("new", born["service_id"], "concerning"),
            ("deleted", doomed["service_id"], None),
        }
        known = await store.known_services("default")
        assert len(known) == SERVICES and doomed["service_id"] not in known
        assert known[changed["service_id"]].status == "failed"


# -- deletions are confirmed ---------------------------------------------------------------------------


async def test_services_deleted_while_a_listing_pages_shift_no_live_service_into_deleted(
    server: EmulatorServer, ctl: Control, tmp_path: Path
) -> None:
    """Three services vanish right after the first of three pages is served: the next pages start three rows
    later, so three live services are never listed. Their details answer, so they are not deleted (nor "new"
    in the next poll); the three really deleted ones were on the first page and are reported by the next
    full listing, once."""
    first_published = [r["service_id"] for r in sorted(services(ctl, server), key=lambda r: r["publish_at"])][:3]
    settings = {"services_bot_page_size": 100}
    async with watching(server, tmp_path / "w.db", settings, resync_polls=1) as (watcher, store):
        await watcher.poll_once()
        ctl.faults(delete_during_listing=3)
        shifted = await watcher.poll_once()
        assert shifted.ok and shifted.transitions == []
        assert shifted.targets[0].detail_requests == 3  # the rows pushed out of view, each confirmed alive
        assert len(await store.known_services("default")) == SERVICES
        following = await watcher.poll_once()
        assert sorted((t.kind, t.service_id) for t in following.transitions) == [
            ("deleted", gone) for gone in sorted(first_published)
        ]
        assert (await watcher.poll_once()).transitions == []
        assert len(await store.known_services("default")) == SERVICES - 3
        assert len(await store.deliveries()) == sum(1 for t in following.transitions if t.from_status in UNHEALTHY)


async def test_a_deletion_that_cannot_be_confirmed_waits_while_the_rest_of_the_poll_commits(
    server: EmulatorServer, ctl: Control, tmp_path: Path
) -> None:
    doomed, victim = services(ctl, server, status="failed")[:2]
    async with watching(server, tmp_path / "w.db", resync_polls=1) as (watcher, store):
        await watcher.poll_once()
        ctl.delete(f"/services/{doomed['service_id']}")
        ctl.set_status(victim["service_id"], "running")
        ctl.faults(error_status=503, error_count=1, paths=[f"/services/{doomed['service_id']}"])
        unsure = await watcher.poll_once()
        assert unsure.ok and [(t.kind, t.service_id) for t in unsure.transitions] == [("changed", victim["service_id"])]
        assert unsure.targets[0].detail_requests == 1 and unsure.targets[0].unconfirmed == 1
        known = await store.known_services("default")
        assert known[doomed["service_id"]].status == "failed" and known[victim["service_id"]].status == "running"
        confirmed = await watcher.poll_once()
        assert [(t.kind, t.service_id) for t in confirmed.transitions] == [("deleted", doomed["service_id"])]
        assert doomed["service_id"] not in await store.known_services("default")


@pytest.mark.parametrize("share", [0.3, 1.0])
async def test_a_listing_missing_much_of_the_fleet_deletes_nothing_when_a_second_listing_shows_it(
    server: EmulatorServer, ctl: Control, tmp_path: Path, share: float
) -> None:
    async with watching(server, tmp_path / "w.db", resync_polls=1) as (watcher, store):
        await watcher.poll_once()
        ctl.faults(hide_fraction=share)  # one listing answers with 30 % fewer services, or none at all
        ctl.clear_requests()
        result = await watcher.poll_once()
        assert result.ok and result.transitions == []
        assert ctl.requests()["by_route"]["list"] == 2  # the suspicious listing and the one that checked it
        assert len(await store.known_services("default")) == SERVICES
        assert await store.deliveries() == []
        assert (await watcher.poll_once()).transitions == []


async def test_a_confirmed_mass_deletion_is_one_grouped_message_in_each_channel(
    server: EmulatorServer, ctl: Control, workspace_server: WorkspaceServer, tmp_path: Path
) -> None:
    """90 of 300 services deleted at once: a second listing confirms it, and each channel gets one grouped
    message for the batch although the group threshold is far above 90."""
    doomed = services(ctl, server)[:90]
    running = sum(1 for d in doomed if d["status"] == "running")
    async with (
        watching(server, tmp_path / "w.db", resync_polls=1) as (watcher, store),
        WorkspaceClient(workspace_server.url) as slack,
    ):
        await slack.reset()
        await store.ensure_default_subscription(None, ())  # the stand-in knows only its own channels
        await watch(store, "C0ALERTS", ",".join(KNOWN_STATUSES))
        await watch(store, "C0GENERAL", "running")
        await watcher.poll_once()
        for gone in doomed:
            ctl.delete(f"/services/{gone['service_id']}")
        ctl.clear_requests()
        result = await watcher.poll_once()
        assert {(t.kind, t.service_id) for t in result.transitions} == {("deleted", d["service_id"]) for d in doomed}
        assert ctl.requests()["by_route"]["list"] == 2 and ctl.requests()["by_route"]["show"] == 0
        web = AsyncWebClient(token=workspace_server.settings.bot_token, base_url=workspace_server.api_url)
        await AlertDelivery(store, web, group_threshold=1000).deliver_due()
        for channel, count in (("C0ALERTS", len(doomed)), ("C0GENERAL", running)):
            (grouped,) = [m for m in await slack.messages(channel) if m["user"] == "U0BOT"]
            assert grouped["text"].startswith(f"{count} services changed state: {count} deleted (")
            assert grouped["metadata"]["event_type"] == "modelarts_service_status_changed_batch"
        assert len(await store.known_services("default")) == SERVICES - len(doomed)


# -- incremental polls check the order they rely on ----------------------------------------------------

IGNORES_SORT_BY = "server ignores sort_by=transition_at"


async def test_a_server_that_ignores_sort_by_is_noticed_at_once_and_gets_full_listings(
    server: EmulatorServer, ctl: Control, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="services_bot.watcher")
    by_publish = sorted(services(ctl, server, status="running"), key=lambda r: r["publish_at"])
    victim = by_publish[0]  # the earliest published: last in the order such a server answers in
    async with watching(server, tmp_path / "w.db") as (watcher, _store):
        await watcher.poll_once()
        health = watcher.health()["targets"]["default"]
        assert health["order_checked"] is False and health["full_listings_only"] is None
        ctl.quirks(ignore_sort_by=True)
        ctl.set_status(victim["service_id"], "failed", "disk full")
        noticed = await watcher.poll_once()
        assert [(t.service_id, t.to_status) for t in noticed.transitions] == [(victim["service_id"], "failed")]
        assert (noticed.targets[0].mode, noticed.targets[0].reason) == ("full", IGNORES_SORT_BY)
        for _ in range(3):
            assert (await watcher.poll_once()).targets[0].reason == IGNORES_SORT_BY
        assert watcher.health()["targets"]["default"]["full_listings_only"] == IGNORES_SORT_BY
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "sort_by" in r.getMessage()]
    assert len(warnings) == 1
    async with watching(server, tmp_path / "w.db") as (watcher, _store):  # a restart remembers
        assert (await watcher.poll_once()).targets[0].reason == "start"
        assert (await watcher.poll_once()).targets[0].reason == IGNORES_SORT_BY
        assert watcher.health()["targets"]["default"]["full_listings_only"] == IGNORES_SORT_BY


async def test_a_recent_change_missing_from_the_newest_page_gets_a_full_listing_and_a_repeat_distrusts_the_order(
    server: EmulatorServer, ctl: Control, tmp_path: Path
) -> None:
    """The newest-published services are also the newest changed, so a server answering in publish order gives
    a first page that looks newest-first. What gives it away: a service seen changing a poll ago, newer than
    the page's oldest row, is not on it."""
    old, victim = services(ctl, server, status="running")[:2]
    settings = {"services_bot_page_size": 100}  # a baseline of several pages learns how offsets are read
    async with watching(server, tmp_path / "w.db", settings, overlap_seconds=0) as (watcher, _store):
        await watcher.poll_once()
        for n in range(25):
            ctl.add(service_name=f"fresh-{n}")
        ctl.set_status(old["service_id"], "stopping")
        honest = await watcher.poll_once()
        assert honest.targets[0].mode == "incremental" and len(honest.transitions) == 26
        assert watcher.health()["targets"]["default"]["order_checked"] is True
        assert (await watcher.poll_once()).transitions == []  # the next scan asks for a first page of 20 again
        ctl.quirks(ignore_sort_by=True)
        ctl.set_status(victim["service_id"], "failed")
        suspicious = await watcher.poll_once()
        assert suspicious.targets[0].mode == "full" and suspicious.targets[0].reason != IGNORES_SORT_BY
        assert [(t.service_id, t.to_status) for t in suspicious.transitions] == [(victim["service_id"], "failed")]
        assert watcher.health()["targets"]["default"]["full_listings_only"] is None  # once may be a deletion
        assert (await watcher.poll_once()).targets[0].reason == IGNORES_SORT_BY
        assert watcher.health()["targets"]["default"]["full_listings_only"] == IGNORES_SORT_BY


async def test_a_distrusted_order_is_checked_again_and_trusted_after_three_passes_in_a_row(
    server: EmulatorServer, ctl: Control, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that ignored sort_by for a while (a bad deploy upstream) does not cost a full listing every poll
    for ever: every resync_polls-th full listing checks the order again, and three passes in a row bring the
    incremental polls back, after a restart too. A check that fails starts the count over."""
    caplog.set_level(logging.INFO, logger="services_bot.watcher")
    victim = services(ctl, server, status="running")[0]
    async with watching(server, tmp_path / "w.db", resync_polls=2) as (watcher, store):
        await watcher.poll_once()
        ctl.quirks(ignore_sort_by=True)
        assert (await watcher.poll_once()).targets[0].reason == IGNORES_SORT_BY
        assert (await watcher.poll_once()).targets[0].reason == IGNORES_SORT_BY  # checked again: still wrong
        assert any("order still unreliable" in r.getMessage() for r in caplog.records)
        ctl.quirks(ignore_sort_by=False)
        for _ in range(5):
            assert (await watcher.poll_once()).targets[0].reason == IGNORES_SORT_BY
            assert watcher.health()["targets"]["default"]["full_listings_only"] == IGNORES_SORT_BY
        trusted = await watcher.poll_once()  # the third check in a row passes, after this poll's listing
        assert trusted.targets[0].mode == "full"
        health = watcher.health()["targets"]["default"]
        assert health["full_listings_only"] is None and health["order_checked"] is True
        assert await store.get_meta("full_listings_only:default") is None
        ctl.set_status(victim["service_id"], "failed", "disk full")
        cheap = await watcher.poll_once()
        assert cheap.targets[0].mode == "incremental"
        assert [(t.service_id, t.to_status) for t in cheap.transitions] == [(victim["service_id"], "failed")]
    back = [r for r in caplog.records if r.levelno == logging.WARNING and "newest first again" in r.getMessage()]
    assert len(back) == 1
    async with watching(server, tmp_path / "w.db", resync_polls=2) as (watcher, _store):  # a restart trusts it
        assert (await watcher.poll_once()).targets[0].reason == "start"
        assert (await watcher.poll_once()).targets[0].mode == "incremental"

async def test_answers_polls_are_shared_and_do_not_bring_the_resync_sooner(
    server: EmulatorServer, ctl: Control, tmp_path: Path
) -> None:
    """Polls asked for by answers (``poll_if_older``): one at a time however many ask, none when the last one is
    recent enough, and never a full listing for coming in numbers (the resync counts the watcher's own polls)."""
    async with watching(server, tmp_path / "w.db", resync_polls=2) as (watcher, _store):
        await watcher.poll_once()  # the baseline
        await asyncio.sleep(0.6)
        asked = [watcher.poll_if_older(0.5) for _ in range(10)]
        assert asked[0] is not None and all(poll is asked[0] for poll in asked), "ten askers at once share one poll"
        await asked[0]
        strict = [watcher.poll_if_older(0.0) for _ in range(10)]
        assert len({id(poll) for poll in strict}) == 2, "asking for a poll started after the question: at most one more"
        await asyncio.gather(*(p for p in strict if p is not None))
        for _ in range(5):
            poll = watcher.poll_if_older(0.0)
            assert poll is not None
            result = await poll
            assert [t.mode for t in result.targets] == ["incremental"], result.targets[0].reason
        assert watcher.poll_if_older(60.0) is None, "a poll that started under a minute ago is not repeated"
        scheduled = await watcher.poll_once()
        assert scheduled.targets[0].mode == "incremental"
        assert (await watcher.poll_once()).targets[0].reason == "resync", "the watcher's own polls still resync"
