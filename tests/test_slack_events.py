"""Why it failed, in Slack: ``show`` of a failed service with its abnormal events, the Timeline button, the
``events`` and ``load`` commands and the Open in console link, end to end (signed commands and clicks at the
local workspace, answers from the emulator over loopback, every message checked against Block Kit)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from services_bot.emulator import EmulatorServer
from services_bot.workspace import WorkspaceClient, WorkspaceServer

from services_bot.serve import BackgroundServe
from tests.conftest import Control, slack_settings
from tests.test_slack_app import GENERAL, answers, ask, button, dumps, text_of
from tests.test_slack_views import assert_valid, mrkdwn_texts


async def test_show_of_a_failed_service_has_its_abnormal_events_and_a_timeline(
    workspace: WorkspaceClient, control: Control
) -> None:
    control.add(service_name="ocr-why", status="failed", error_msg="insufficient resources in pool")
    reply = await ask(workspace, "show ocr-why")
    text = text_of(reply)
    assert "*Latest abnormal events*" in text and "model start failed: insufficient resources in pool" in text
    assert "Last update:" in text and "*fail*" in text
    assert "<!date^" in text  # the events carry their times
    timeline = button(reply, "service_timeline")
    await workspace.click(reply, "service_timeline", timeline["value"])
    found = await workspace.wait_for_messages(lambda m: len(answers(m)) == 2, channel=GENERAL)
    shown = answers(found)[-1]
    assert_valid(shown["blocks"])
    assert "start to deploy service" in text_of(shown) and "event(s) and update(s)" in shown["text"]


async def test_show_of_a_running_service_adds_no_events(workspace: WorkspaceClient, control: Control) -> None:
    control.add(service_name="ocr-fine", status="running")
    reply = await ask(workspace, "show ocr-fine")
    assert "Latest abnormal events" not in text_of(reply)
    button(reply, "service_timeline")  # the Timeline is there for every service


async def test_events_and_load_commands(workspace: WorkspaceClient, control: Control) -> None:
    control.add(service_name="asr-wobbly", status="concerning")
    events = await ask(workspace, "events asr-wobbly type:abnormal since:1d")
    assert "1 instance not ready" in text_of(events) and "start to deploy service" not in text_of(events)
    load = await ask(workspace, "load asr-wobbly")
    assert "instances down" in text_of(load) and "running" in load["text"]


async def test_bad_events_arguments_are_named_in_the_ack(workspace: WorkspaceClient, control: Control) -> None:
    ack = await workspace.command("events asr since:soon", GENERAL)
    assert "not a duration" in dumps(ack)
    control.add(service_name="asr-known", status="running")
    reply = await ask(workspace, "events asr-knwn")
    assert "Did you mean 'asr-known'" in reply["text"]


async def test_hostile_event_text_pings_no_one(workspace: WorkspaceClient, control: Control) -> None:
    control.add(service_name="evil-events", status="failed", error_msg="<!channel> <https://evil.example|x> & <@U1>")
    for command in ("show evil-events", "events evil-events"):
        reply = await ask(workspace, command)
        rendered = "\n".join(mrkdwn_texts(reply["blocks"])) + reply["text"]
        assert "&lt;!channel&gt;" in rendered
        assert "<!channel>" not in rendered and "<https://evil" not in rendered and "<@U1>" not in rendered


@pytest.fixture(scope="module")
def regional_bot(emulator_server: EmulatorServer, workspace_server: WorkspaceServer) -> Iterator[BackgroundServe]:
    """A bot whose target has a region (the endpoint still the emulator's), and a console host of another cloud."""
    settings = slack_settings(
        emulator_server,
        workspace_server,
        modelarts_region="eu-de",
        services_bot_console_host="console.example-cloud.test",
    )
    with BackgroundServe(settings, watch=False) as bot:
        yield bot


async def test_open_in_console_links_to_the_service_in_its_region(
    workspace_server: WorkspaceServer, regional_bot: BackgroundServe, control: Control
) -> None:
    created = control.add(service_name="ocr-console", status="failed", error_msg="x")
    async with WorkspaceClient(workspace_server.url) as client:
        await client.reset()
        await client.set_app_url(regional_bot.url + "/slack/events")
        reply = await ask(client, "show ocr-console")
        link = button(reply, "open_in_console")
        assert link["url"] == (
            "https://console.example-cloud.test/modelarts/?region=eu-de#/model-deployment/real-time/"
            + created["service_id"]
        )
        clicked = await client.click(reply, "open_in_console")
        assert clicked["status"] == 200
