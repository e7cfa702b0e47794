"""Who may see and change what, end to end: a targets file binds #team-a to one project and #team-b to another
(and an MCP token to team-a); admins are a Slack user group (read through ``usergroups.users.list`` at the
stand-in) and a target's own admins. A bound channel sees only its targets by command, button, subscription and
alert; a button value forged to act on another channel or target is refused and changes nothing; an MCP token
sees only its projects; only admins watch, unwatch, mute long and read the audit; bad ids and durations in the
targets file stop the start with the line named.

Two emulators stand for the two projects; the bot is ``serve`` with its watcher, driven from the Slack stand-in
with signed commands and clicks; MCP through the SDK's own client."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from services_bot.core.config import Settings
from services_bot.core.errors import ConfigError, ServicesBotError
from services_bot.emulator import EmulatorServer, EmulatorSettings
from services_bot.workspace import WorkspaceClient, WorkspaceServer, WorkspaceSettings
from services_bot.workspace.settings import ChannelSpec, UserSpec
from slack_sdk.web.async_client import AsyncWebClient

from services_bot.serve import BackgroundServe
from tests.conftest import Control, slack_settings
from tests.test_slack_views import assert_valid, mrkdwn_texts

TEAM_A, TEAM_B, GENERAL = "C0TEAMA", "C0TEAMB", "C0GENERAL"
ALICE, ADMIN, LEAD = "U0ALICE", "U0ADMIN", "U0BLEAD"
ONCALL = "S0ONCALL"
A_TOKEN, MAIN_TOKEN = "team-a-token-0123456789", "main-token-0123456789abcdef"
POLL = 0.3


@pytest.fixture(scope="module")
def project_a() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorSettings(port=0, services=0, workspaces=0, seed=21, churn=0)) as server:
        yield server


@pytest.fixture(scope="module")
def project_b() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorSettings(port=0, services=0, workspaces=0, seed=22, churn=0)) as server:
        yield server


@pytest.fixture
def fleets(project_a: EmulatorServer, project_b: EmulatorServer) -> Iterator[tuple[Control, Control]]:
    a, b = Control(project_a.url), Control(project_b.url)
    a.reset(services=0, seed=21)
    b.reset(services=0, seed=22)
    yield a, b
    a.http.close()
    b.http.close()


@pytest.fixture(scope="module")
def teams() -> Iterator[WorkspaceServer]:
    users = [UserSpec(id=ALICE, name="alice"), UserSpec(id=ADMIN, name="admin"), UserSpec(id=LEAD, name="lead")]
    channels = [ChannelSpec(id=c, name=n) for c, n in ((TEAM_A, "team-a"), (TEAM_B, "team-b"), (GENERAL, "general"))]
    settings = WorkspaceSettings(users=users, channels=channels, usergroups={ONCALL: [ADMIN]})
    with WorkspaceServer(settings) as server:
        yield server


def targets_file(folder: Path, a: EmulatorServer, b: EmulatorServer) -> Path:
    path = folder / "targets.toml"
    path.write_text(
        f'[[targets]]\nname = "team-a"\nendpoint = "{a.url}"\nproject_id = "emulator-project"\n'
        f'channels = ["{TEAM_A}"]\nmcp_tokens = ["{A_TOKEN}"]\n\n'
        f'[[targets]]\nname = "team-b"\nendpoint = "{b.url}"\nproject_id = "emulator-project"\n'
        f'channels = ["{TEAM_B}"]\nadmins = ["{LEAD}"]\nmute_limit = "4h"\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture
def bot(
    project_a: EmulatorServer,
    project_b: EmulatorServer,
    fleets: tuple[Control, Control],
    teams: WorkspaceServer,
    tmp_path: Path,
) -> Iterator[BackgroundServe]:
    settings = slack_settings(
        project_a,
        teams,
        services_bot_config=targets_file(tmp_path, project_a, project_b),
        services_bot_db=tmp_path / "store.db",
        services_bot_poll_seconds=POLL,
        services_bot_admins=ONCALL,
        services_bot_mcp_token=MAIN_TOKEN,
        services_bot_max_retries=0,
    )
    with BackgroundServe(settings, mcp=True) as running:
        wait_polls(running)
        yield running


@pytest.fixture
async def slack(teams: WorkspaceServer, bot: BackgroundServe) -> AsyncIterator[WorkspaceClient]:
    async with WorkspaceClient(teams.url) as client:
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


def private(messages: list[dict[str, Any]], user: str) -> list[dict[str, Any]]:
    return [m for m in messages if m["ephemeral"] and m.get("visible_to") == user]


def posted(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["user"] == "U0BOT" and not m["ephemeral"]]


def alerts(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in posted(messages) if (m.get("metadata") or {}).get("event_type", "").startswith("modelarts")]


async def answer(slack: WorkspaceClient, text: str, channel: str, user: str = ALICE) -> dict[str, Any]:
    """The private answer to a command (the newest one to ``user`` in ``channel``)."""
    before = len(private(await slack.messages(channel), user))
    await slack.command(text, channel, user=user)
    found = await slack.wait_for_messages(lambda m: len(private(m, user)) > before, channel=channel, timeout=10)
    return private(found, user)[-1]


async def said(slack: WorkspaceClient, text: str, channel: str, user: str, expect: str) -> None:
    """Run a command whose answer is posted for the whole channel, and wait for it."""
    await slack.command(text, channel, user=user)
    await slack.wait_for_messages(lambda m: expect in text_of(posted(m)), channel=channel, timeout=10)


async def clicked(slack: WorkspaceClient, message: dict[str, Any], action: str, user: str = ALICE) -> dict[str, Any]:
    """What the clicker was told privately after pressing ``action``."""
    before = len(private(await slack.messages(message["channel"]), user))
    result = await slack.click(message, action, user=user)
    assert result["status"] == 200 and not result["timed_out"], result
    found = await slack.wait_for_messages(lambda m: len(private(m, user)) > before, channel=message["channel"])
    return private(found, user)[-1]


async def forged(teams: WorkspaceServer, channel: str, action: str, value: dict[str, Any]) -> dict[str, Any]:
    """A message in ``channel`` with a button whose value the bot never wrote: Slack signs the click anyway."""
    web = AsyncWebClient(token=teams.settings.bot_token, base_url=teams.api_url)
    button = {"type": "button", "action_id": action, "text": {"type": "plain_text", "text": "Press"},
              "value": json.dumps(value)}  # fmt: skip
    result = await web.chat_postMessage(
        channel=channel, text="forged", blocks=[{"type": "actions", "elements": [button]}]
    )
    return {"ts": result["ts"], "channel": channel}


def rows(bot: BackgroundServe, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(bot.settings.services_bot_db) as conn:
        return list(conn.execute(sql))


def text_of(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False)


# -- seeing -----------------------------------------------------------------------------------------------------


async def test_a_bound_channel_sees_only_its_target_by_command(
    bot: BackgroundServe, fleets: tuple[Control, Control], slack: WorkspaceClient
) -> None:
    a, b = fleets
    a.add(service_name="ocr-a", status="failed", error_msg="a's trouble")
    hidden = b.add(service_name="secret-b", status="failed", error_msg="b's secret error")
    shown = await answer(slack, "show secret-b", TEAM_A)
    assert "'secret-b' is not visible from this channel" in text_of(shown)
    assert "b's secret error" not in text_of(shown) and hidden["service_id"] not in text_of(shown)
    listing = await answer(slack, "failed", TEAM_A)
    assert "ocr-a" in text_of(listing) and "secret-b" not in text_of(listing)
    assert "Target 'team-b' is not visible from this channel" in text_of(
        await answer(slack, "failed target:team-b", TEAM_A)
    )
    summary = await answer(slack, "summary", TEAM_A)
    assert "secret-b" not in text_of(summary) and "1 services" in summary["text"]
    details = await answer(slack, "show secret-b", TEAM_B)
    assert "b's secret error" in text_of(details), "its own channel sees it"
    everything = await answer(slack, "failed", GENERAL)
    assert "ocr-a" in text_of(everything) and "secret-b" in text_of(everything), "unbound: every target by default"


async def test_forged_buttons_for_another_target_or_channel_are_refused_and_change_nothing(
    bot: BackgroundServe, fleets: tuple[Control, Control], slack: WorkspaceClient, teams: WorkspaceServer
) -> None:
    _a, b = fleets
    hidden = b.add(service_name="secret-b", status="running")
    wait_polls(bot, 2)
    await said(slack, "watch failed", TEAM_B, ADMIN, "set this channel")
    b.set_status(hidden["service_id"], "failed", "b's secret error")
    found = await slack.wait_for_messages(lambda m: alerts(m), channel=TEAM_B, timeout=10)
    (b_alert,) = alerts(found)
    b_transition = json.loads(next(e["value"] for blk in b_alert["blocks"] for e in blk.get("elements", [])
                                   if e.get("action_id") == "acknowledge_alert"))["x"]  # fmt: skip
    await said(slack, "mute secret-b 1h", TEAM_B, LEAD, "muted *secret-b*")
    gone = "This button no longer works"
    refusals = [
        ("service_details", {"id": hidden["service_id"], "t": "team-b"}, gone),
        ("mute_service", {"id": hidden["service_id"], "t": "team-b", "n": "x"}, gone),
        ("acknowledge_alert", {"c": TEAM_B, "x": b_transition}, gone),  # another channel
        ("acknowledge_alert", {"c": TEAM_A, "x": b_transition}, gone),  # this channel, another target's alert
        ("acknowledge_alert", {"c": TEAM_A, "x": "1; DROP TABLE audit"}, gone),
        ("unmute_service", {"c": TEAM_B, "t": "team-b", "id": hidden["service_id"]}, gone),
        ("unmute_service", {"c": TEAM_A, "t": "team-b", "id": hidden["service_id"]}, gone),
        ("history_older", {"q": "summary", "o": 5}, gone),
        ("share_in_channel", {"q": "failed", "o": "x"}, gone),
        ("page_next", {"q": "failed", "o": -3}, gone),
        # a share is the command run again in this channel's scope
        ("share_in_channel", {"q": "show secret-b", "o": 0}, "'secret-b' is not visible from this channel"),
    ]
    for action, value, expected in refusals:
        told = await clicked(slack, await forged(teams, TEAM_A, action, value), action)
        assert expected in text_of(told), (action, value, told)
        assert "b's secret error" not in text_of(told)
    assert rows(bot, "SELECT * FROM acknowledgements") == []
    assert [r[0] for r in rows(bot, "SELECT channel FROM mutes")] == [TEAM_B], "the mute is still there, nothing new"
    assert [r[0] for r in rows(bot, "SELECT action FROM audit ORDER BY id")] == ["watch", "mute"]
    unchanged = next(m for m in await slack.messages(TEAM_B) if m["ts"] == b_alert["ts"])
    assert not unchanged["edited"], "the other channel's alert was not touched"
    assert [m["text"] for m in posted(await slack.messages(TEAM_A))] == ["forged"] * len(refusals), "nothing said"


async def test_alerts_reach_only_the_channels_that_may_see_their_target(
    bot: BackgroundServe, fleets: tuple[Control, Control], slack: WorkspaceClient
) -> None:
    a, b = fleets
    ours, theirs = a.add(service_name="ocr-a", status="running"), b.add(service_name="secret-b", status="running")
    wait_polls(bot, 2)
    refused = await answer(slack, "watch failed target:team-b", TEAM_A, user=ADMIN)
    assert "Target 'team-b' is not visible from this channel" in text_of(refused)
    for channel in (TEAM_A, TEAM_B, GENERAL):
        await said(slack, "watch failed", channel, ADMIN, "set this channel")
    a.set_status(ours["service_id"], "failed", "a")
    b.set_status(theirs["service_id"], "failed", "b")
    await slack.wait_for_messages(lambda m: len(alerts(m)) == 2, channel=GENERAL, timeout=10)
    wait_polls(bot, 3)
    seen = {c: sorted(m["metadata"]["event_payload"]["service_name"] for m in alerts(await slack.messages(c)))
            for c in (TEAM_A, TEAM_B)}  # fmt: skip
    assert seen == {TEAM_A: ["ocr-a"], TEAM_B: ["secret-b"]}
    await slack.command("history since:1h", TEAM_A, user=ALICE)
    history = await slack.wait_for_messages(lambda m: "Transitions" in text_of(private(m, ALICE)), channel=TEAM_A)
    assert "ocr-a" in text_of(private(history, ALICE)) and "secret-b" not in text_of(private(history, ALICE))
    told = await answer(slack, "history secret-b", TEAM_A)
    assert "'secret-b' is not visible from this channel" in text_of(told)


# -- changing ---------------------------------------------------------------------------------------------------


async def test_only_admins_watch_unwatch_mute_long_and_read_the_audit(
    bot: BackgroundServe, fleets: tuple[Control, Control], slack: WorkspaceClient
) -> None:
    a, b = fleets
    a.add(service_name="ocr-a", status="running")
    b.add(service_name="secret-b", status="running")
    wait_polls(bot, 2)
    refused = await answer(slack, "watch failed", TEAM_A)
    assert "Only admins may change what this channel watches" in text_of(refused)
    assert f"<!subteam^{ONCALL}>" in text_of(refused), "it says who may"
    assert rows(bot, "SELECT * FROM subscriptions") == [], "nothing was stored for the refused watch"
    await slack.command("watch failed", TEAM_A, user=ADMIN)  # a member of the group
    await slack.wait_for_messages(lambda m: "set this channel" in text_of(posted(m)), channel=TEAM_A)
    assert "Only admins" in text_of(await answer(slack, "unwatch 1", TEAM_A))
    long = await answer(slack, "mute ocr-a 2d", TEAM_A)
    assert "Only admins may mute for longer than 1d here" in text_of(long)
    await slack.command("mute ocr-a 2h", TEAM_A, user=ALICE)
    await slack.wait_for_messages(lambda m: "muted *ocr-a*" in text_of(posted(m)), channel=TEAM_A)
    assert "longer than 4h" in text_of(await answer(slack, "mute secret-b 5h", TEAM_B)), "team-b's own limit"
    await slack.command("mute secret-b 5h", TEAM_B, user=LEAD)  # team-b's own admin
    await slack.wait_for_messages(lambda m: "muted *secret-b*" in text_of(posted(m)), channel=TEAM_B)
    assert "Only admins may read the audit trail" in text_of(await answer(slack, "audit", TEAM_A))
    audit = await answer(slack, "audit since:1d", GENERAL, user=ADMIN)
    assert_valid(audit["blocks"])
    lines = "\n".join(mrkdwn_texts(audit["blocks"]))
    assert f"<@{ADMIN}> watch *failed, error*" in lines and f"in <#{TEAM_A}>" in lines
    assert f"<@{ALICE}> mute *ocr-a for 2h*" in lines and f"<@{LEAD}> mute *secret-b for 5h*" in lines
    assert "3 actions" in audit["text"]


# -- MCP tokens -------------------------------------------------------------------------------------------------


async def test_an_mcp_token_sees_only_its_targets(bot: BackgroundServe, fleets: tuple[Control, Control]) -> None:
    a, b = fleets
    a.add(service_name="ocr-a", status="failed")
    b.add(service_name="secret-b", status="failed", error_msg="b's secret error")

    def client(token: str) -> Client:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
        return Client(streamable_http_client(bot.url + "/mcp", http_client=http))

    async with client(A_TOKEN) as agent:
        listed = await agent.call_tool("list_services", {})
        names = [s["service_name"] for s in listed.structured_content["services"]]  # type: ignore[index]
        assert names == ["ocr-a"]
        hidden = await agent.call_tool("get_service", {"service": "secret-b"})
        assert hidden.is_error and "not visible from this MCP token" in hidden.content[0].text  # type: ignore[union-attr]
        assert "b's secret error" not in hidden.content[0].text  # type: ignore[union-attr]
    async with client(MAIN_TOKEN) as agent:
        listed = await agent.call_tool("list_services", {})
        assert sorted(s["service_name"] for s in listed.structured_content["services"]) == ["ocr-a", "secret-b"]  # type: ignore[index]
    async with httpx.AsyncClient(timeout=10) as http:
        for headers in ({"Authorization": "Bearer not-a-token"}, {}):
            assert (await http.post(bot.url + "/mcp", json={}, headers=headers)).status_code == 401


async def test_a_channel_no_target_binds_sees_nothing_when_the_default_is_none(
    project_a: EmulatorServer, project_b: EmulatorServer, teams: WorkspaceServer, tmp_path: Path
) -> None:
    settings = slack_settings(
        project_a,
        teams,
        services_bot_config=targets_file(tmp_path, project_a, project_b),
        services_bot_channel_default="none",
    )
    with BackgroundServe(settings, watch=False, mcp=False) as running:
        async with WorkspaceClient(teams.url) as slack:
            await slack.reset()
            await slack.set_app_url(running.url + "/slack/events")
            told = await answer(slack, "failed", GENERAL)
            assert "No target is visible from this channel" in text_of(told)


# -- the targets file -------------------------------------------------------------------------------------------

HEAD = '[[targets]]\nname = "a"\nendpoint = "http://127.0.0.1:9"\nproject_id = "p"\n'


@pytest.mark.parametrize(
    ("body", "line", "fragment"),
    [
        (HEAD + 'channels = ["C0OK", "#alerts"]\n', 5, "'#alerts' in `channels` is not a Slack channel id"),
        (HEAD + 'channels = [\n  "C0OK",\n  "alerts",\n]\n', 7, "'alerts' in `channels`"),
        (HEAD + 'admins = ["@alice"]\n', 5, "'@alice' in `admins` is not a Slack user id"),
        (HEAD + 'mute_limit = "forever"\n', 5, "`mute_limit` = 'forever' is not a duration"),
        (HEAD + 'mute_limit = "90d"\n', 5, "at most 30 days"),
        (HEAD + "\n" + HEAD + 'channels = "C0OK"\n', 10, "`channels` must be a list"),
        (HEAD + 'mcp_tokens = ["short"]\n', 5, "at least 16 characters"),
    ],
)
def test_bad_ids_and_durations_in_the_targets_file_name_the_line(
    tmp_path: Path, body: str, line: int, fragment: str
) -> None:
    path = tmp_path / "targets.toml"
    path.write_text(body, encoding="utf-8")
    settings = Settings(_env_file=None, services_bot_config=path, modelarts_auth_token="t")  # type: ignore[call-arg]
    with pytest.raises(ConfigError) as caught:
        settings.targets()
    assert f"{path}, line {line}:" in caught.value.message and fragment in caught.value.message, caught.value.message


def test_bad_admin_ids_in_the_settings_stop_the_start(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, services_bot_admins="U0OK, @alice")  # type: ignore[call-arg]
    with pytest.raises(ServicesBotError, match="SERVICES_BOT_ADMINS: '@alice' is not a Slack user id"):
        settings.admin_ids()
    assert Settings(_env_file=None, services_bot_admins=" U0OK,S0GROUP ").admin_ids() == ["U0OK", "S0GROUP"]  # type: ignore[call-arg]
