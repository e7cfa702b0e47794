"""Block Kit views built from real answers: valid for Slack, within its limits, and safe to paste anywhere."""

from __future__ import annotations

import json

from services_bot.bot.views import details_view, escape, list_view, summary_view
from services_bot.core.query import ServiceQuery
from services_bot.emulator import EmulatorServer
from slack_sdk.models.blocks import Block

from tests.conftest import Control, queries_for


def assert_valid(blocks: list[dict]) -> None:
    """Each block passes slack_sdk's own model validation (lengths, required fields); at most 50 blocks."""
    assert 0 < len(blocks) <= 50
    for raw in blocks:
        block = Block.parse(raw)
        assert block is not None
        block.validate_json()
        for element in raw.get("elements", []) + ([raw["accessory"]] if "accessory" in raw else []):
            assert len(element.get("value", "")) <= 2000


def mrkdwn_texts(node: object):  # type: ignore[no-untyped-def]
    """Every mrkdwn text object in a block tree: the texts Slack parses for mentions and links."""
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn":
            yield node["text"]
        for value in node.values():
            yield from mrkdwn_texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from mrkdwn_texts(item)


def test_escape_neutralises_mentions_and_links() -> None:
    assert (
        escape("<!channel> & <https://evil.example|click>")
        == "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;"
    )
    assert len(escape("x" * 10_000, 100)) == 100


async def test_hostile_names_render_literally(emulator_server: EmulatorServer, control: Control) -> None:
    created = control.add(
        service_name="<!channel>", status="failed", error_msg="<https://evil.example|click> & <@U123>"
    )
    async with queries_for(emulator_server) as queries:
        listing = await queries.list(ServiceQuery.build(name="channel"))
        service = await queries.get(created["service_id"])
    blocks = list_view(listing, "channel") + details_view(service)
    assert_valid(blocks)
    mrkdwn = json.dumps(list(mrkdwn_texts(blocks)))
    assert "<!channel>" not in mrkdwn and "<https://evil" not in mrkdwn and "<@U123>" not in mrkdwn
    assert "&lt;!channel&gt;" in mrkdwn and "&lt;https://evil.example|click&gt; &amp; &lt;@U123&gt;" in mrkdwn
    header = blocks[0]["text"]  # plain_text is never parsed for mentions or links
    assert header["type"] == "plain_text"


async def test_a_large_answer_stays_within_slack_limits(emulator_server: EmulatorServer, control: Control) -> None:
    long_error = "Traceback-like text " * 400
    rows = control.list_raw(emulator_server.settings.project_id, emulator_server.settings.token)["services"]
    for row in rows[:5]:
        control.set_status(row["service_id"], "failed", long_error)
    async with queries_for(emulator_server) as queries:
        listing = await queries.list(ServiceQuery.build(limit=1000))
        summary = await queries.summary()
        service = await queries.get(rows[0]["service_id"])
    assert listing.total > 50
    for blocks in (list_view(listing, "limit:1000"), summary_view(summary), details_view(service)):
        assert_valid(blocks)


async def test_list_view_has_details_and_paging_buttons(emulator_server: EmulatorServer, control: Control) -> None:
    async with queries_for(emulator_server) as queries:
        first = await queries.list(ServiceQuery.build(limit=5))
        second = await queries.list(ServiceQuery.build(limit=5, cursor=first.next_cursor))
    blocks = list_view(second, "limit:5")
    assert_valid(blocks)
    assert blocks[0]["text"]["text"].startswith(f"{second.total} services")
    details = [b["accessory"] for b in blocks if b.get("accessory")]
    assert [json.loads(d["value"])["id"] for d in details] == [s.service_id for s in second.services]
    actions = {e["action_id"]: json.loads(e["value"]) for e in blocks[-1]["elements"]}
    assert actions["page_previous"] == {"q": "limit:5", "o": 0}
    assert actions["page_next"]["q"] == "limit:5" and actions["page_next"]["c"] == second.next_cursor
    assert "share_in_channel" in actions
