"""Alerts survive what Slack does to them: long outages, refusals, failed history reads, busy channels, a crash
in the middle of a notice, and a transient error between a failure and its recovery. Everything runs for real:
the emulator over loopback, ``serve`` in the background (or as a process to SIGKILL), the Slack stand-in with
its faults. Backoff, staleness and lateness thresholds are settings, so a 15-minute outage takes seconds here.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from services_bot.emulator import EmulatorServer
from services_bot.workspace import WorkspaceClient, WorkspaceServer

from services_bot.serve import BackgroundServe
from tests.conftest import Control
from tests.test_notifications import (
    ALERTS,
    GENERAL,
    _baselined,
    _outbox_states,
    _serve_process,
    _until,
    alert_settings,
    bot_messages,
    service,
    wait_baseline,
)
from tests.test_slack_views import assert_valid, mrkdwn_texts

FAST = {
    "services_bot_delivery_backoff_seconds": 0.05,
    "services_bot_delivery_backoff_max_seconds": 0.3,
}
"""Small backoff values: an outage longer than the old give-up budget (ten tries, one pass a second at best)
takes seconds."""


FLEET_SEED = 23
"""The seed of this module's own small fleet (conftest's ``fleet``)."""


def top_level(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in bot_messages(messages) if not m.get("thread_ts") or m["thread_ts"] == m["ts"]]


def blocks_text(message: dict[str, Any]) -> str:
    return "\n".join(mrkdwn_texts(message["blocks"] or []))


async def health(bot: BackgroundServe) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        answer = await http.get(bot.url + "/healthz")
    return answer.status_code, answer.json()


async def health_until(bot: BackgroundServe, check: Any, what: str, timeout: float = 15) -> dict[str, Any]:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while True:
        code, body = await health(bot)
        if check(code, body):
            return body
        assert time.monotonic() < deadline, f"timed out waiting for {what}; last /healthz: {code} {body}"
        await asyncio.sleep(0.1)


async def metric(bot: BackgroundServe, name: str, **labels: str) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(bot.url + "/metrics")).text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", re.M)
    for found_labels, value in pattern.findall(text):
        if ",".join(sorted(found_labels.split(","))) == wanted or (not labels and not found_labels):
            return float(value)
    return 0.0


async def calls_of(slack: WorkspaceClient, method: str) -> list[dict[str, Any]]:
    return await slack.calls(method)


def crash_after_posting(db: Path) -> None:
    """What a crash right after Slack took the posts leaves behind: the rows in flight, their ts unknown."""
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE outbox SET state = 'in_flight', ts = NULL")


# -- 3: a long outage loses nothing ----------------------------------------------------------------


async def test_a_slack_outage_longer_than_the_old_give_up_budget_delivers_every_alert_once_marked_late(
    fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer, slack: WorkspaceClient,
    tmp_path: Path,
) -> None:  # fmt: skip
    names = [f"outage-{i}" for i in range(3)]
    created = [service(fleet_control, name) for name in names]
    settings = alert_settings(
        fleet, workspace_server, tmp_path / "store.db", services_bot_delivery_late_note_seconds=1.0, **FAST
    )
    with BackgroundServe(settings) as bot:
        wait_baseline(bot, 2)
        await slack.set_fault("*", status=503, count=1_000_000)
        for row in created:  # one poll each: three ordinary alerts
            fleet_control.set_status(row["service_id"], "failed", "quota exceeded")
            wait_baseline(bot, 1)
        await _until_async(lambda: _tried_more_than(slack, 12), "more tries of one alert than the old ten")
        await slack.clear_faults()
        await slack.wait_for_messages(lambda m: len(bot_messages(m)) >= 3, channel=ALERTS, timeout=15)
        wait_baseline(bot, 4)
        outbox = await bot.runtime.store.deliveries()  # type: ignore[union-attr]
    alerts = bot_messages(await slack.messages(ALERTS))
    assert sorted(m["text"].split(":")[0] for m in alerts) == names, "each alert exactly once"
    assert {d.state for d in outbox} == {"done"}
    for alert in alerts:
        assert_valid(alert["blocks"])
        assert re.search(r"Delayed \d+ s: Slack was unavailable", blocks_text(alert)), blocks_text(alert)


async def test_a_post_whose_answer_never_came_is_looked_up_before_it_is_tried_again(
    fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer, slack: WorkspaceClient,
    tmp_path: Path,
) -> None:  # fmt: skip
    """Slack takes the post but the answer is lost (here: it comes after the client's timeout). Trying again
    blindly would post it twice; the row is looked up first, once Slack has had time to finish."""
    created = service(fleet_control, "timed-out-svc")
    settings = alert_settings(
        fleet, workspace_server, tmp_path / "store.db", services_bot_slack_timeout_seconds=1.0, **FAST
    )
    with BackgroundServe(settings) as bot:
        wait_baseline(bot, 2)
        await slack.set_fault("chat.postMessage", latency=1.4)
        fleet_control.set_status(created["service_id"], "failed", "x")
        await slack.wait_for_messages(lambda m: bot_messages(m), channel=ALERTS, timeout=10)
        await slack.clear_faults()
        await _until(lambda: _outbox_states(bot.settings.services_bot_db) == ["done"], "the alert settled")
        wait_baseline(bot, 3)
    assert len(bot_messages(await slack.messages(ALERTS))) == 1, "posted once although its answer was lost"
    assert len(await calls_of(slack, "chat.postMessage")) == 1
    assert await calls_of(slack, "conversations.history"), "found by looking, not by luck"


# -- 3 and 9: errors that cannot heal end a delivery, visibly ---------------------------------------


@pytest.mark.parametrize("refusal", ["not_in_channel", "channel_not_found"])
async def test_a_channel_that_refuses_alerts_shows_in_health_metrics_and_the_alert_channel(
    refusal: str, fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer,
    slack: WorkspaceClient, tmp_path: Path,
) -> None:  # fmt: skip
    with BackgroundServe(alert_settings(fleet, workspace_server, tmp_path / "store.db", **FAST)) as bot:
        wait_baseline(bot)
        await slack.set_app_url(bot.url + "/slack/events")
        await slack.command("watch stopped", GENERAL)  # #alerts watches failed,concerning: only #general hears
        await slack.wait_for_messages(lambda m: "set this channel" in json.dumps(m), channel=GENERAL)
        failed_before = await metric(bot, "services_bot_deliveries_total", outcome="failed")
        errors_before = await metric(bot, "services_bot_slack_errors_total", error=refusal)
        if refusal == "not_in_channel":
            await slack.set_fault(channel=GENERAL, not_in_channel=True)
        else:
            await slack.set_fault("chat.postMessage", error=refusal, count=1)
        created = service(fleet_control, "stopped-svc")
        wait_baseline(bot, 2)
        fleet_control.set_status(created["service_id"], "stopped")
        found = await slack.wait_for_messages(lambda m: bot_messages(m), channel=ALERTS, timeout=10)
        (notice,) = bot_messages(found)
        assert_valid(notice["blocks"])
        assert GENERAL in blocks_text(notice) and refusal in blocks_text(notice)
        body = await health_until(bot, lambda code, b: b.get("status") != "ok", "a degraded /healthz")
        code, body = await health(bot)
        assert code == 200 and body["status"] == "degraded", body
        assert body["delivery"]["refused_channels"] == {GENERAL: refusal}
        assert any(GENERAL in w and refusal in w for w in body["warnings"]), body
        assert await metric(bot, "services_bot_deliveries_total", outcome="failed") == failed_before + 1
        assert await metric(bot, "services_bot_slack_errors_total", error=refusal) == errors_before + 1
        wait_baseline(bot, 3)
    assert len(bot_messages(await slack.messages(ALERTS))) == 1, "one notice, not one per try"


async def test_a_refused_token_turns_health_503_and_holds_the_alerts_until_it_works_again(
    fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer, slack: WorkspaceClient,
    tmp_path: Path,
) -> None:  # fmt: skip
    """The alerts are not at fault when Slack refuses the token: they used to be marked failed, so a failure
    during a revoked token was never told even after the token was fixed. They are held and go out, late and
    saying why, once a post gets through; nothing is counted failed."""
    first, second = service(fleet_control, "auth-a"), service(fleet_control, "auth-b")
    settings = alert_settings(
        fleet, workspace_server, tmp_path / "store.db", services_bot_delivery_late_note_seconds=0.1, **FAST
    )
    with BackgroundServe(settings) as bot:
        wait_baseline(bot, 2)
        errors_before = await metric(bot, "services_bot_slack_errors_total", error="invalid_auth")
        failed_before = await metric(bot, "services_bot_deliveries_total", outcome="failed")
        await slack.set_fault("chat.postMessage", error="invalid_auth", count=1_000_000)
        fleet_control.set_status(first["service_id"], "failed", "x")
        body = await health_until(bot, lambda code, _b: code == 503, "503 while Slack refuses the token")
        assert body["status"] == "unhealthy" and any("invalid_auth" in p for p in body["problems"]), body
        assert any("held" in p for p in body["problems"]), body
        assert body["delivery"]["last_error"]["error"] == "invalid_auth"
        assert body["delivery"]["undelivered"] == 1
        assert await metric(bot, "services_bot_slack_errors_total", error="invalid_auth") >= errors_before + 1
        await slack.clear_faults()
        fleet_control.set_status(second["service_id"], "failed", "y")
        found = await slack.wait_for_messages(
            lambda m: len(bot_messages(m)) >= 2, channel=ALERTS, timeout=10
        )  # fmt: skip
        body = await health_until(bot, lambda code, b: code == 200 and b["status"] == "ok", "ok once alerts flow")
        assert body["delivery"]["undelivered"] == 0
        assert await metric(bot, "services_bot_deliveries_total", outcome="failed") == failed_before
    texts = [blocks_text(m) for m in bot_messages(found)]
    assert first["service_name"] in texts[0] and second["service_name"] in texts[1], "held, then in order"
    assert "Slack refused the bot's token" in texts[0], texts[0]


# -- 9: /healthz reflects delivery -----------------------------------------------------------------


async def test_health_turns_503_with_backlog_age_and_error_while_slack_answers_500_and_recovers(
    fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer, slack: WorkspaceClient,
    tmp_path: Path,
) -> None:  # fmt: skip
    created = service(fleet_control, "backlog-svc")
    settings = alert_settings(
        fleet, workspace_server, tmp_path / "store.db", services_bot_delivery_stale_seconds=1.0, **FAST
    )
    with BackgroundServe(settings) as bot:
        wait_baseline(bot, 2)
        code, body = await health(bot)
        assert code == 200 and body["delivery"]["undelivered"] == 0, body
        await slack.set_fault("chat.postMessage", status=500, count=1_000_000)
        fleet_control.set_status(created["service_id"], "failed", "x")
        body = await health_until(bot, lambda code, _b: code == 503, "503 while alerts cannot be delivered")
        delivery = body["delivery"]
        assert delivery["undelivered"] == 1 and delivery["oldest_undelivered_age_seconds"] >= 1.0, body
        assert "500" in delivery["last_error"]["error"], body
        assert any("undelivered" in p for p in body["problems"]), body
        assert await metric(bot, "services_bot_delivery_undelivered") == 1
        assert await metric(bot, "services_bot_delivery_oldest_undelivered_seconds") > 0
        await slack.clear_faults()
        await slack.wait_for_messages(lambda m: bot_messages(m), channel=ALERTS, timeout=10)
        body = await health_until(bot, lambda code, b: code == 200 and b["status"] == "ok", "ok after the outage")
        assert body["delivery"]["undelivered"] == 0 and body["delivery"]["oldest_undelivered_age_seconds"] is None


# -- 4: no duplicate after a crash -----------------------------------------------------------------


@pytest.mark.parametrize("fault", [{"status": 500, "count": 3}, {"rate_limited": 3, "retry_after": 1}])
async def test_a_history_read_that_fails_three_times_is_retried_not_answered_by_posting_again(
    fault: dict[str, int], fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer,
    slack: WorkspaceClient, tmp_path: Path,
) -> None:  # fmt: skip
    db = tmp_path / "store.db"
    created = service(fleet_control, "history-svc")
    with BackgroundServe(alert_settings(fleet, workspace_server, db, **FAST)) as first:
        wait_baseline(first, 2)
        fleet_control.set_status(created["service_id"], "failed", "x")
        await slack.wait_for_messages(lambda m: bot_messages(m), channel=ALERTS, timeout=10)
    crash_after_posting(db)
    await slack.set_fault("conversations.history", **fault)
    with BackgroundServe(alert_settings(fleet, workspace_server, db, **FAST)) as second:
        await _until(lambda: _outbox_states(db) == ["done"], "the in-flight alert settled", timeout=20)
        wait_baseline(second, 3)
    reads = await calls_of(slack, "conversations.history")
    assert [c["status"] for c in reads][:4] == [fault.get("status", 429)] * 3 + [200], reads
    if "retry_after" in fault:
        gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(reads[:4])]
        assert min(gaps) >= 0.9, f"Retry-After was not honoured: {gaps}"
    assert len(bot_messages(await slack.messages(ALERTS))) == 1, "found by its metadata, not posted again"


async def test_an_alert_behind_more_than_200_newer_messages_is_found_by_paging_the_history(
    fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer, slack: WorkspaceClient,
    tmp_path: Path,
) -> None:  # fmt: skip
    db = tmp_path / "store.db"
    created = service(fleet_control, "busy-channel-svc")
    settings = alert_settings(fleet, workspace_server, db, services_bot_slack_history_per_minute=60, **FAST)
    with BackgroundServe(settings) as first:
        wait_baseline(first, 2)
        fleet_control.set_status(created["service_id"], "failed", "x")
        await slack.wait_for_messages(lambda m: bot_messages(m), channel=ALERTS, timeout=10)
    for n in range(250):
        await slack.post_as_user(f"chatter {n}", ALERTS)
    crash_after_posting(db)
    with BackgroundServe(settings) as second:
        await _until(lambda: _outbox_states(db) == ["done"], "the in-flight alert settled", timeout=20)
        wait_baseline(second, 3)
    reads = await calls_of(slack, "conversations.history")
    assert len(reads) >= 2 and all(int(c["args"]["limit"]) == 200 for c in reads), reads
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(reads)]
    assert min(gaps) >= 0.95, f"history reads faster than the tier allows (60 a minute): {gaps}"
    assert len(bot_messages(await slack.messages(ALERTS))) == 1, "found 250 messages back, not posted again"


async def test_a_process_killed_while_posting_an_outage_notice_posts_no_second_notice(
    fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer, slack: WorkspaceClient,
    tmp_path: Path,
) -> None:  # fmt: skip
    db = tmp_path / "store.db"
    env = {"SERVICES_BOT_OUTAGE_POLLS": "2", "SERVICES_BOT_DELIVERY_BACKOFF_SECONDS": "0.05"}
    proc = _serve_process(fleet, workspace_server, db, **env)
    try:
        await _until(lambda: _baselined(db), "the baseline")
        await slack.set_fault("chat.postMessage", latency=1.0)
        fleet_control.faults(error_status=503, error_count=1_000_000)
        await _until_async(lambda: _posted_any(slack), "the outage notice was sent")
        proc.kill()  # SIGKILL while Slack is still taking the notice
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    await slack.wait_for_messages(lambda m: bot_messages(m), channel=ALERTS, timeout=5)  # Slack did take it
    assert _outbox_states(db) == ["in_flight"]
    await slack.clear_faults()
    proc = _serve_process(fleet, workspace_server, db, **env)
    try:
        await _until(lambda: _outbox_states(db) == ["done"], "the in-flight notice settled")
        fleet_control.post("/faults", {"error_count": 0})
        await _until(lambda: _outbox_states(db) == ["done", "done"], "the recovery notice delivered")
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=15)
    texts = [m["text"] for m in bot_messages(await slack.messages(ALERTS))]
    assert len(texts) == 2 and texts[0].startswith("Cannot reach ModelArts") and "again" in texts[1], texts
    assert "Traceback" not in err


async def _tried_more_than(slack: WorkspaceClient, tries: int) -> bool:
    """Whether one alert was refused more than ``tries`` times (delivery used to give up after ten)."""
    failed = [c for c in await calls_of(slack, "chat.postMessage") if c["status"] != 200]
    per_service: dict[str, int] = {}
    for call in failed:
        key = json.dumps((call["args"].get("metadata") or {}).get("event_payload"), sort_keys=True)
        per_service[key] = per_service.get(key, 0) + 1
    return max(per_service.values(), default=0) > tries


async def _posted_any(slack: WorkspaceClient) -> bool:
    return bool(await calls_of(slack, "chat.postMessage"))


async def _until_async(check: Any, what: str, timeout: float = 15) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


# -- 5: a service's alerts keep their order --------------------------------------------------------


async def test_a_recovery_waits_for_its_failure_alert_that_met_one_transient_error(
    fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer, slack: WorkspaceClient,
    tmp_path: Path,
) -> None:  # fmt: skip
    created = service(fleet_control, "ordered-svc")
    settings = alert_settings(
        fleet, workspace_server, tmp_path / "store.db",
        services_bot_delivery_backoff_seconds=2.0, services_bot_delivery_backoff_max_seconds=2.0,
    )  # fmt: skip
    with BackgroundServe(settings) as bot:
        wait_baseline(bot, 2)
        await slack.set_fault("chat.postMessage", status=500, count=1)
        fleet_control.set_status(created["service_id"], "failed", "boom")
        await _until_async(lambda: _posted_any(slack), "the failure alert was tried")
        fleet_control.set_status(created["service_id"], "running")
        await slack.wait_for_messages(lambda m: len(bot_messages(m)) >= 2, channel=ALERTS, timeout=15)
        found = await slack.wait_for_messages(
            lambda m: any(x["edited"] for x in bot_messages(m)), channel=ALERTS, timeout=5
        )
    (root,) = top_level(found)
    assert "(was running)" in blocks_text(root), "the failure opens the thread"
    assert "*Resolved*" in json.dumps(root["blocks"]) and root["text"].startswith("Resolved")
    (reply,) = [m for m in bot_messages(found) if m is not root]
    assert reply["thread_ts"] == root["ts"]
    assert "running · *" in blocks_text(reply) and "(was failed)" in blocks_text(reply)
