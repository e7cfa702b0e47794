"""Alerts end to end: the emulator flips statuses through its control API, ``serve``'s watcher sees it, and the
alert arrives at the Slack stand-in, once, with the right content, thread and metadata."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from services_bot.emulator import EmulatorServer, EmulatorSettings
from services_bot.workspace import WorkspaceClient, WorkspaceServer

from services_bot.serve import BackgroundServe
from tests.conftest import Control, slack_settings
from tests.test_slack_views import assert_valid, mrkdwn_texts

ALERTS, GENERAL = "C0ALERTS", "C0GENERAL"
POLL = 0.3


@pytest.fixture(scope="module")
def fleet() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorSettings(port=0, services=30, workspaces=0, seed=11, churn=0)) as server:
        yield server


@pytest.fixture
def fleet_control(fleet: EmulatorServer) -> Iterator[Control]:
    ctl = Control(fleet.url)
    ctl.reset(services=30, seed=11)
    yield ctl
    ctl.http.close()


def alert_settings(fleet: EmulatorServer, workspace_server: WorkspaceServer, db: Path, **overrides: Any) -> Any:
    return slack_settings(
        fleet,
        workspace_server,
        services_bot_db=db,
        services_bot_poll_seconds=POLL,
        services_bot_alert_channel=ALERTS,
        services_bot_group_threshold=3,
        services_bot_outage_polls=2,
        services_bot_max_retries=0,
        **overrides,
    )


def wait_baseline(bot: BackgroundServe, polls: int = 1, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    watcher = bot.runtime.watcher
    assert watcher is not None
    start = watcher.polls
    while watcher.polls < start + polls or watcher.last_success_at is None:
        assert time.monotonic() < deadline, "the watcher did not poll"
        time.sleep(0.02)


@pytest.fixture
async def slack(workspace_server: WorkspaceServer) -> AsyncIterator[WorkspaceClient]:
    async with WorkspaceClient(workspace_server.url) as client:
        await client.reset()
        yield client


@pytest.fixture
def bot(
    fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer, tmp_path: Path
) -> Iterator[BackgroundServe]:
    with BackgroundServe(alert_settings(fleet, workspace_server, tmp_path / "store.db"), mcp=True) as running:
        wait_baseline(running)
        yield running


def bot_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["user"] == "U0BOT" and not m["ephemeral"]]


def service(control: Control, name: str, status: str = "running") -> dict[str, Any]:
    return control.add(service_name=name, status=status)


async def test_a_failure_is_alerted_once_with_error_and_metadata(
    bot: BackgroundServe, fleet_control: Control, slack: WorkspaceClient
) -> None:
    created = service(fleet_control, "ocr-invoice-prod")
    wait_baseline(bot, 2)
    assert not bot_messages(await slack.messages(ALERTS)), "a new running service is not alert-worthy"
    started = time.monotonic()
    fleet_control.set_status(created["service_id"], "failed", "CUDA out of memory <!channel>")
    found = await slack.wait_for_messages(lambda m: bot_messages(m), channel=ALERTS, timeout=10)
    took = time.monotonic() - started
    (alert,) = bot_messages(found)
    assert_valid(alert["blocks"])
    text = "\n".join(mrkdwn_texts(alert["blocks"]))
    assert ":red_circle: failed · *ocr-invoice-prod* (was running)" in text
    assert "CUDA out of memory &lt;!channel&gt;" in text
    assert alert["metadata"]["event_type"] == "modelarts_service_status_changed"
    payload = alert["metadata"]["event_payload"]
    assert payload["service_id"] == created["service_id"] and payload["to_status"] == "failed"
    assert payload["from_status"] == "running" and payload["project_id"] == "emulator-project"
    buttons = {e["text"]["text"] for b in alert["blocks"] for e in b.get("elements", []) if e["type"] == "button"}
    assert buttons == {"Details", "Acknowledge", "Mute 1h"}
    assert took < POLL + 2.0
    wait_baseline(bot, 3)
    assert len(bot_messages(await slack.messages(ALERTS))) == 1, "posted exactly once"


async def test_the_baseline_posts_nothing(
    fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer, slack: WorkspaceClient,
    tmp_path: Path,
) -> None:  # fmt: skip
    for _ in range(3):
        service(fleet_control, "already-broken", "failed")
    with BackgroundServe(alert_settings(fleet, workspace_server, tmp_path / "store.db")) as running:
        wait_baseline(running, 3)
    assert not bot_messages(await slack.messages(ALERTS))


async def test_watch_filters_route_to_the_right_channels(
    bot: BackgroundServe, fleet_control: Control, slack: WorkspaceClient
) -> None:
    await slack.set_app_url(bot.url + "/slack/events")
    await slack.command("watch failed name:ocr-*", GENERAL)
    await slack.wait_for_messages(lambda m: "set this channel" in json.dumps(m), channel=GENERAL)
    ocr, other = service(fleet_control, "ocr-receipts"), service(fleet_control, "fraud-scorer")
    wait_baseline(bot, 2)
    fleet_control.set_status(ocr["service_id"], "failed", "boom")
    fleet_control.set_status(other["service_id"], "failed", "boom")
    alerts = await slack.wait_for_messages(lambda m: len(bot_messages(m)) == 2, channel=ALERTS, timeout=10)
    await slack.wait_for_messages(
        lambda m: any("ocr-receipts" in x["text"] for x in bot_messages(m)), channel=GENERAL, timeout=10
    )
    wait_baseline(bot, 2)
    general = bot_messages(await slack.messages(GENERAL))
    assert not [m for m in general if "fraud" in m["text"]], "name:ocr-* keeps other services out of #general"
    assert {"ocr-receipts", "fraud-scorer"} <= {m["text"].split(":")[0] for m in bot_messages(alerts)}
    await slack.command("watches", GENERAL)
    listing = await slack.wait_for_messages(lambda m: "This channel is told about" in json.dumps(m), channel=GENERAL)
    assert "failed, error · name:ocr-*" in json.dumps(listing, ensure_ascii=False)


async def test_a_burst_becomes_one_grouped_message(
    bot: BackgroundServe, fleet_control: Control, slack: WorkspaceClient
) -> None:
    created = [service(fleet_control, f"batch-{i}") for i in range(5)]
    wait_baseline(bot, 2)
    burst = [{"service_id": s["service_id"], "status": "failed", "error_msg": "quota exceeded"} for s in created]
    fleet_control.post("/statuses", {"changes": burst})  # at one instant: one poll sees all five
    found = await slack.wait_for_messages(lambda m: bot_messages(m), channel=ALERTS, timeout=10)
    wait_baseline(bot, 2)
    (grouped,) = bot_messages(await slack.messages(ALERTS))
    assert_valid(grouped["blocks"])
    assert grouped["text"] == "5 services changed state: 5 failed: quota exceeded (batch-0, batch-1, batch-2, … +2)"
    assert "*5 failed*: quota exceeded" in json.dumps(grouped["blocks"], ensure_ascii=False)
    assert grouped["metadata"]["event_type"] == "modelarts_service_status_changed_batch"
    await slack.set_app_url(bot.url + "/slack/events")
    await slack.click(found[-1], "show_transitions")
    shown = await slack.wait_for_messages(lambda m: any(x["ephemeral"] for x in m), channel=ALERTS)
    listing = json.dumps([m for m in shown if m["ephemeral"]][-1]["blocks"])
    assert all(f"batch-{i}" in listing for i in range(5))


async def test_later_changes_go_to_the_thread_and_recovery_resolves_the_first_alert(
    bot: BackgroundServe, fleet_control: Control, slack: WorkspaceClient
) -> None:
    created = service(fleet_control, "asr-zh")
    wait_baseline(bot, 2)
    fleet_control.set_status(created["service_id"], "concerning")
    (root,) = bot_messages(await slack.wait_for_messages(lambda m: bot_messages(m), channel=ALERTS, timeout=10))
    fleet_control.set_status(created["service_id"], "running")
    found = await slack.wait_for_messages(
        lambda m: any(x.get("thread_ts") == root["ts"] and x["ts"] != root["ts"] for x in m), channel=ALERTS, timeout=10
    )
    reply = next(x for x in found if x.get("thread_ts") == root["ts"] and x["ts"] != root["ts"])
    replied = json.dumps(reply["blocks"], ensure_ascii=False)
    assert "running · *" in replied and "(was concerning)" in replied
    updated = await slack.wait_for_messages(
        lambda m: any(x["ts"] == root["ts"] and x["edited"] for x in m), channel=ALERTS, timeout=5
    )
    first = next(x for x in updated if x["ts"] == root["ts"])
    assert "*Resolved*" in json.dumps(first["blocks"]) and first["text"].startswith("Resolved")
    assert len([m for m in bot_messages(updated) if not m.get("thread_ts") or m["thread_ts"] == m["ts"]]) == 1


async def test_mute_button_silences_that_service_in_that_channel(
    bot: BackgroundServe, fleet_control: Control, slack: WorkspaceClient
) -> None:
    created = service(fleet_control, "noisy-svc")
    wait_baseline(bot, 2)
    fleet_control.set_status(created["service_id"], "failed", "x")
    (alert,) = bot_messages(await slack.wait_for_messages(lambda m: bot_messages(m), channel=ALERTS, timeout=10))
    await slack.set_app_url(bot.url + "/slack/events")
    await slack.click(alert, "mute_service")
    await slack.wait_for_messages(lambda m: "muted *noisy-svc*" in json.dumps(m), channel=ALERTS)
    fleet_control.set_status(created["service_id"], "concerning")
    wait_baseline(bot, 4)
    texts = [m["text"] for m in bot_messages(await slack.messages(ALERTS))]
    assert not [t for t in texts if "concerning" in t], texts


async def test_history_and_mcp_list_transitions(
    bot: BackgroundServe, fleet_control: Control, slack: WorkspaceClient
) -> None:
    created = service(fleet_control, "ranker-v2")
    wait_baseline(bot, 2)
    fleet_control.set_status(created["service_id"], "failed", "OOMKilled")
    await slack.wait_for_messages(lambda m: bot_messages(m), channel=ALERTS, timeout=10)
    await slack.set_app_url(bot.url + "/slack/events")
    await slack.command("history ranker-v2 since:1h", GENERAL)
    found = await slack.wait_for_messages(lambda m: "Transitions of ranker-v2" in json.dumps(m), channel=GENERAL)
    latest = json.dumps(found[-1]["blocks"], ensure_ascii=False)
    assert "failed · *" in latest and "(was running)" in latest
    async with Client(streamable_http_client(bot.url + "/mcp", http_client=httpx2.AsyncClient())) as client:
        result = await client.call_tool("list_transitions", {"since": "1h", "to_status": ["failed"]})
    rows = result.structured_content["transitions"]  # type: ignore[index]
    assert rows[0]["service_name"] == "ranker-v2" and rows[0]["error_msg"] == "OOMKilled"


async def test_mcp_clients_hear_that_a_service_changed(
    bot: BackgroundServe, fleet_control: Control, slack: WorkspaceClient
) -> None:
    import anyio

    created = service(fleet_control, "listened-svc")
    wait_baseline(bot, 2)
    uri = f"modelarts://services/{created['service_id']}"
    http = httpx2.AsyncClient()
    async with (
        Client(streamable_http_client(bot.url + "/mcp", http_client=http)) as client,
        client.listen(resource_subscriptions=[uri]) as events,
    ):
        assert client.protocol_version == "2026-07-28"
        capabilities = client.server_capabilities
        assert capabilities.resources and capabilities.resources.subscribe, "serve has a watcher: it says so"
        assert capabilities.tools and not capabilities.tools.list_changed, "the tool list never changes"
        fleet_control.set_status(created["service_id"], "failed")
        with anyio.fail_after(10):
            event = await anext(aiter(events))
    assert getattr(event, "uri", None) == uri


@pytest.mark.filterwarnings(
    "ignore::mcp.shared.exceptions.MCPDeprecationWarning"
)  # resources/subscribe is deprecated for 2026-07-28 only
async def test_a_2025_11_25_client_subscribes_and_hears_that_a_service_changed(
    bot: BackgroundServe, fleet_control: Control, slack: WorkspaceClient
) -> None:
    """Handshake-era sessions have no subscriptions/listen: resources/subscribe delivers the same events."""
    import anyio
    from mcp.types import ResourceUpdatedNotification

    created, other = service(fleet_control, "subscribed-svc"), service(fleet_control, "unsubscribed-svc")
    wait_baseline(bot, 2)
    uri = f"modelarts://services/{created['service_id']}"
    heard: list[str] = []
    arrived = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            heard.append(str(message.params.uri))
            arrived.set()

    http = httpx2.AsyncClient()
    async with Client(
        streamable_http_client(bot.url + "/mcp", http_client=http), mode="legacy", message_handler=on_message
    ) as client:
        assert client.protocol_version == "2025-11-25"
        assert client.server_capabilities.resources and client.server_capabilities.resources.subscribe
        await client.subscribe_resource(uri)
        fleet_control.set_status(other["service_id"], "failed")
        fleet_control.set_status(created["service_id"], "failed")
        with anyio.fail_after(10):
            await arrived.wait()
        wait_baseline(bot, 4)
    assert heard == [uri], "only the subscribed service, once"


async def test_a_restart_loses_nothing_and_posts_nothing_twice(
    fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer, slack: WorkspaceClient,
    tmp_path: Path,
) -> None:  # fmt: skip
    db = tmp_path / "store.db"
    a, b, c = (service(fleet_control, name) for name in ("svc-a", "svc-b", "svc-c"))
    with BackgroundServe(alert_settings(fleet, workspace_server, db)) as first:
        wait_baseline(first, 2)
        fleet_control.set_status(a["service_id"], "failed", "a broke")
        await slack.wait_for_messages(lambda m: bot_messages(m), channel=ALERTS, timeout=10)
    fleet_control.set_status(b["service_id"], "failed", "b broke while the bot was down")
    fleet_control.set_status(c["service_id"], "failed", "c broke")
    with sqlite3.connect(db) as conn:  # a crash right after Slack took svc-a's alert, before it was marked done
        conn.execute("UPDATE outbox SET state = 'in_flight', ts = NULL")
    with BackgroundServe(alert_settings(fleet, workspace_server, db)) as second:
        found = await slack.wait_for_messages(lambda m: len(bot_messages(m)) >= 2, channel=ALERTS, timeout=10)
        wait_baseline(second, 3)
    texts = sorted(m["text"].split(":")[0] for m in bot_messages(await slack.messages(ALERTS)))
    assert texts == ["svc-a", "svc-b", "svc-c"], "svc-a found in the channel by its metadata, not posted again"
    assert found


async def test_slack_429_is_honoured_and_the_alert_arrives_once(
    bot: BackgroundServe, fleet_control: Control, slack: WorkspaceClient
) -> None:
    created = service(fleet_control, "throttled-svc")
    wait_baseline(bot, 2)
    await slack.set_fault("chat.postMessage", rate_limited=1, retry_after=1)
    started = time.monotonic()
    fleet_control.set_status(created["service_id"], "failed", "x")
    await slack.wait_for_messages(lambda m: bot_messages(m), channel=ALERTS, timeout=10)
    assert time.monotonic() - started >= 1.0, "Retry-After was not honoured"
    wait_baseline(bot, 3)
    assert len(bot_messages(await slack.messages(ALERTS))) == 1
    assert [c["status"] for c in await slack.calls("chat.postMessage")][:2] == [429, 200]


async def test_a_channel_slack_refuses_does_not_hold_up_the_others(
    bot: BackgroundServe, fleet_control: Control, slack: WorkspaceClient
) -> None:
    await slack.set_app_url(bot.url + "/slack/events")
    await slack.command("watch failed", GENERAL)
    await slack.wait_for_messages(lambda m: "set this channel" in json.dumps(m), channel=GENERAL)
    await slack.set_fault(channel=GENERAL, not_in_channel=True)
    created = service(fleet_control, "refused-svc")
    wait_baseline(bot, 2)
    fleet_control.set_status(created["service_id"], "failed", "x")
    await slack.wait_for_messages(lambda m: bot_messages(m), channel=ALERTS, timeout=10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        failed = [c for c in await slack.calls("chat.postMessage") if c["args"].get("channel") == GENERAL]
        if failed:
            break
        await asyncio.sleep(0.05)
    assert failed and failed[0]["error"] == "not_in_channel"


async def test_an_outage_gives_one_notice_each_way_and_no_false_transitions(
    bot: BackgroundServe, fleet_control: Control, slack: WorkspaceClient
) -> None:
    before = transitions_in(bot)
    fleet_control.faults(error_status=503, error_count=10_000)
    notice = await slack.wait_for_messages(lambda m: bot_messages(m), channel=ALERTS, timeout=10)
    assert "ModelArts" in bot_messages(notice)[0]["text"]
    await asyncio.sleep(3 * POLL)
    fleet_control.post("/faults", {"error_count": 0})
    found = await slack.wait_for_messages(lambda m: len(bot_messages(m)) == 2, channel=ALERTS, timeout=10)
    wait_baseline(bot, 2)
    notices = bot_messages(await slack.messages(ALERTS))
    for notice_message in notices:
        assert_valid(notice_message["blocks"])
    texts = [m["text"] for m in notices]
    assert len(texts) == 2 and found, texts
    assert "again" in texts[1].lower() or "reachable" in texts[1].lower(), texts
    assert transitions_in(bot) == before, "a failed poll must not invent transitions"


def transitions_in(bot: BackgroundServe) -> int:
    with sqlite3.connect(bot.settings.services_bot_db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM transitions").fetchone()[0])


async def test_health_turns_503_when_polls_go_stale_and_recovers(bot: BackgroundServe, fleet_control: Control) -> None:
    import httpx

    async with httpx.AsyncClient() as http:
        healthy = await http.get(bot.url + "/healthz")
        assert healthy.status_code == 200 and healthy.json()["watcher"]["last_poll_age_seconds"] < 5
        fleet_control.faults(error_status=503, error_count=100_000)
        deadline = time.monotonic() + 15
        while (stale := await http.get(bot.url + "/healthz")).status_code == 200:
            assert time.monotonic() < deadline, "health never noticed the stale watcher"
            await asyncio.sleep(0.2)
        assert stale.status_code == 503 and "no successful poll" in stale.json()["problems"][0]
        fleet_control.post("/faults", {"error_count": 0})
        deadline = time.monotonic() + 10
        while (await http.get(bot.url + "/healthz")).status_code != 200:
            assert time.monotonic() < deadline, "health did not recover"
            await asyncio.sleep(0.2)


def _serve_process(
    fleet: EmulatorServer, workspace_server: WorkspaceServer, db: Path, **more_env: str
) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELARTS_", "HUAWEICLOUD_", "SLACK_"))}
    env.update(
        MODELARTS_ENDPOINT=fleet.url,
        MODELARTS_PROJECT_ID=fleet.settings.project_id,
        MODELARTS_AUTH_TOKEN=fleet.settings.token,
        SLACK_BOT_TOKEN=workspace_server.settings.bot_token,
        SLACK_SIGNING_SECRET=workspace_server.settings.signing_secret,
        SLACK_API_URL=workspace_server.api_url,
        SERVICES_BOT_PORT="0",
        SERVICES_BOT_DB=str(db),
        SERVICES_BOT_POLL_SECONDS=str(POLL),
        SERVICES_BOT_ALERT_CHANNEL=ALERTS,
        **more_env,
    )
    return subprocess.Popen(
        [sys.executable, "-m", "services_bot.cli", "serve", "--no-mcp"],
        env=env, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _outbox_states(db: Path) -> list[str]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        try:
            return [row[0] for row in conn.execute("SELECT state FROM outbox ORDER BY id")]
        except sqlite3.OperationalError:
            return []


async def _until(check: Any, what: str, timeout: float = 15) -> None:  # noqa: ASYNC109 - names what it waited for
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def _baselined(db: Path) -> bool:
    if not db.exists():
        return False
    with sqlite3.connect(db) as conn:
        try:
            return bool(conn.execute("SELECT baselined_ms FROM targets").fetchone())
        except sqlite3.OperationalError:
            return False


async def test_a_killed_process_posts_nothing_twice_and_loses_nothing(
    fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer, slack: WorkspaceClient,
    tmp_path: Path,
) -> None:  # fmt: skip
    db = tmp_path / "store.db"
    first_svc, second_svc = service(fleet_control, "kill-a"), service(fleet_control, "kill-b")
    proc = _serve_process(fleet, workspace_server, db)
    try:
        await _until(lambda: _baselined(db), "the baseline")
        await slack.set_fault("chat.postMessage", latency=1.0)
        fleet_control.set_status(first_svc["service_id"], "failed", "a broke")
        calls: list[dict[str, Any]] = []

        async def posting() -> bool:
            calls[:] = await slack.calls("chat.postMessage")
            return bool(calls)

        deadline = time.monotonic() + 10
        while not await posting():
            assert time.monotonic() < deadline, "the alert was never sent"
            await asyncio.sleep(0.02)
        proc.kill()  # SIGKILL while Slack is still handling the post
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    await slack.wait_for_messages(lambda m: bot_messages(m), channel=ALERTS, timeout=5)  # Slack did take it
    assert _outbox_states(db) == ["in_flight"]
    await slack.clear_faults()
    fleet_control.set_status(second_svc["service_id"], "failed", "b broke while the bot was down")
    proc = _serve_process(fleet, workspace_server, db)
    try:
        await _until(lambda: _outbox_states(db) == ["done", "done"], "both alerts delivered")
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=15)
    texts = sorted(m["text"].split(":")[0] for m in bot_messages(await slack.messages(ALERTS)))
    assert texts == ["kill-a", "kill-b"], "kill-a found by its metadata, not posted again; kill-b not lost"
    assert "Traceback" not in err
