"""The Slack app end to end: ``services-bot serve`` in HTTP mode, driven by the local workspace with signed
slash commands and button clicks, answering from the emulator over loopback; every message is checked against
slack_sdk's Block Kit models and Slack's limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from services_bot.core.config import Settings
from services_bot.emulator import EmulatorServer
from services_bot.workspace import WorkspaceClient, WorkspaceServer

from services_bot.serve import BackgroundServe
from tests.conftest import Control, slack_settings
from tests.test_slack_views import assert_valid, mrkdwn_texts

GENERAL = "C0GENERAL"


def answers(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bot's messages (not the stand-in's own notices), oldest first."""
    return [m for m in messages if m["user"] == "U0BOT"]


async def ask(workspace: WorkspaceClient, text: str, channel: str = GENERAL) -> dict[str, Any]:
    """Run ``/services text`` and return the bot's answer, after checking the ack came fast and empty."""
    before = len(answers(await workspace.messages(channel)))
    ack = await workspace.command(text, channel)
    assert ack["status"] == 200 and not ack["timed_out"], ack
    found = await workspace.wait_for_messages(lambda m: len(answers(m)) > before, channel=channel, timeout=10)
    reply = answers(found)[-1]
    assert_valid(reply["blocks"])
    return reply


def dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def text_of(message: dict[str, Any]) -> str:
    return "\n".join(mrkdwn_texts(message["blocks"])) + "\n" + dumps(message["blocks"])


def button(message: dict[str, Any], action_id: str) -> dict[str, Any]:
    for block in message["blocks"]:
        for element in block.get("elements", []) + ([block["accessory"]] if "accessory" in block else []):
            if element.get("action_id") == action_id:
                return element
    raise AssertionError(f"no {action_id} button in {[b['type'] for b in message['blocks']]}")


async def test_failed_answers_privately_with_errors_and_buttons(
    workspace: WorkspaceClient, control: Control, emulator_server: EmulatorServer
) -> None:
    raw = control.list_raw(emulator_server.settings.project_id, emulator_server.settings.token, status="failed")
    reply = await ask(workspace, "failed")
    assert reply["ephemeral"] and reply["visible_to"] == "U0DEMO"
    header = reply["blocks"][0]["text"]["text"]
    assert header == f"{raw['total_count']} services: failed"
    assert ":red_circle:" in text_of(reply)
    assert button(reply, "service_details")
    assert "Share in channel" in dumps(reply["blocks"])


async def test_ack_is_empty_and_fast_and_the_answer_follows(workspace: WorkspaceClient, control: Control) -> None:
    ack = await workspace.command("unhealthy")
    assert ack["status"] == 200 and ack["ack_body"] in ("", None)
    assert ack["ack_ms"] < 1000
    await workspace.wait_for_messages(lambda m: answers(m), channel=GENERAL, timeout=10)


async def test_help_and_grammar_errors_are_answered_in_the_ack(workspace: WorkspaceClient) -> None:
    help_ack = await workspace.command("help")
    assert "Usage: /services" in dumps(help_ack["ack_body"])
    error_ack = await workspace.command("faild")
    body = dumps(error_ack["ack_body"])
    assert "Did you mean 'failed'" in body and "Usage" in body
    messages = await workspace.messages(GENERAL)
    assert len([m for m in messages if m["ephemeral"]]) == 2, "each ack shows as a private message"


async def test_summary_counts_by_status_and_type(workspace: WorkspaceClient, control: Control) -> None:
    reply = await ask(workspace, "summary")
    text = text_of(reply)
    assert "*By status*" in text and "*By type*" in text and "real-time" in text


async def test_show_by_name_and_by_id_gives_details(workspace: WorkspaceClient, control: Control) -> None:
    created = control.add(service_name="ocr-invoice-prod", status="failed", error_msg="CUDA out of memory")
    by_name = await ask(workspace, "show ocr-invoice-prod")
    by_id = await ask(workspace, f"show {created['service_id']}")
    for reply in (by_name, by_id):
        text = text_of(reply)
        assert created["service_id"] in text and "CUDA out of memory" in text and "*Model*" in text


async def test_unknown_service_suggests_the_closest_name(workspace: WorkspaceClient, control: Control) -> None:
    control.add(service_name="ocr-invoice-prod", status="running")
    reply = await ask(workspace, "show ocr-invoice-prd")
    assert reply["ephemeral"] and "Did you mean 'ocr-invoice-prod'" in reply["text"]


async def test_public_posts_in_the_channel(workspace: WorkspaceClient, control: Control) -> None:
    reply = await ask(workspace, "failed public")
    assert not reply["ephemeral"]
    assert "share_in_channel" not in dumps(reply["blocks"]), "a public answer has nothing left to share"


async def test_next_and_previous_page_in_place(workspace: WorkspaceClient, control: Control) -> None:
    first = await ask(workspace, "limit:5")
    assert "1–5 of" in text_of(first)
    await workspace.click(first, "page_next")
    found = await workspace.wait_for_messages(lambda m: "6–10 of" in dumps(answers(m)), channel=GENERAL)
    second = answers(found)[-1]
    assert second["ts"] == first["ts"] and second["replaced"], "an ephemeral page is replaced, not piled up"
    assert_valid(second["blocks"])
    await workspace.click(second, "page_previous")
    await workspace.wait_for_messages(lambda m: "1–5 of" in dumps(answers(m)[-1]), channel=GENERAL)


async def test_details_button_opens_that_service(workspace: WorkspaceClient, control: Control) -> None:
    created = control.add(service_name="fraud-scorer", status="failed", error_msg="OOMKilled")
    listing = await ask(workspace, "failed name:fraud-scorer")
    value = button(listing, "service_details")["value"]
    await workspace.click(listing, "service_details", value)
    found = await workspace.wait_for_messages(lambda m: len(answers(m)) == 2, channel=GENERAL)
    details = answers(found)[-1]
    assert_valid(details["blocks"])
    assert details["ephemeral"] and created["service_id"] in text_of(details) and "OOMKilled" in text_of(details)


async def test_share_posts_for_everyone_and_removes_the_private_copy(
    workspace: WorkspaceClient, control: Control
) -> None:
    private = await ask(workspace, "failed limit:3")
    await workspace.click(private, "share_in_channel")
    found = await workspace.wait_for_messages(
        lambda m: any(not x["ephemeral"] for x in answers(m)) and all(not x["ephemeral"] for x in answers(m)),
        channel=GENERAL,
    )
    shared = answers(found)[-1]
    assert_valid(shared["blocks"])
    assert "Shared by <@U0DEMO>" in text_of(shared)
    assert shared["blocks"][0]["text"] == private["blocks"][0]["text"], "the same answer, now public"


async def test_paging_a_shared_answer_leaves_it_for_the_channel(workspace: WorkspaceClient, control: Control) -> None:
    shared = await ask(workspace, "limit:2 public")
    await workspace.click(shared, "page_next")
    found = await workspace.wait_for_messages(lambda m: len(answers(m)) == 2, channel=GENERAL)
    original, page = answers(found)
    assert original["blocks"] == shared["blocks"] and not original["ephemeral"]
    assert page["ephemeral"] and "3–4 of" in text_of(page)


async def test_hostile_text_from_the_api_pings_no_one(workspace: WorkspaceClient, control: Control) -> None:
    control.add(service_name="<!channel>", status="failed", error_msg="<https://evil.example|click> & <@U123>")
    for text in ('failed name:"<!channel>"', 'show "<!channel>"'):
        reply = await ask(workspace, text)
        rendered = "\n".join(mrkdwn_texts(reply["blocks"]))
        assert "&lt;https://evil.example|click&gt; &amp; &lt;@U123&gt;" in rendered
        assert "<!channel>" not in rendered and "<https://evil" not in rendered and "<@U123>" not in rendered
    listing = "\n".join(mrkdwn_texts((await ask(workspace, 'failed name:"<!channel>"'))["blocks"]))
    assert "*&lt;!channel&gt;*" in listing


async def test_bad_and_stale_signatures_are_refused_before_any_work(
    workspace: WorkspaceClient, control: Control
) -> None:
    control.clear_requests()
    bad = await workspace.command("failed", bad_signature=True)
    stale = await workspace.command("failed", timestamp=1_700_000_000)
    assert bad["status"] == stale["status"] == 401
    assert not answers(await workspace.messages(GENERAL))
    assert not any(control.requests()["by_route"].values()), "nothing may reach ModelArts"


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({"rate_limit_count": 100, "retry_after": 1}, "throttling requests; retried 2 times; try again in 1 s"),
        ({"error_status": 500, "error_count": 100}, "ModelArts is failing (HTTP 500); retried 2 times"),
        ({"error_status": 401, "error_count": 100}, "ModelArts refused the bot's credentials"),
        ({"error_status": 403, "error_count": 100}, "may not read this project"),
        ({"malformed_count": 100}, "ModelArts sent an answer the bot cannot read"),
    ],
)
async def test_api_faults_become_clear_private_messages(
    workspace: WorkspaceClient, control: Control, fault: dict[str, Any], expected: str
) -> None:
    control.faults(**fault)
    reply = await ask(workspace, "failed")
    assert reply["ephemeral"]
    assert expected in reply["text"], reply["text"]
    assert "Traceback" not in dumps(reply)


@pytest.fixture
def unreachable_bot(emulator_server: EmulatorServer, workspace_server: WorkspaceServer) -> Iterator[BackgroundServe]:
    settings: Settings = slack_settings(emulator_server, workspace_server, services_bot_max_retries=1)
    settings = settings.model_copy(update={"modelarts_endpoint": "http://127.0.0.1:9"})
    with BackgroundServe(settings) as bot:
        yield bot


async def test_unreachable_api_says_so(workspace: WorkspaceClient, unreachable_bot: BackgroundServe) -> None:
    await workspace.set_app_url(unreachable_bot.url + "/slack/events")
    reply = await ask(workspace, "failed")
    assert "ModelArts cannot be reached; retried 1 time" in reply["text"]
    assert "MODELARTS_ENDPOINT" in reply["text"]


async def test_a_page_of_the_largest_limit_stays_within_slack_limits(
    workspace: WorkspaceClient, control: Control
) -> None:
    reply = await ask(workspace, "limit:1000")
    assert len(reply["blocks"]) <= 50
    position = reply["blocks"][-2]["elements"][0]["text"]
    shown = sum(1 for b in reply["blocks"] if "accessory" in b)
    assert position.startswith(f"1–{shown} of") and "per page in Slack" in position
    await workspace.click(reply, "page_next")
    await workspace.wait_for_messages(
        lambda m: f"{shown + 1}–" in dumps(answers(m)[-1]["blocks"]), channel=GENERAL
    ), "the next page starts right after the rows shown: none skipped"


async def test_healthz(slack_bot: BackgroundServe) -> None:
    import httpx

    async with httpx.AsyncClient() as http:
        response = await http.get(slack_bot.url + "/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok" and response.json()["slack"] == "http"
