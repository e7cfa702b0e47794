"""The local Slack workspace stand-in, checked against Slack's own client (slack_sdk) and a tiny signed-request
receiver that plays the bot, all over real loopback HTTP."""

from __future__ import annotations

import asyncio
import hmac
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import uvicorn
from services_bot.workspace import WorkspaceClient, WorkspaceError, WorkspaceServer, WorkspaceSettings
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

SECRET = "test-signing-secret"
TOKEN = "xoxb-test-token"

Reply = Callable[[dict[str, Any]], Awaitable[Response]]


class Receiver:
    """Plays the bot's ``POST /slack/events``: checks the signature the way bolt does and records the request.

    ``reply`` decides the ack (default: an empty 200, as bolt's ``ack()`` sends).
    """

    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []
        self.reply: Reply | None = None
        self.url = ""

    async def handle(self, request: Request) -> Response:
        body = (await request.body()).decode()
        ts = request.headers.get("x-slack-request-timestamp", "")
        signature = request.headers.get("x-slack-signature", "")
        verifier = SignatureVerifier(SECRET)
        expected = verifier.generate_signature(timestamp=ts, body=body) or ""
        form = dict(parse_qsl(body, keep_blank_values=True))
        record = {
            "form": form,
            "payload": json.loads(form["payload"]) if "payload" in form else None,
            "headers": dict(request.headers),
            "signature_matches": hmac.compare_digest(expected, signature),
            "valid": verifier.is_valid_request(body, dict(request.headers)),
        }
        self.got.append(record)
        if self.reply is not None:
            return await self.reply(record)
        return Response(status_code=200)


def _serve(app: Starlette) -> tuple[str, Callable[[], None]]:
    """uvicorn for ``app`` in a daemon thread on a free loopback port; returns its URL and a stop function."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.005)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()

    return f"http://127.0.0.1:{sock.getsockname()[1]}", stop


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    bot = Receiver()
    url, stop = _serve(Starlette(routes=[Route("/slack/events", bot.handle, methods=["POST"])]))
    bot.url = url + "/slack/events"
    yield bot
    stop()


@pytest.fixture(scope="session")
def workspace() -> Iterator[WorkspaceServer]:
    with WorkspaceServer(WorkspaceSettings(signing_secret=SECRET, bot_token=TOKEN)) as server:
        yield server


@pytest.fixture
async def user(workspace: WorkspaceServer, receiver: Receiver) -> AsyncIterator[WorkspaceClient]:
    """The control API, on a clean workspace pointed at the receiver."""
    receiver.got.clear()
    receiver.reply = None
    workspace.settings.ack_timeout_seconds = 3.0
    async with WorkspaceClient(workspace.url) as client:
        await client.reset()
        await client.set_app_url(receiver.url)
        yield client


@pytest.fixture
def web(workspace: WorkspaceServer) -> AsyncWebClient:
    return AsyncWebClient(token=TOKEN, base_url=workspace.api_url)


BUTTONS = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "*ocr-prod* failed"}},
    {
        "type": "section",
        "block_id": "svc-1",
        "text": {"type": "mrkdwn", "text": "ocr-prod"},
        "accessory": {
            "type": "button",
            "action_id": "service_details",
            "value": "svc-1",
            "text": {"type": "plain_text", "text": "Details"},
        },
    },
    {
        "type": "section",
        "block_id": "svc-2",
        "text": {"type": "mrkdwn", "text": "asr-prod"},
        "accessory": {
            "type": "button",
            "action_id": "service_details",
            "value": "svc-2",
            "text": {"type": "plain_text", "text": "Details"},
        },
    },
]
META = {
    "event_type": "modelarts_service_status_changed",
    "event_payload": {"service_id": "svc-1", "to_status": "failed"},
}


# -- Web API through slack_sdk ----------------------------------------------------------------------------


async def test_post_update_thread_and_history(user: WorkspaceClient, web: AsyncWebClient) -> None:
    auth = await web.auth_test()
    assert auth["user_id"] == "U0BOT" and auth["team_id"] == "T0DEMO"

    first = await web.chat_postMessage(channel="C0ALERTS", text="ocr-prod failed", blocks=BUTTONS, metadata=META)
    second = await web.chat_postMessage(channel="#alerts", text="later")
    assert first["channel"] == "C0ALERTS" and second["channel"] == "C0ALERTS"
    assert float(second["ts"]) > float(first["ts"]) and len(first["ts"].split(".")[1]) == 6
    assert first["message"]["metadata"] == META

    await web.chat_update(channel="C0ALERTS", ts=first["ts"], text="ocr-prod recovered")
    reply = await web.chat_postMessage(channel="C0ALERTS", thread_ts=first["ts"], text="details in thread")

    history = await web.conversations_history(channel="C0ALERTS", include_all_metadata=True)
    newest, oldest = history["messages"]
    assert newest["ts"] == second["ts"] and oldest["ts"] == first["ts"]  # newest first, no thread replies
    assert oldest["text"] == "ocr-prod recovered" and "edited" in oldest
    assert oldest["blocks"][1]["accessory"]["value"] == "svc-1"  # blocks kept when chat.update omits them
    assert oldest["metadata"] == META and oldest["reply_count"] == 1
    plain = await web.conversations_history(channel="C0ALERTS")
    assert all("metadata" not in m for m in plain["messages"])

    thread = await web.conversations_replies(channel="C0ALERTS", ts=first["ts"])
    assert [m["ts"] for m in thread["messages"]] == [first["ts"], reply["ts"]]

    info = await web.conversations_info(channel="C0GENERAL")
    assert info["channel"]["name"] == "general" and info["channel"]["is_member"] is True
    link = await web.chat_getPermalink(channel="C0ALERTS", message_ts=first["ts"])
    assert link["permalink"].endswith("/archives/C0ALERTS/p" + first["ts"].replace(".", ""))

    seen = await user.messages("C0ALERTS")
    assert [m["edited"] for m in seen] == [True, False, False]
    assert seen[-1]["thread_ts"] == first["ts"]
    calls = await user.calls("chat.postMessage")
    assert len(calls) == 3 and calls[0]["args"]["metadata"] == META and calls[0]["args"]["blocks"] == BUTTONS


async def test_history_paging_and_window(user: WorkspaceClient, web: AsyncWebClient) -> None:
    stamps = [(await web.chat_postMessage(channel="C0GENERAL", text=f"m{i}"))["ts"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        page = await web.conversations_history(channel="C0GENERAL", limit=2, cursor=cursor)
        seen += [m["text"] for m in page["messages"]]
        cursor = page["response_metadata"]["next_cursor"]
        if not page["has_more"]:
            assert cursor == ""
            break
    assert seen == ["m4", "m3", "m2", "m1", "m0"]
    window = await web.conversations_history(channel="C0GENERAL", oldest=stamps[1], latest=stamps[3])
    assert [m["text"] for m in window["messages"]] == ["m2"]


async def test_form_bodies_are_normalised(user: WorkspaceClient, workspace: WorkspaceServer) -> None:
    form = {
        "channel": "C0GENERAL",
        "text": "hi",
        "blocks": json.dumps(BUTTONS[:1]),
        "metadata": json.dumps(META),
    }
    async with httpx.AsyncClient() as http:
        answer = (
            await http.post(
                workspace.api_url + "chat.postMessage", data=form, headers={"Authorization": f"Bearer {TOKEN}"}
            )
        ).json()
        assert answer["ok"] and answer["message"]["metadata"] == META
        assert answer["message"]["blocks"][0]["text"] == BUTTONS[0]["text"]
        nobody = (await http.post(workspace.api_url + "auth.test")).json()
        assert nobody == {"ok": False, "error": "not_authed"}
        missing = (
            await http.post(
                workspace.api_url + "chat.postMessage", json={"text": "x"}, headers={"Authorization": f"Bearer {TOKEN}"}
            )
        ).json()
        assert missing["error"] == "invalid_arguments"


async def test_errors(user: WorkspaceClient, web: AsyncWebClient, workspace: WorkspaceServer) -> None:
    with pytest.raises(SlackApiError) as wrong:
        await AsyncWebClient(token="xoxb-wrong", base_url=workspace.api_url).chat_postMessage(
            channel="C0GENERAL", text="x"
        )
    assert wrong.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as unknown:
        await web.api_call("chat.nope")
    assert unknown.value.response["error"] == "unknown_method"
    with pytest.raises(SlackApiError) as nochan:
        await web.chat_postMessage(channel="C0NOPE", text="x")
    assert nochan.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError) as duplicate:
        button = BUTTONS[1]["accessory"]
        await web.chat_postMessage(
            channel="C0GENERAL", text="x", blocks=[{"type": "actions", "elements": [button, button]}]
        )
    assert duplicate.value.response["error"] == "invalid_blocks"


async def test_user_groups_list_their_members(workspace: WorkspaceServer, web: AsyncWebClient) -> None:
    workspace.settings.usergroups = {"S0ONCALL": ["U0DEMO", "U0OTHER"]}
    try:
        assert (await web.usergroups_users_list(usergroup="S0ONCALL"))["users"] == ["U0DEMO", "U0OTHER"]
        with pytest.raises(SlackApiError) as unknown:
            await web.usergroups_users_list(usergroup="S0NOPE")
        assert unknown.value.response["error"] == "no_such_subteam"
    finally:
        workspace.settings.usergroups = {}


async def test_rate_limit_fault(user: WorkspaceClient, web: AsyncWebClient, workspace: WorkspaceServer) -> None:
    await user.set_fault("chat.postMessage", rate_limited=1, retry_after=7)
    with pytest.raises(SlackApiError) as limited:
        await web.chat_postMessage(channel="C0GENERAL", text="x")
    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] == "7"
    assert limited.value.response["error"] == "ratelimited"
    assert (await web.chat_postMessage(channel="C0GENERAL", text="x"))["ok"]  # only the next call was limited

    await user.set_fault("chat.postMessage", rate_limited=1, retry_after=0)
    retrying = AsyncWebClient(
        token=TOKEN, base_url=workspace.api_url, retry_handlers=[AsyncRateLimitErrorRetryHandler(1)]
    )
    assert (await retrying.chat_postMessage(channel="C0GENERAL", text="again"))["ok"]
    calls = await user.calls("chat.postMessage")
    assert [c["status"] for c in calls] == [429, 200, 429, 200]


async def test_error_status_channel_and_latency_faults(user: WorkspaceClient, web: AsyncWebClient) -> None:
    await user.set_fault("chat.postMessage", error="channel_not_found", count=1)
    with pytest.raises(SlackApiError) as err:
        await web.chat_postMessage(channel="C0GENERAL", text="x")
    assert err.value.response["error"] == "channel_not_found"
    await user.set_fault("chat.update", status=500, count=1)
    posted = await web.chat_postMessage(channel="C0GENERAL", text="x")
    with pytest.raises(SlackApiError) as boom:
        await web.chat_update(channel="C0GENERAL", ts=posted["ts"], text="y")
    assert boom.value.response.status_code == 500
    await user.set_fault(channel="C0ALERTS", not_in_channel=True)
    with pytest.raises(SlackApiError) as outside:
        await web.chat_postMessage(channel="C0ALERTS", text="x")
    assert outside.value.response["error"] == "not_in_channel"
    await user.set_fault("conversations.info", latency=0.2)
    started = time.perf_counter()
    await web.conversations_info(channel="C0GENERAL")
    assert time.perf_counter() - started >= 0.2
    await user.reset()
    assert (await web.chat_postMessage(channel="C0ALERTS", text="back"))["ok"]


# -- slash commands -----------------------------------------------------------------------------------------


async def test_command_is_a_signed_slash_request(
    user: WorkspaceClient, receiver: Receiver, workspace: WorkspaceServer
) -> None:
    result = await user.command("failed", channel="C0ALERTS")
    assert result["status"] == 200 and not result["timed_out"] and result["ack_ms"] >= 0
    (got,) = receiver.got
    assert got["valid"] and got["signature_matches"]
    assert got["headers"]["content-type"] == "application/x-www-form-urlencoded"
    form = got["form"]
    assert form["command"] == "/services" and form["text"] == "failed"
    assert form["channel_id"] == "C0ALERTS" and form["channel_name"] == "alerts"
    assert form["user_id"] == "U0DEMO" and form["user_name"] == "demo"
    assert form["team_id"] == "T0DEMO" and form["team_domain"] == "demo"
    assert form["response_url"] == result["response_url"] and form["response_url"].startswith(
        workspace.url + "/response/"
    )
    assert {"token", "api_app_id", "is_enterprise_install", "trigger_id"} <= form.keys()
    assert await user.messages("C0ALERTS") == []  # an empty ack shows nothing


async def test_an_unsent_command_is_signed_for_another_sender_and_its_answer_arrives(
    user: WorkspaceClient, receiver: Receiver
) -> None:
    prepared = await user.command("failed", user="U0DEMO", send=False)
    assert receiver.got == []  # nothing went to the bot
    request = prepared["request"]
    assert request["url"] == receiver.url
    async with httpx.AsyncClient(trust_env=False) as http:
        sent = await http.post(request["url"], content=request["body"], headers=request["headers"])
    assert sent.status_code == 200
    (got,) = receiver.got
    assert got["valid"] and got["form"]["text"] == "failed"
    assert got["form"]["response_url"] == prepared["response_url"]
    async with httpx.AsyncClient(trust_env=False) as http:
        answered = await http.post(prepared["response_url"], json={"text": "2 failed"})
    assert answered.status_code == 200
    (shown,) = await user.messages("C0GENERAL")
    assert shown["text"] == "2 failed" and shown["visible_to"] == "U0DEMO"


async def test_stale_timestamp_and_bad_signature(user: WorkspaceClient, receiver: Receiver) -> None:
    await user.command("failed", timestamp=int(time.time()) - 600)
    await user.command("failed", bad_signature=True)
    stale, bad = receiver.got
    assert stale["signature_matches"] and not stale["valid"]
    assert not bad["signature_matches"] and not bad["valid"]


async def test_ack_bodies_become_messages(user: WorkspaceClient, receiver: Receiver) -> None:
    async def ephemeral_json(_: dict[str, Any]) -> Response:
        return JSONResponse({"text": "working on it"})

    receiver.reply = ephemeral_json
    await user.command("failed")

    async def in_channel(_: dict[str, Any]) -> Response:
        return JSONResponse({"response_type": "in_channel", "text": "for everyone"})

    receiver.reply = in_channel
    await user.command("failed public")

    async def plain(_: dict[str, Any]) -> Response:
        return PlainTextResponse("plain text ack")

    receiver.reply = plain
    await user.command("help")
    seen = await user.messages("C0GENERAL")
    assert [(m["text"], m["ephemeral"], m["visible_to"]) for m in seen] == [
        ("working on it", True, "U0DEMO"),
        ("for everyone", False, None),
        ("plain text ack", True, "U0DEMO"),
    ]
    assert [m["text"] for m in await user.messages("C0GENERAL", include_ephemeral=False)] == ["for everyone"]


async def test_slow_ack_times_out(user: WorkspaceClient, receiver: Receiver, workspace: WorkspaceServer) -> None:
    workspace.settings.ack_timeout_seconds = 0.2

    async def slow(_: dict[str, Any]) -> Response:
        await asyncio.sleep(0.5)
        return Response(status_code=200)

    receiver.reply = slow
    result = await user.command("failed")
    assert result["timed_out"] and result["status"] is None
    (shown,) = await user.messages("C0GENERAL")
    assert shown["ephemeral"] and shown["text"] == '/services failed with the error "operation_timeout"'


async def test_response_url_kinds_replace_and_use_limit(user: WorkspaceClient) -> None:
    url = (await user.command("failed"))["response_url"]
    async with httpx.AsyncClient() as http:
        first = await http.post(url, json={"text": "only you"})
        assert first.status_code == 200 and first.text == "ok"
        await http.post(url, json={"text": "replaced", "replace_original": True})
        await http.post(url, json={"text": "everyone", "response_type": "in_channel"})
        await http.post(url, json={"text": "again"})
        await http.post(url, json={"text": "fifth"})
        sixth = await http.post(url, json={"text": "sixth"})
        assert sixth.status_code == 404 and sixth.text == "used_url"
        unknown = await http.post(url.rsplit("/", 1)[0] + "/nope", json={"text": "x"})
        assert unknown.status_code == 404
    seen = await user.messages("C0GENERAL")
    assert [(m["text"], m["ephemeral"]) for m in seen] == [
        ("replaced", True),
        ("everyone", False),
        ("again", True),
        ("fifth", True),
    ]
    assert seen[0]["replaced"]
    logged = await user.calls("response_url")
    texts = ["only you", "replaced", "everyone", "again", "fifth", "sixth", "x"]
    assert [c["args"].get("text") for c in logged] == texts
    assert [c["status"] for c in logged] == [200] * 5 + [404, 404] and logged[5]["error"] == "used_url"


# -- button clicks -----------------------------------------------------------------------------------------


async def test_click_payload_and_replace_original(
    user: WorkspaceClient, receiver: Receiver, web: AsyncWebClient
) -> None:
    posted = await web.chat_postMessage(channel="C0ALERTS", text="two services failed", blocks=BUTTONS)
    (message,) = await user.messages("C0ALERTS")
    result = await user.click(message, "service_details", value="svc-2")
    assert result["status"] == 200
    (got,) = receiver.got
    assert got["valid"]
    payload = got["payload"]
    assert payload["type"] == "block_actions" and payload["user"]["id"] == "U0DEMO"
    (action,) = payload["actions"]
    assert action["action_id"] == "service_details" and action["value"] == "svc-2" and action["block_id"] == "svc-2"
    assert action["type"] == "button" and action["text"]["text"] == "Details"
    assert payload["container"] == {
        "type": "message",
        "message_ts": posted["ts"],
        "channel_id": "C0ALERTS",
        "is_ephemeral": False,
    }
    assert payload["channel"]["id"] == "C0ALERTS" and payload["message"]["ts"] == posted["ts"]
    assert payload["response_url"] == result["response_url"]

    async with httpx.AsyncClient() as http:
        done = await http.post(payload["response_url"], json={"text": "asr-prod details", "replace_original": True})
    assert done.text == "ok"
    (replaced,) = await user.messages("C0ALERTS")
    assert replaced["ts"] == posted["ts"] and replaced["text"] == "asr-prod details" and replaced["blocks"] is None

    with pytest.raises(WorkspaceError, match="no button service_details"):
        await user.click(replaced, "service_details")


async def test_click_on_ephemeral_and_delete_original(
    user: WorkspaceClient, receiver: Receiver, web: AsyncWebClient
) -> None:
    posted = await web.chat_postEphemeral(channel="C0GENERAL", user="U0DEMO", text="pick one", blocks=BUTTONS)
    result = await user.click(posted["message_ts"], "service_details", channel="C0GENERAL")
    payload = receiver.got[-1]["payload"]
    assert payload["container"]["is_ephemeral"] is True and "message" not in payload
    assert payload["actions"][0]["value"] == "svc-1"  # the first of the buttons sharing the action_id
    async with httpx.AsyncClient() as http:
        await http.post(result["response_url"], json={"text": "ocr-prod", "replace_original": True})
    (shown,) = await user.messages("C0GENERAL")
    assert shown["ephemeral"] and shown["text"] == "ocr-prod" and shown["ts"] == posted["message_ts"]

    await web.chat_postMessage(channel="C0GENERAL", text="old", blocks=BUTTONS)
    old = (await user.messages("C0GENERAL", include_ephemeral=False))[0]
    result = await user.click(old, "service_details", value="svc-1")
    async with httpx.AsyncClient() as http:
        await http.post(result["response_url"], json={"delete_original": True})
    assert [m["text"] for m in await user.messages("C0GENERAL")] == ["ocr-prod"]


# -- feed and helpers --------------------------------------------------------------------------------------


async def test_event_feed_long_polls(user: WorkspaceClient, web: AsyncWebClient) -> None:
    start = (await user.events(0))["last"]
    waiting = asyncio.create_task(user.events(start, wait=5))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    posted = await web.chat_postMessage(channel="C0GENERAL", text="news")
    feed = await asyncio.wait_for(waiting, 2)
    assert feed["events"][0]["type"] == "message_posted" and feed["events"][0]["message"]["ts"] == posted["ts"]


async def test_wait_for_messages(user: WorkspaceClient, web: AsyncWebClient) -> None:
    async def later() -> None:
        await asyncio.sleep(0.05)
        await web.chat_postMessage(channel="C0GENERAL", text="arrived")

    task = asyncio.create_task(later())
    found = await user.wait_for_messages(lambda ms: any(m["text"] == "arrived" for m in ms), 2, channel="C0GENERAL")
    await task
    assert found[-1]["text"] == "arrived"
    with pytest.raises(TimeoutError, match="'arrived'"):
        await user.wait_for_messages(lambda ms: False, 0.1, channel="C0GENERAL")


# -- a real bolt app ---------------------------------------------------------------------------------------


async def test_a_bolt_app_round_trip(user: WorkspaceClient, workspace: WorkspaceServer) -> None:
    """slack_bolt, not just slack_sdk, accepts the workspace's requests and its answers land where Slack puts
    them: the ack-then-respond pattern for a command, and replace_original for a click."""
    from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
    from slack_bolt.async_app import AsyncApp

    bolt = AsyncApp(
        signing_secret=SECRET,
        client=AsyncWebClient(token=TOKEN, base_url=workspace.api_url),
        process_before_response=True,
    )

    @bolt.command("/services")
    async def services(ack: Any, respond: Any, command: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await respond(text=f"you asked: {command['text']}", blocks=BUTTONS)

    @bolt.action("service_details")
    async def details(ack: Any, respond: Any, action: dict[str, Any]) -> None:
        await ack()
        await respond(text=f"details of {action['value']}", replace_original=True)

    handler = AsyncSlackRequestHandler(bolt)

    async def endpoint(request: Request) -> Response:
        return await handler.handle(request)

    url, stop = _serve(Starlette(routes=[Route("/slack/events", endpoint, methods=["POST"])]))
    try:
        await user.set_app_url(url + "/slack/events")
        assert (await user.command("failed"))["status"] == 200
        (answer,) = await user.wait_for_messages(lambda ms: len(ms) == 1, 3, channel="C0GENERAL")
        assert answer["ephemeral"] and answer["text"] == "you asked: failed"
        assert (await user.click(answer, "service_details", value="svc-2"))["status"] == 200
        (shown,) = await user.wait_for_messages(
            lambda ms: ms and ms[0]["text"] != answer["text"], 3, channel="C0GENERAL"
        )
        assert shown["text"] == "details of svc-2" and shown["ts"] == answer["ts"]
        stale = await user.command("failed", timestamp=int(time.time()) - 600)
        assert stale["status"] == 401
    finally:
        stop()
