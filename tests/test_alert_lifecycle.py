"""The alert lifecycle as a team lives it, end to end: mute and unmute (by command, from the mute's note and from
the list), a mute's end told in the service's thread, Acknowledge on an alert (shown on it, in ``history``, in MCP
``list_transitions`` and in the metadata of the update), a first alert that always tells its thread's state
with live ``<!date^…>`` times, grouped alerts that lead with their causes, Share on ``show`` and ``summary``, and
a ``history`` that names an unknown service, says how many more there are and orders by the change's time.

The emulator flips statuses over its control API, ``serve``'s watcher sees it, and everything is read back from
the Slack stand-in, where two people (alice and bob) type commands and press buttons with signed requests."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from services_bot.emulator import EmulatorServer, EmulatorSettings
from services_bot.workspace import WorkspaceClient, WorkspaceServer, WorkspaceSettings
from services_bot.workspace.settings import UserSpec

from services_bot.serve import BackgroundServe
from tests.conftest import Control, slack_settings
from tests.test_slack_views import assert_valid, mrkdwn_texts

ALERTS, GENERAL = "C0ALERTS", "C0GENERAL"
ALICE, BOB = "U0ALICE", "U0BOB"
POLL = 0.3
DATE = re.compile(r"<!date\^(\d+)\^\{date_short_pretty\} \{time\}\|(\d{4}-\d\d-\d\d \d\d:\d\d) UTC>")


@pytest.fixture(scope="module")
def fleet() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorSettings(port=0, services=10, workspaces=0, seed=16, churn=0)) as server:
        yield server


@pytest.fixture
def fleet_control(fleet: EmulatorServer) -> Iterator[Control]:
    ctl = Control(fleet.url)
    ctl.reset(services=10, seed=16)
    yield ctl
    ctl.http.close()


@pytest.fixture(scope="module")
def team() -> Iterator[WorkspaceServer]:
    users = [UserSpec(id=ALICE, name="alice"), UserSpec(id=BOB, name="bob")]
    with WorkspaceServer(WorkspaceSettings(users=users)) as server:
        yield server


@pytest.fixture
def bot(
    fleet: EmulatorServer, fleet_control: Control, team: WorkspaceServer, tmp_path: Path
) -> Iterator[BackgroundServe]:
    settings = slack_settings(
        fleet,
        team,
        services_bot_db=tmp_path / "store.db",
        services_bot_poll_seconds=POLL,
        services_bot_alert_channel=ALERTS,
        services_bot_group_threshold=3,
        services_bot_max_retries=0,
    )
    with BackgroundServe(settings, mcp=True) as running:
        wait_polls(running)
        yield running


@pytest.fixture
async def slack(team: WorkspaceServer, bot: BackgroundServe) -> AsyncIterator[WorkspaceClient]:
    async with WorkspaceClient(team.url) as client:
        await client.reset()
        await client.set_app_url(bot.url + "/slack/events")
        yield client


def wait_polls(bot: BackgroundServe, polls: int = 1, timeout: float = 10) -> None:
    watcher = bot.runtime.watcher
    assert watcher is not None
    deadline, start = time.monotonic() + timeout, watcher.polls
    while watcher.polls < start + polls or watcher.last_success_at is None:
        assert time.monotonic() < deadline, "the watcher did not poll"
        time.sleep(0.02)


def posted(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["user"] == "U0BOT" and not m["ephemeral"]]


def roots(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in posted(messages) if not m.get("thread_ts") or m["thread_ts"] == m["ts"]]


def private(messages: list[dict[str, Any]], user: str) -> list[dict[str, Any]]:
    return [m for m in messages if m["ephemeral"] and m.get("visible_to") == user]


def shown(message: dict[str, Any]) -> str:
    return "\n".join(mrkdwn_texts(message.get("blocks") or []))


def buttons(message: dict[str, Any]) -> dict[str, str]:
    """action_id → value of every button on a message."""
    found: dict[str, str] = {}
    for block in message.get("blocks") or []:
        for element in [*block.get("elements", []), *([block["accessory"]] if "accessory" in block else [])]:
            if element.get("type") == "button":
                found[element["action_id"]] = element.get("value", "")
    return found


def alerts_of(messages: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """First alerts (not notes, not replies) of the service ``name``."""
    return [
        x
        for x in roots(messages)
        if (x.get("metadata") or {}).get("event_type") == "modelarts_service_status_changed"
        and x["metadata"]["event_payload"]["service_name"] == name
    ]


async def first_alert(slack: WorkspaceClient, name: str, channel: str = ALERTS) -> dict[str, Any]:
    found = await slack.wait_for_messages(lambda m: alerts_of(m, name), channel=channel, timeout=10)
    return alerts_of(found, name)[0]


async def fresh(slack: WorkspaceClient, message: dict[str, Any]) -> dict[str, Any]:
    return next(m for m in await slack.messages(message["channel"]) if m["ts"] == message["ts"])


def store_rows(bot: BackgroundServe, sql: str) -> list[tuple[Any, ...]]:
    import sqlite3

    with sqlite3.connect(bot.settings.services_bot_db) as conn:
        return list(conn.execute(sql))


# -- 1. mute lifecycle ------------------------------------------------------------------------------------------


async def test_a_mute_is_announced_listed_and_undone_from_the_list(
    bot: BackgroundServe, fleet_control: Control, slack: WorkspaceClient
) -> None:
    created = fleet_control.add(service_name="ocr-prod", status="running")
    wait_polls(bot, 2)
    await slack.command("mute ocr-prod 2h", ALERTS, user=ALICE)
    note = await slack.wait_for_messages(lambda m: [x for x in posted(m) if "muted" in x["text"]], channel=ALERTS)
    (said,) = [x for x in posted(note) if "muted" in x["text"]]
    assert f"<@{ALICE}> muted *ocr-prod* in this channel for 2h" in shown(said), "the channel is told, by whom"
    assert "unmute_service" in buttons(said)

    await slack.command("mutes", ALERTS, user=BOB)
    found = await slack.wait_for_messages(lambda m: private(m, BOB), channel=ALERTS)
    listing = private(found, BOB)[-1]
    assert_valid(listing["blocks"])
    assert "*ocr-prod* until <!date^" in shown(listing) and f"by <@{ALICE}>" in shown(listing)
    assert json.loads(buttons(listing)["unmute_service"]) == {"c": ALERTS, "t": "default", "id": created["service_id"]}

    await slack.click(listing, "unmute_service", user=BOB)
    await slack.wait_for_messages(lambda m: [x for x in posted(m) if "unmuted" in x["text"]], channel=ALERTS)
    assert store_rows(bot, "SELECT * FROM mutes") == []
    fleet_control.set_status(created["service_id"], "failed", "OOMKilled")
    alert = await first_alert(slack, "ocr-prod")
    assert "running → failed" in alert["text"], "alerts are back once the mute is lifted"
    await slack.command("mutes", ALERTS, user=BOB)
    found = await slack.wait_for_messages(lambda m: "Nothing is muted" in json.dumps(private(m, BOB)), channel=ALERTS)
    assert found


async def test_unmute_by_command_and_from_the_mute_note(
    bot: BackgroundServe, fleet_control: Control, slack: WorkspaceClient
) -> None:
    fleet_control.add(service_name="asr-zh", status="running")
    wait_polls(bot, 2)
    ack = await slack.command("unmute asr-zh", ALERTS, user=ALICE)
    assert "Did you mean 'mute'" not in json.dumps(ack["ack_body"])
    found = await slack.wait_for_messages(lambda m: private(m, ALICE), channel=ALERTS)
    assert "'asr-zh' is not muted in this channel" in json.dumps(private(found, ALICE)[-1])

    await slack.command("mute asr-zh 30m", ALERTS, user=ALICE)
    await slack.wait_for_messages(lambda m: [x for x in posted(m) if "muted" in x["text"]], channel=ALERTS)
    await slack.command("unmute asr-zh", ALERTS, user=BOB)
    found = await slack.wait_for_messages(lambda m: [x for x in posted(m) if "unmuted" in x["text"]], channel=ALERTS)
    assert f"<@{BOB}> unmuted *asr-zh*" in shown([x for x in posted(found) if "unmuted" in x["text"]][-1])

    await slack.command("mute asr-zh 30m", ALERTS, user=ALICE)
    notes = await slack.wait_for_messages(
        lambda m: len([x for x in posted(m) if " muted" in x["text"]]) == 2, channel=ALERTS
    )
    second = [x for x in posted(notes) if " muted" in x["text"]][-1]
    await slack.click(second, "unmute_service", user=BOB)
    await slack.wait_for_messages(lambda m: len([x for x in posted(m) if "unmuted" in x["text"]]) == 2, channel=ALERTS)
    assert store_rows(bot, "SELECT * FROM mutes") == []
    await slack.click(second, "unmute_service", user=BOB)  # the mute is gone: a stale button says so
    found = await slack.wait_for_messages(lambda m: "no longer works" in json.dumps(private(m, BOB)), channel=ALERTS)
    assert len([x for x in posted(found) if "unmuted" in x["text"]]) == 2, "and changes nothing"
    actions = [r[0] for r in store_rows(bot, "SELECT action FROM audit ORDER BY id")]
    assert actions == ["mute", "unmute", "mute", "unmute"]


async def test_a_mute_that_ends_says_so_in_the_service_thread(
    bot: BackgroundServe, fleet_control: Control, slack: WorkspaceClient
) -> None:
    created = fleet_control.add(service_name="ranker-v3", status="running")
    wait_polls(bot, 2)
    fleet_control.set_status(created["service_id"], "failed", "boom")
    root = await first_alert(slack, "ranker-v3")
    await slack.command("mute ranker-v3 2s", ALERTS, user=ALICE)
    found = await slack.wait_for_messages(
        lambda m: [x for x in posted(m) if x.get("thread_ts") == root["ts"] and "ended" in x["text"]],
        channel=ALERTS,
        timeout=10,
    )
    (ended,) = [x for x in posted(found) if x.get("thread_ts") == root["ts"] and "ended" in x["text"]]
    assert "The mute of *ranker-v3* ended" in shown(ended)
    assert store_rows(bot, "SELECT * FROM mutes") == []
    wait_polls(bot, 3)
    assert len([x for x in posted(await slack.messages(ALERTS)) if "ended" in x["text"]]) == 1, "announced once"


# -- 2. acknowledge ---------------------------------------------------------------------------------------------


async def test_acknowledge_shows_who_and_when_everywhere(
    bot: BackgroundServe, fleet_control: Control, slack: WorkspaceClient
) -> None:
    created = fleet_control.add(service_name="ocr-invoice", status="running")
    wait_polls(bot, 2)
    fleet_control.set_status(created["service_id"], "failed", "CUDA out of memory")
    alert = await first_alert(slack, "ocr-invoice")
    assert "acknowledge_alert" in buttons(alert)
    await slack.click(alert, "acknowledge_alert", user=ALICE)
    await slack.wait_for_messages(
        lambda m: any(x["ts"] == alert["ts"] and "Acknowledged by" in shown(x) for x in m), channel=ALERTS
    )
    await slack.click(alert, "acknowledge_alert", user=BOB)
    found = await slack.wait_for_messages(
        lambda m: any(x["ts"] == alert["ts"] and f"<@{BOB}>" in shown(x) for x in m), channel=ALERTS
    )
    updated = next(x for x in found if x["ts"] == alert["ts"])
    assert_valid(updated["blocks"])
    line = next(t for t in mrkdwn_texts(updated["blocks"]) if "Acknowledged by" in t)
    assert line.index(f"<@{ALICE}>") < line.index(f"<@{BOB}>") and len(DATE.findall(line)) == 2, line
    assert updated["metadata"]["event_payload"]["acknowledged_by"] == f"{ALICE},{BOB}"
    assert updated["metadata"]["event_payload"]["service_id"] == created["service_id"]
    assert not private(await slack.messages(ALERTS), ALICE), "the alert itself is the answer: nothing private"

    await slack.command("history ocr-invoice since:1h", GENERAL, user=ALICE)
    history = await slack.wait_for_messages(lambda m: private(m, ALICE), channel=GENERAL)
    assert f"acknowledged by <@{ALICE}>, <@{BOB}>" in shown(private(history, ALICE)[-1])
    async with Client(streamable_http_client(bot.url + "/mcp", http_client=httpx2.AsyncClient())) as client:
        arguments = {"since": "1h", "service": "ocr-invoice", "to_status": ["failed"]}
        result = await client.call_tool("list_transitions", arguments)
    (row,) = result.structured_content["transitions"]  # type: ignore[index]
    assert [a["user"] for a in row["acknowledged_by"]] == [ALICE, BOB]
    assert {a["channel"] for a in row["acknowledged_by"]} == {ALERTS}
    assert [r[0] for r in store_rows(bot, "SELECT user FROM audit WHERE action = 'acknowledge'")] == [ALICE, BOB]


# -- 3. the first alert tells the truth ---------------------------------------------------------------------------


async def test_the_first_alert_follows_its_thread_resolved_then_relapsed(
    bot: BackgroundServe, fleet_control: Control, slack: WorkspaceClient
) -> None:
    created = fleet_control.add(service_name="fraud-scorer", status="running")
    wait_polls(bot, 2)
    sid = created["service_id"]
    fleet_control.set_status(sid, "failed", "OOMKilled")
    root = await first_alert(slack, "fraud-scorer")
    fleet_control.set_status(sid, "running")
    await slack.wait_for_messages(lambda m: any(x["ts"] == root["ts"] and x["edited"] for x in m), channel=ALERTS)
    resolved = await fresh(slack, root)
    assert resolved["text"].startswith("Resolved: ") and "*Resolved*: running again since <!date^" in shown(resolved)
    assert "mute_service" not in buttons(resolved)
    (epoch, fallback), *_ = DATE.findall(shown(resolved))
    assert datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%d %H:%M") == fallback, "the fallback is right"
    assert "ago)" not in shown(resolved), "no frozen relative time in an edited message"

    fleet_control.set_status(sid, "failed", "OOMKilled again")
    await slack.wait_for_messages(
        lambda m: any(x["ts"] == root["ts"] and x["text"].startswith("Relapsed") for x in m), channel=ALERTS
    )
    relapsed = await fresh(slack, root)
    assert "*Relapsed*: running → *failed* at <!date^" in shown(relapsed) and "Resolved" not in shown(relapsed)
    assert relapsed["metadata"]["event_payload"]["thread_state"] == "relapsed"
    assert "mute_service" in buttons(relapsed)
    replies = [x for x in posted(await slack.messages(ALERTS)) if x.get("thread_ts") == root["ts"] and x is not root]
    assert len([x for x in replies if x["ts"] != root["ts"]]) == 2

    # acknowledging the relapse, in the thread, shows on the first message too
    relapse = [x for x in replies if x["ts"] != root["ts"]][-1]
    await slack.click(relapse, "acknowledge_alert", user=BOB)
    await slack.wait_for_messages(
        lambda m: any(x["ts"] == root["ts"] and f"<@{BOB}>" in shown(x) for x in m), channel=ALERTS
    )
    assert f"Acknowledged by <@{BOB}>" in shown(await fresh(slack, root))
    assert f"Acknowledged by <@{BOB}>" in shown(await fresh(slack, relapse))


# -- 4. grouped alerts lead with the cause ------------------------------------------------------------------------


async def test_a_grouped_alert_lists_the_shared_cause_first(
    bot: BackgroundServe, fleet_control: Control, slack: WorkspaceClient
) -> None:
    oom = [fleet_control.add(service_name=f"ocr-{c}", status="running") for c in "abcdefgh"]
    other = fleet_control.add(service_name="asr-en", status="running")
    wait_polls(bot, 2)
    changes = [{"service_id": s["service_id"], "status": "failed", "error_msg": "OOMKilled"} for s in oom]
    changes.append({"service_id": other["service_id"], "status": "failed", "error_msg": "ImagePullBackOff"})
    fleet_control.post("/statuses", {"changes": changes})
    found = await slack.wait_for_messages(lambda m: posted(m), channel=ALERTS, timeout=10)
    (grouped,) = posted(found)
    assert_valid(grouped["blocks"])
    sections = [b["text"]["text"] for b in grouped["blocks"] if b["type"] == "section"]
    assert sections[0].splitlines() == [
        ":red_circle: *8 failed*: OOMKilled (ocr-a, ocr-b, ocr-c, … +5)",
        ":red_circle: *1 failed*: ImagePullBackOff (asr-en)",
    ], "the causes come first"
    assert "• *ocr-" in sections[1], "then the services one by one"
    assert grouped["text"].startswith("9 services changed state: 8 failed: OOMKilled")

    await slack.click(grouped, "acknowledge_alert", user=ALICE)
    await slack.wait_for_messages(
        lambda m: any(x["ts"] == grouped["ts"] and "Acknowledged by" in shown(x) for x in m), channel=ALERTS
    )
    assert len(store_rows(bot, "SELECT * FROM acknowledgements")) == 9, "each transition of the burst"


async def test_a_huge_burst_of_distinct_causes_stays_within_slack_limits(
    bot: BackgroundServe, fleet_control: Control, slack: WorkspaceClient
) -> None:
    created = [fleet_control.add(service_name=f"svc-{i:02d}-" + "x" * 50, status="running") for i in range(40)]
    wait_polls(bot, 2)
    changes = [
        {"service_id": s["service_id"], "status": "failed", "error_msg": f"cause {i} <!here> " + "y" * 400}
        for i, s in enumerate(created)
    ]
    fleet_control.post("/statuses", {"changes": changes})
    found = await slack.wait_for_messages(lambda m: posted(m), channel=ALERTS, timeout=15)
    (grouped,) = posted(found)
    assert_valid(grouped["blocks"])
    assert all(len(t) <= 3000 for t in mrkdwn_texts(grouped["blocks"])) and "<!here>" not in json.dumps(grouped)
    causes = next(b["text"]["text"] for b in grouped["blocks"] if b["type"] == "section").splitlines()
    assert len(causes) == 9, "eight causes, then how many more"
    counted = sum(int(re.search(r"\*(\d+) failed\*", line).group(1)) for line in causes[:8])  # type: ignore[union-attr]
    more = re.fullmatch(r"… (\d+) more causes \((\d+) services\)", causes[8])
    assert more is not None and counted + int(more.group(2)) == 40, causes


# -- 5. share show and summary ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["show ocr-share", "summary"])
async def test_show_and_summary_answers_can_be_shared(
    command: str, bot: BackgroundServe, fleet_control: Control, slack: WorkspaceClient
) -> None:
    fleet_control.add(service_name="ocr-share", status="failed")
    await slack.command(command, GENERAL, user=ALICE)
    found = await slack.wait_for_messages(lambda m: private(m, ALICE), channel=GENERAL, timeout=10)
    answer = private(found, ALICE)[-1]
    assert "share_in_channel" in buttons(answer)
    await slack.click(answer, "share_in_channel", user=ALICE)
    found = await slack.wait_for_messages(lambda m: posted(m), channel=GENERAL, timeout=10)
    (shared,) = posted(found)
    assert_valid(shared["blocks"])
    assert f"Shared by <@{ALICE}> · `/services {command}`" in shown(shared)
    assert "share_in_channel" not in buttons(shared)
    assert ("ocr-share" in shared["text"]) if command.startswith("show") else ("unhealthy" in shared["text"])
    await slack.wait_for_messages(lambda m: not private(m, ALICE), channel=GENERAL)


# -- 6. history -------------------------------------------------------------------------------------------------


async def test_history_names_an_unknown_service_with_a_suggestion(
    bot: BackgroundServe, fleet_control: Control, slack: WorkspaceClient
) -> None:
    created = fleet_control.add(service_name="speech-to-text", status="running")
    wait_polls(bot, 2)
    fleet_control.set_status(created["service_id"], "failed", "x")
    await first_alert(slack, "speech-to-text")
    await slack.command("history speech-to-txt", GENERAL, user=ALICE)
    found = await slack.wait_for_messages(lambda m: private(m, ALICE), channel=GENERAL)
    text = json.dumps(private(found, ALICE)[-1])
    assert "There is no service named 'speech-to-txt'. Did you mean 'speech-to-text'?" in text, text
    await slack.command("history speech-to-text", GENERAL, user=BOB)
    found = await slack.wait_for_messages(lambda m: private(m, BOB), channel=GENERAL)
    assert "failed · *" in shown(private(found, BOB)[-1]) and "(was running)" in shown(private(found, BOB)[-1])


async def test_history_past_its_limit_says_how_many_more_and_shows_them_in_change_order(
    bot: BackgroundServe, fleet_control: Control, slack: WorkspaceClient
) -> None:
    created = [fleet_control.add(service_name=f"flappy-{i:02d}", status="running") for i in range(30)]
    wait_polls(bot, 2)
    fleet_control.post(
        "/statuses", {"changes": [{"service_id": s["service_id"], "status": "stopped"} for s in created]}
    )
    wait_polls(bot, 3)
    total = store_rows(bot, "SELECT COUNT(*) FROM transitions")[0][0]
    assert total == 60, "each appeared, then stopped"
    await slack.command("history since:1h", GENERAL, user=ALICE)
    found = await slack.wait_for_messages(lambda m: private(m, ALICE), channel=GENERAL)
    first = private(found, ALICE)[-1]
    assert_valid(first["blocks"])
    assert "(1–50 of 60)" in first["text"] and "50 shown · 10 more, older: press Older" in shown(first)
    await slack.click(first, "history_older", user=ALICE)
    found = await slack.wait_for_messages(
        lambda m: "51–60 of 60" in json.dumps(private(m, ALICE), ensure_ascii=False), channel=GENERAL, timeout=10
    )
    second = next(m for m in private(found, ALICE) if "51–60 of 60" in m["text"])
    assert "history_older" not in buttons(second) and "more, older" not in shown(second)
    lines = [line for line in (shown(first) + "\n" + shown(second)).splitlines() if "*flappy-" in line]
    seen = [(re.search(r"\*(flappy-\d\d)\*", line).group(1), "stopped" in line) for line in lines]  # type: ignore[union-attr]
    expected = store_rows(
        bot,
        "SELECT service_name, to_status = 'stopped' FROM transitions "
        "ORDER BY COALESCE(transition_ms, observed_ms) DESC, id DESC",
    )
    assert seen == [(name, bool(stopped)) for name, stopped in expected], "newest change first, each once"
