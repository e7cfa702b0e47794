"""Socket Mode end to end: the stand-in workspace serves ``apps.connections.open`` and a websocket, and
``services-bot serve`` with ``SLACK_APP_TOKEN`` answers commands and clicks that arrive over it, acks them on
the socket, answers through response_urls, reports the connection in ``/healthz`` and reconnects when the
workspace drops it.

The first test speaks the protocol by hand (what the stand-in sends, what it makes of acks); the rest run the
real bot. The workspace is shared with other modules, so the module's bot is stopped at the end and the test
waits until the stand-in has no socket left: with none open, commands go over signed HTTP again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import httpx
import pytest
from services_bot.emulator import EmulatorServer
from services_bot.workspace import WorkspaceClient, WorkspaceServer

from services_bot.serve import BackgroundServe
from tests.conftest import Control, slack_settings
from tests.test_slack_app import answers, button, text_of
from tests.test_slack_views import assert_valid

GENERAL = "C0GENERAL"


async def open_connection(workspace_server: WorkspaceServer, token: str) -> dict[str, Any]:
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.post(
            workspace_server.api_url + "apps.connections.open", headers={"Authorization": f"Bearer {token}"}
        )
    return response.json()  # type: ignore[no-any-return]


async def test_apps_connections_open_wants_the_app_level_token(workspace_server: WorkspaceServer) -> None:
    settings = workspace_server.settings
    assert (await open_connection(workspace_server, settings.bot_token))["error"] == "not_allowed_token_type"
    assert (await open_connection(workspace_server, "xapp-not-valid"))["error"] == "invalid_auth"
    async with httpx.AsyncClient(trust_env=False) as http:
        assert (await http.post(workspace_server.api_url + "apps.connections.open")).json()["error"] == "not_authed"
        wrong_kind = await http.post(
            workspace_server.api_url + "auth.test", headers={"Authorization": f"Bearer {settings.app_token}"}
        )
    assert wrong_kind.json()["error"] == "not_allowed_token_type", "the app token is for Socket Mode only"
    opened = await open_connection(workspace_server, settings.app_token)
    assert opened["ok"] and opened["url"].startswith("ws://127.0.0.1:")


async def test_the_protocol_by_hand_hello_envelopes_acks_and_timeouts(workspace_server: WorkspaceServer) -> None:
    """A bare websocket client: the stand-in says hello, sends a command as an envelope, takes the ack's
    payload as the ack body, and turns a missing ack into Slack's ``operation_timeout``."""
    settings = workspace_server.settings
    async with WorkspaceClient(workspace_server.url) as user, aiohttp.ClientSession() as session:
        await user.reset()
        assert not (await user.socket_mode())["connections"], "no bot may hold a socket when this test starts"
        url = (await open_connection(workspace_server, settings.app_token))["url"]
        ws = await session.ws_connect(url)
        hello = await ws.receive_json(timeout=5)
        assert hello["type"] == "hello" and hello["num_connections"] == 1
        assert hello["connection_info"]["app_id"] == settings.app_id and "debug_info" in hello
        await user.wait_for_sockets(1)

        asked = asyncio.ensure_future(user.command("help me"))
        envelope = await ws.receive_json(timeout=5)
        assert envelope["type"] == "slash_commands" and envelope["accepts_response_payload"] is True
        payload = envelope["payload"]
        assert payload["command"] == "/services" and payload["text"] == "help me"
        assert payload["response_url"].startswith(workspace_server.url) and payload["team_id"] == settings.team_id
        await ws.send_str(json.dumps({"envelope_id": "not-this-one", "payload": {"text": "ignored"}}))
        await ws.send_str(json.dumps({"envelope_id": envelope["envelope_id"], "payload": {"text": "hi there"}}))
        result = await asked
        assert result["via"] == "socket" and result["status"] == 200 and not result["timed_out"]
        assert result["ack_body"] == {"text": "hi there"} and result["ack_ms"] < 3000
        shown = await user.messages(GENERAL)
        assert [(m["text"], m["ephemeral"], m["source"]) for m in shown] == [("hi there", True, "ack")]

        timeout = settings.ack_timeout_seconds
        settings.ack_timeout_seconds = 0.3
        try:
            unanswered = await user.command("failed")
        finally:
            settings.ack_timeout_seconds = timeout
        assert unanswered["timed_out"] and unanswered["status"] is None
        assert (await ws.receive_json(timeout=1))["envelope_id"] == unanswered["envelope_id"]
        notice = (await user.messages(GENERAL))[-1]
        assert notice["user"] == "USLACKBOT" and '"operation_timeout"' in notice["text"]

        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(url)  # a URL is good for one connection
        assert await user.drop_sockets(grace=0) == 1
        closing = await ws.receive(timeout=5)
        assert json.loads(closing.data) == {
            "type": "disconnect",
            "reason": "refresh_requested",
            "debug_info": {"host": "workspace-stand-in"},
        }
        await ws.receive(timeout=5)  # the close frame
        await ws.close()
        await user.wait_for_sockets(0)
        with pytest.raises(Exception, match="no Socket Mode connection"):
            await user.command("failed", via="socket")


@pytest.fixture(scope="module")
def socket_bot(emulator_server: EmulatorServer, workspace_server: WorkspaceServer) -> Iterator[BackgroundServe]:
    """``serve`` in Socket Mode (no signing secret: nothing reaches it over HTTP); the stand-in has no app URL
    meanwhile, so a command that went over HTTP would fail. Afterwards the bot is gone and the URL is back."""
    settings = slack_settings(
        emulator_server,
        workspace_server,
        slack_app_token=workspace_server.settings.app_token,
        slack_signing_secret=None,
        services_bot_max_retries=2,
    )
    app_url = workspace_server.settings.app_url
    workspace_server.settings.app_url = None
    try:
        with BackgroundServe(settings, watch=False) as bot:
            yield bot
    finally:
        workspace_server.settings.app_url = app_url
        deadline = time.monotonic() + 5
        while workspace_server.state.sockets.connections and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not workspace_server.state.sockets.connections, "the bot's socket outlived the bot"


@pytest.fixture
async def workspace(workspace_server: WorkspaceServer, socket_bot: BackgroundServe) -> AsyncIterator[WorkspaceClient]:
    async with WorkspaceClient(workspace_server.url) as client:
        await client.reset()
        await client.wait_for_sockets(1)
        yield client


async def health(bot: BackgroundServe) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.get(bot.url + "/healthz")
    return response.status_code, response.json()


async def ask(workspace: WorkspaceClient, text: str) -> dict[str, Any]:
    """``/services text`` over the socket: acked at once and empty; the answer comes by response_url."""
    before = len(answers(await workspace.messages(GENERAL)))
    ack = await workspace.command(text, GENERAL)
    assert ack["via"] == "socket" and ack["status"] == 200 and not ack["timed_out"], ack
    assert ack["ack_body"] is None and ack["ack_ms"] < 1000, ack
    found = await workspace.wait_for_messages(lambda m: len(answers(m)) > before, channel=GENERAL, timeout=10)
    reply = answers(found)[-1]
    assert reply["source"] == "response_url"
    assert_valid(reply["blocks"])
    return reply


async def test_commands_and_clicks_work_over_the_socket(
    workspace: WorkspaceClient, socket_bot: BackgroundServe, control: Control
) -> None:
    created = control.add(service_name="socket-scorer", status="failed", error_msg="OOMKilled")
    status, body = await health(socket_bot)
    assert status == 200 and body["slack"] == "socket connected", body

    reply = await ask(workspace, "failed")
    assert reply["ephemeral"] and reply["visible_to"] == "U0DEMO" and ":red_circle:" in text_of(reply)

    error_ack = await workspace.command("faild")
    assert error_ack["via"] == "socket" and error_ack["status"] == 200
    assert "Did you mean 'failed'" in json.dumps(error_ack["ack_body"])
    shown = (await workspace.messages(GENERAL))[-1]
    assert shown["source"] == "ack" and shown["ephemeral"] and "Did you mean 'failed'" in shown["text"]

    listing = await ask(workspace, "failed name:socket-scorer")
    clicked = await workspace.click(listing, "service_details", button(listing, "service_details")["value"])
    assert clicked["via"] == "socket" and clicked["status"] == 200 and clicked["sent"]["type"] == "block_actions"
    found = await workspace.wait_for_messages(
        lambda m: any(created["service_id"] in text_of(a) and "OOMKilled" in text_of(a) for a in answers(m)[-1:]),
        channel=GENERAL,
    )
    assert_valid(answers(found)[-1]["blocks"])

    async with httpx.AsyncClient(trust_env=False) as http:
        events = await http.post(socket_bot.url + "/slack/events", content=b"{}")
    assert events.status_code == 404, "in Socket Mode nothing about Slack is served over HTTP"


@pytest.mark.parametrize("reason", ["refresh_requested", None], ids=["disconnect-message", "network-drop"])
async def test_the_bot_reconnects_when_the_workspace_drops_the_socket(
    workspace: WorkspaceClient, socket_bot: BackgroundServe, control: Control, reason: str | None
) -> None:
    before = await workspace.socket_mode()
    assert await workspace.drop_sockets(reason) == 1
    started = time.monotonic()
    after = await workspace.wait_for_sockets(1, timeout=5, opened_total=before["opened_total"] + 1)
    assert after["connections"][0]["id"] != before["connections"][0]["id"]
    while (await health(socket_bot))[1]["slack"] != "socket connected":
        assert time.monotonic() - started < 5, await health(socket_bot)
        await asyncio.sleep(0.05)
    assert (await health(socket_bot))[0] == 200
    await ask(workspace, "summary")
    if reason is not None:  # the bot moved on by itself within the grace period: one new connection, no churn
        assert (await workspace.socket_mode())["opened_total"] == before["opened_total"] + 1
