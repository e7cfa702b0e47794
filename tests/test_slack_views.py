"""Block Kit views built from real answers: valid for Slack, within its limits, and safe to paste anywhere."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator

from services_bot.bot.alerts import alert_message, grouped_message, transitions_message
from services_bot.bot.views import STATUS_EMOJI, details_view, escape, list_view, summary_view
from services_bot.core.notifications import Transition
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


STATUS_OF = {code: status for status, code in STATUS_EMOJI.items()}
UNKNOWN = ":grey_question:"


def emoji_and_next_word(texts: Iterable[str]) -> Iterator[tuple[str, str]]:
    """Each status emoji (or the unknown-status one) in the texts, with the word right after it (after a count in
    bold, as a grouped alert's cause line has it: ``:red_circle: *8 failed*: OOMKilled``)."""
    for text in texts:
        for m in re.finditer(r"(:[a-z0-9_+-]+:)(?: (?:\*\d+ )?([\w-]+))?", text):
            if m[1] in STATUS_OF or m[1] == UNKNOWN:
                yield m[1], m[2] or ""


async def test_every_status_emoji_is_followed_by_its_status_word(
    emulator_server: EmulatorServer, control: Control
) -> None:
    """Without a colour-emoji font (a bare Debian Chromium, some Slack clients) an emoji is a blank box: every
    status the bot posts, in lists, summaries, details, alerts, grouped alerts and history, still reads in words."""
    for status in STATUS_EMOJI:
        control.add(service_name=f"label-{status}", status=status, error_msg=f"{status} on purpose")
    async with queries_for(emulator_server) as queries:
        listing = await queries.list(ServiceQuery.build(name="label-", limit=100))
        summary = await queries.summary()
        shown = [details_view(await queries.get(s.service_id)) for s in listing.services]
    assert {s.status for s in listing.services} == set(STATUS_EMOJI)
    transitions = [
        Transition(
            target="t",
            service_id=f"id-{s}",
            service_name=f"svc-{s}",
            kind="changed",
            from_status="running",
            to_status=s,
            error_msg="boom",
        )
        for s in STATUS_EMOJI
    ] + [
        Transition(target="t", service_id="id-new", service_name="svc-new", kind="new", to_status="deploying"),
        Transition(target="t", service_id="id-gone", service_name="svc-gone", kind="deleted", from_status="failed"),
        Transition(
            target="t",
            service_id="id-odd",
            service_name="svc-odd",
            kind="changed",
            from_status="running",
            to_status="hibernating",  # a status no table knows
        ),
    ]
    views = [
        list_view(listing, "label-"),
        summary_view(summary),
        *shown,
        grouped_message("p1", transitions)[1],
        transitions_message("history", transitions)[1],
    ]
    views += [alert_message(t)[1] for t in transitions]
    pairs = [pair for blocks in views for pair in emoji_and_next_word(mrkdwn_texts(blocks))]

    wrong = [(code, word) for code, word in pairs if word != STATUS_OF.get(code, word)]
    assert not wrong, f"status emoji not followed by their status: {wrong}"
    assert {word for code, word in pairs if code == UNKNOWN} == {"deleted", "hibernating"}
    assert {word for _, word in pairs} == set(STATUS_EMOJI) | {"deleted", "hibernating"}
    alert_line = alert_message(transitions[3])[1][0]["text"]["text"]
    assert alert_line == ":red_circle: failed · *svc-failed* (was running)", "the status word once, then the old one"
    gone = next(t for t in transitions if t.kind == "deleted")
    gone_line = alert_message(gone)[1][0]["text"]["text"]
    assert gone_line.count("deleted") == 1 and gone_line.endswith("*svc-gone* (was failed)"), gone_line
