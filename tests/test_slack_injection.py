"""No mention or link injection: whatever a service is called, whatever its error says and whatever a person
types, nothing the bot sends to Slack pings a channel, a user group or a person, or hides a link behind a label.

Slack parses a message's top-level ``text``, mrkdwn text objects and attachment texts for ``<!channel>``,
``<@U…>``, ``<#C…>`` and ``<url|label>``; plain_text objects, button values and message metadata are not parsed.
The bot is driven end to end (signed commands and clicks through the Slack stand-in, the emulator over loopback,
the watcher's alerts), then everything the stand-in recorded is read back: every Web API call, every post to a
response_url and every ack body, walked field by field by Slack's rules, so a field the walker does not know
fails the test instead of being skipped.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from services_bot.emulator import EmulatorServer, EmulatorSettings
from services_bot.workspace import WorkspaceClient, WorkspaceServer

from services_bot.serve import BackgroundServe
from tests.conftest import Control, slack_settings

ALERTS, GENERAL = "C0ALERTS", "C0GENERAL"
ASKER = "U0DEMO"
POLL = 0.3

HOSTILE = (
    "<!channel>",
    "<!here|here>",
    "<!subteam^S1|@oncall>",
    "<@U0EVIL>",
    "<#C0EVIL>",
    "<https://evil.example|click>",
    "a & b <c>",
)

# -- what Slack parses -------------------------------------------------------------------------------------

MESSAGE_METHODS = frozenset({"chat.postMessage", "chat.update", "chat.postEphemeral", "chat.scheduleMessage"})
"""Web API methods whose arguments are a message (``text``, ``blocks``, ``attachments``)."""
SILENT_METHODS = frozenset(
    {
        "auth.test",
        "api.test",
        "chat.delete",
        "chat.getPermalink",
        "conversations.history",
        "conversations.replies",
        "conversations.info",
        "conversations.list",
        "apps.connections.open",
    }
)
"""Methods that show nothing to anyone: their arguments are not read as message text."""
ATTACHMENT_TEXTS = ("fallback", "pretext", "text", "title", "author_name", "footer")
OUR_ENTITIES = re.compile(rf"<@{ASKER}>|<!date\^\d+\^[^<>|]*\|[^<>]*>")
"""Entities the bot writes on purpose: a mention of the person who acted, and ``<!date^…>`` times."""
ENTITY = re.compile(r"&(amp|lt|gt);")


@dataclass(frozen=True)
class Text:
    """One text field of a message sent to Slack: where it was, what it said, and whether Slack parses it."""

    where: str
    text: str
    parsed: bool


def _decoded(value: Any) -> Any:
    """Form-encoded calls carry ``blocks`` and ``attachments`` as JSON strings."""
    return json.loads(value) if isinstance(value, str) else value


def text_object(obj: Any, where: str) -> Iterator[Text]:
    """A composition text object: ``mrkdwn`` is parsed (``verbatim`` only stops auto-linking bare words),
    ``plain_text`` is shown as written."""
    assert isinstance(obj, dict) and obj.get("type") in ("mrkdwn", "plain_text"), f"{where}: not a text object: {obj}"
    yield Text(where, str(obj.get("text", "")), obj["type"] == "mrkdwn")


def element_texts(element: dict[str, Any], where: str) -> Iterator[Text]:
    """Interactive and context elements: a button's label, its confirm dialog; images have no text to parse."""
    kind = element.get("type")
    if kind in ("mrkdwn", "plain_text"):
        yield from text_object(element, where)
    elif kind == "button":
        yield from text_object(element["text"], f"{where}.text")
        confirm = element.get("confirm") or {}
        for key in ("title", "text", "confirm", "deny"):
            if key in confirm:
                yield from text_object(confirm[key], f"{where}.confirm.{key}")
    elif kind != "image":
        raise AssertionError(
            f"{where}: element type {kind!r} is new to this test: say which of its fields Slack parses"
        )


def block_texts(blocks: Any, where: str) -> Iterator[Text]:
    """Every text of a list of Block Kit blocks, by block type, as Slack's reference describes them."""
    for n, block in enumerate(_decoded(blocks) or []):
        at, kind = f"{where}[{n}]", block.get("type")
        if kind == "section":
            if "text" in block:
                yield from text_object(block["text"], f"{at}.text")
            for i, fld in enumerate(block.get("fields") or []):
                yield from text_object(fld, f"{at}.fields[{i}]")
            if "accessory" in block:
                yield from element_texts(block["accessory"], f"{at}.accessory")
        elif kind in ("context", "actions"):
            for i, element in enumerate(block.get("elements") or []):
                yield from element_texts(element, f"{at}.elements[{i}]")
        elif kind == "header":
            yield from text_object(block["text"], f"{at}.text")
        elif kind == "image":
            if "title" in block:
                yield from text_object(block["title"], f"{at}.title")
        elif kind != "divider":
            raise AssertionError(f"{at}: block type {kind!r} is new to this test: say which of its fields Slack parses")


def message_texts(message: dict[str, Any], where: str) -> Iterator[Text]:
    """A message's texts: top-level ``text`` is always parsed as mrkdwn (notifications, previews, screen readers
    and clients without blocks show it), then its blocks, then its attachments (texts and fields parsed)."""
    if isinstance(message.get("text"), str):
        yield Text(f"{where} text", message["text"], True)
    yield from block_texts(message.get("blocks"), f"{where} blocks")
    for n, attachment in enumerate(_decoded(message.get("attachments")) or []):
        at = f"{where} attachments[{n}]"
        for key in ATTACHMENT_TEXTS:
            if isinstance(attachment.get(key), str):
                yield Text(f"{at}.{key}", attachment[key], True)
        for i, fld in enumerate(attachment.get("fields") or []):
            for key in ("title", "value"):
                yield Text(f"{at}.fields[{i}].{key}", str(fld.get(key, "")), True)
        yield from block_texts(attachment.get("blocks"), f"{at}.blocks")


@dataclass
class Asker:
    """A person in the stand-in workspace. Keeps each command's ack body (the one answer the call log does not
    hold) and counts the answers still to come through a response_url, so a test can wait for all of them."""

    slack: WorkspaceClient
    acks: list[Any] = field(default_factory=list)
    answers: int = 0

    async def run(self, text: str, channel: str = GENERAL) -> None:
        result = await self.slack.command(text, channel)
        assert result["status"] == 200, result
        self.acks.append(result["ack_body"])
        self.answers += 0 if result["ack_body"] else 1  # an empty ack: the answer follows on the response_url

    async def click(self, message: dict[str, Any], action_id: str, *, answers: int = 1) -> None:
        result = await self.slack.click(message, action_id)
        assert result["status"] == 200, result
        self.answers += answers

    async def settled(self, timeout: float = 15) -> list[dict[str, Any]]:  # noqa: ASYNC109 - owns its deadline
        """Wait until every answer counted so far has been posted; returns every message, all channels."""
        deadline = time.monotonic() + timeout
        while len(posts := await self.slack.calls("response_url")) < self.answers:
            assert time.monotonic() < deadline, f"{len(posts)} of {self.answers} answers arrived"
            await asyncio.sleep(0.05)
        return await self.slack.messages()

    async def sent(self) -> list[Text]:
        """Everything the bot sent to Slack: Web API calls, response_url posts and acks."""
        texts: list[Text] = []
        for call in await self.slack.calls():
            method, where = call["method"], f"{call['method']}#{call['seq']}"
            if method in MESSAGE_METHODS or method == "response_url":
                texts += message_texts(call["args"], where)
            else:
                assert method in SILENT_METHODS, f"the bot called {method}: say which of its arguments Slack parses"
        for n, body in enumerate(self.acks):
            if isinstance(body, dict):
                texts += message_texts(body, f"ack#{n}")
            elif isinstance(body, str) and body.strip():
                texts.append(Text(f"ack#{n} text", body, True))
        return texts


def escaped(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def raw_hostile(texts: list[Text]) -> list[str]:
    """Each occurrence of a hostile string, unescaped, in a field Slack parses."""
    return [f"{t.where}: {h}" for t in texts if t.parsed for h in HOSTILE for _ in range(t.text.count(h))]


def stray_controls(texts: list[Text]) -> list[str]:
    """Parsed fields with a ``<`` that opens no entity of ours, or an ``&`` that starts no escape: a cut or
    partly escaped value would show up here even when no whole hostile string survived."""
    found = []
    for t in texts:
        if not t.parsed:
            continue
        rest = OUR_ENTITIES.sub("", t.text)
        if "<" in rest or "&" in ENTITY.sub("", rest):
            found.append(f"{t.where}: {t.text[:300]!r}")
    return found


def double_escaped(texts: list[Text]) -> list[str]:
    """plain_text is shown as written: an escape there would show up as ``&lt;`` on screen."""
    return [f"{t.where}: {t.text!r}" for t in texts if not t.parsed and ENTITY.search(t.text)]


def assert_no_injection(texts: list[Text]) -> None:
    raw = raw_hostile(texts)
    assert not raw, f"{len(raw)} raw occurrences in parsed fields:\n" + "\n".join(raw)
    stray = stray_controls(texts)
    assert not stray, "unescaped < or & in parsed fields:\n" + "\n".join(stray)
    double = double_escaped(texts)
    assert not double, "escaped text in plain_text fields:\n" + "\n".join(double)


def assert_reached(texts: list[Text], *, plain_too: bool = True) -> None:
    """The hostile values did reach the messages (escaped where parsed, as written in plain_text), so a pass
    is not the absence of the values themselves."""
    parsed = "\n".join(t.text for t in texts if t.parsed)
    plain = "\n".join(t.text for t in texts if not t.parsed)
    for h in HOSTILE:
        assert escaped(h) in parsed, f"{h!r} never reached a parsed field"
        if plain_too:
            assert h in plain, f"{h!r} never reached a plain_text field"


def test_the_walker_reads_what_slack_parses() -> None:
    """The guard itself: parsed fields are found wherever Slack's rules put them, plain_text is let through, and
    an unknown block type stops the test rather than being skipped."""
    message = {
        "text": "<!channel>",
        "blocks": json.dumps(
            [
                {"type": "header", "text": {"type": "plain_text", "text": "<!here|here>"}},
                {"type": "section", "fields": [{"type": "mrkdwn", "text": "<@U0EVIL>"}]},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": "a & b <c>", "verbatim": True}]},
                {
                    "type": "actions",
                    "elements": [{"type": "button", "text": {"type": "plain_text", "text": "<#C0EVIL>"}}],
                },
            ]
        ),
        "attachments": [
            {"fallback": "<https://evil.example|click>", "fields": [{"title": "x", "value": "<!here|here>"}]}
        ],
        "metadata": {"event_type": "x", "event_payload": {"service_name": "<!channel>"}},
    }
    texts = list(message_texts(message, "m"))
    assert raw_hostile(texts) == [
        "m text: <!channel>",
        "m blocks[1].fields[0]: <@U0EVIL>",
        "m blocks[2].elements[0]: a & b <c>",
        "m attachments[0].fallback: <https://evil.example|click>",
        "m attachments[0].fields[0].value: <!here|here>",
    ]
    assert stray_controls([Text("m", "ok <@U0DEMO> at <!date^1^{time}|12:00 UTC> &amp; <!chan…", True)])
    assert not stray_controls([Text("m", "<@U0DEMO> &lt;!channel&gt; &amp; <!date^1^{time}|12:00 UTC>", True)])
    assert double_escaped([Text("m", "&lt;!channel&gt;", False)])
    with pytest.raises(AssertionError, match="rich_text"):
        list(block_texts([{"type": "rich_text", "elements": []}], "m"))


# -- the scenario --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fleet() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorSettings(port=0, services=0, workspaces=0, seed=13, churn=0)) as server:
        yield server


@pytest.fixture
def fleet_control(fleet: EmulatorServer) -> Iterator[Control]:
    ctl = Control(fleet.url)
    ctl.reset(services=0, seed=13)
    yield ctl
    ctl.http.close()


@pytest.fixture
async def asker(workspace_server: WorkspaceServer) -> AsyncIterator[Asker]:
    async with WorkspaceClient(workspace_server.url) as client:
        await client.reset()
        yield Asker(client)


def error_of(name: str) -> str:
    return f"{name} broke: see {name}"


def add_hostile(control: Control, status: str) -> dict[str, str]:
    """One service per hostile name (the emulator's control API must take any name the real API could return)."""
    ids = {}
    for name in HOSTILE:
        created = control.add(
            service_name=name, status=status, error_msg=error_of(name) if status == "failed" else None
        )
        assert created["service_name"] == name
        ids[name] = created["service_id"]
    return ids


@contextmanager
def alerting_bot(fleet: EmulatorServer, workspace_server: WorkspaceServer, tmp_path: Path) -> Iterator[BackgroundServe]:
    """``serve`` with its watcher and #alerts; one poll's transitions up to the number of hostile names are
    posted one by one (so each gets a thread and a resolved edit), more become one grouped message."""
    settings = slack_settings(
        fleet,
        workspace_server,
        services_bot_db=tmp_path / "store.db",
        services_bot_poll_seconds=POLL,
        services_bot_alert_channel=ALERTS,
        services_bot_group_threshold=len(HOSTILE),
        services_bot_max_retries=0,
    )
    with BackgroundServe(settings, mcp=False) as bot:
        polled(bot)
        yield bot


def polled(bot: BackgroundServe, polls: int = 1, timeout: float = 15) -> None:
    watcher = bot.runtime.watcher
    assert watcher is not None
    deadline, start = time.monotonic() + timeout, watcher.polls
    while watcher.polls < start + polls or watcher.last_success_at is None:
        assert time.monotonic() < deadline, "the watcher did not poll"
        time.sleep(0.02)


def bot_posts(messages: list[dict[str, Any]], channel: str = ALERTS) -> list[dict[str, Any]]:
    return [m for m in messages if m["user"] == "U0BOT" and not m["ephemeral"] and m["channel"] == channel]


def with_button(messages: list[dict[str, Any]], action_id: str, **match: Any) -> dict[str, Any]:
    """The last message with a button ``action_id`` whose fields equal ``match``."""
    found = [
        m
        for m in messages
        if f'"action_id": "{action_id}"' in json.dumps(m["blocks"]) and all(m.get(k) == v for k, v in match.items())
    ]
    assert found, f"no message with a {action_id} button and {match}"
    return found[-1]


async def test_answers_and_their_buttons_carry_no_mention_or_link(
    fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer, asker: Asker, tmp_path: Path
) -> None:
    add_hostile(fleet_control, "failed")
    fleet_control.add(service_name="calm-svc")
    with alerting_bot(fleet, workspace_server, tmp_path) as bot:
        await asker.slack.set_app_url(bot.url + "/slack/events")
        for text in ("failed limit:3", "failed public", "summary", "summary public", "unhealthy"):
            await asker.run(text)
        for name in HOSTILE:
            await asker.run(f'show "{name}"')
            await asker.run(f'failed name:"{name}"')
        await asker.run('show "<!channel>" public')
        await asker.run('name:"a & b <c>" public')
        first = with_button(await asker.settled(), "page_next", ephemeral=True)
        await asker.click(first, "service_details")
        await asker.click(first, "page_next")  # replaces the ephemeral page in place
        second = with_button(await asker.settled(), "page_previous", ts=first["ts"])
        await asker.click(second, "page_previous")
        again = with_button(await asker.settled(), "share_in_channel", ts=first["ts"])
        await asker.click(again, "share_in_channel", answers=2)  # the shared copy, then the private one deleted
        shared = [m for m in await asker.settled() if "Shared by" in json.dumps(m["blocks"])]
        assert shared and not shared[-1]["ephemeral"]
        await asker.click(shared[-1], "page_next")
        await asker.click(shared[-1], "service_details")
        await asker.settled()
    texts = await asker.sent()
    assert_no_injection(texts)
    assert_reached(texts)


async def test_errors_and_did_you_mean_carry_no_mention_or_link(
    fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer, asker: Asker, tmp_path: Path
) -> None:
    add_hostile(fleet_control, "failed")
    typed = (
        "failed,<!here|here>",
        "type:<!subteam^S1|@oncall>",
        "sort:<@U0EVIL>",
        "<#C0EVIL>:x",
        "failed faild<!channel> a",
        'history "a & b <c>" <https://evil.example|click>',
        "unwatch <!channel>",
        "mute <!channel> <@U0EVIL>",
    )
    looked_up = (  # ModelArts has no such service: the answer names the closest ones
        "show <!chanel>",
        "show <!here|hre>",
        "show <!subteam^S1|@oncal>",
        "show <@U0EVL>",
        "show <#C0EVI>",
        "show <https://evil.example|clik>",
        'show "a & b <d>"',
        "mute <@U0EVL> 2h",
    )
    with alerting_bot(fleet, workspace_server, tmp_path) as bot:
        await asker.slack.set_app_url(bot.url + "/slack/events")
        for text in typed + looked_up:
            await asker.run(text)
        await asker.settled()
    texts = await asker.sent()
    assert_no_injection(texts)
    assert_reached(texts, plain_too=False)  # errors have no plain_text fields
    said = "\n".join(t.text for t in texts if t.parsed)
    assert "Did you mean '&lt;!channel&gt;'" in said
    assert {"ack", "response_url"} <= {t.where.split("#")[0] for t in texts}


async def test_alerts_watches_and_history_carry_no_mention_or_link(
    fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer, asker: Asker, tmp_path: Path
) -> None:
    ids = add_hostile(fleet_control, "running")
    calm = fleet_control.add(service_name="calm-svc")["service_id"]
    slack = asker.slack
    with alerting_bot(fleet, workspace_server, tmp_path) as bot:
        await slack.set_app_url(bot.url + "/slack/events")
        await asker.run("watch failed name:<!channel>")
        await asker.run('watch failed,concerning name:"a & b <c>"')
        await asker.run("watch unhealthy name:<https://evil.example|click>")
        await asker.run("watches")
        await asker.run("watches public")
        await asker.settled()

        failures = [{"service_id": i, "status": "failed", "error_msg": error_of(n)} for n, i in ids.items()]
        fleet_control.post("/statuses", {"changes": failures})  # one poll, one alert each
        alerts = bot_posts(await slack.wait_for_messages(lambda m: len(bot_posts(m)) >= len(HOSTILE), timeout=15))
        await asker.click(alerts[0], "service_details")
        await asker.run("history")
        await asker.run('history "<!channel>" since:1h public')
        await asker.run('history "a & b <c>"')
        await asker.settled()

        fleet_control.post("/statuses", {"changes": [{"service_id": i, "status": "running"} for i in ids.values()]})
        await until_calls(slack, "chat.update", len(HOSTILE))  # the recoveries resolve the first alerts

        burst = [*failures, {"service_id": calm, "status": "failed", "error_msg": "quota"}]
        fleet_control.post("/statuses", {"changes": burst})  # more than the threshold: one grouped message
        found = await slack.wait_for_messages(
            lambda m: any(x["text"].startswith(f"{len(burst)} services changed state") for x in bot_posts(m)),
            timeout=15,
        )
        await asker.click(with_button(found, "show_transitions"), "show_transitions")
        replies = [m for m in bot_posts(found) if m.get("thread_ts") not in (None, m["ts"])]
        await asker.click(with_button(replies, "mute_service"), "mute_service")
        await asker.run("mute <@U0EVIL> 2h")
        await asker.run("unwatch 1")
        await asker.settled()
    texts, posted = await asker.sent(), await slack.calls("chat.postMessage")
    assert_no_injection(texts)
    assert_reached(texts, plain_too=False)
    assert "Transitions of <!channel> in the last 1h" in [t.text for t in texts if not t.parsed]
    sources = {t.where.split("#")[0] for t in texts}
    assert {"chat.postMessage", "chat.update", "response_url"} <= sources
    names = {(c["args"].get("metadata") or {}).get("event_payload", {}).get("service_name") for c in posted}
    assert set(HOSTILE) <= names, "metadata is data, not mrkdwn: it keeps the names as the API gave them"
    updated = [t.text for t in texts if t.where.startswith("chat.update") and t.where.endswith(" text")]
    assert len([t for t in updated if t.startswith("Resolved: ")]) >= len(HOSTILE)
    assert all(t.startswith(("Resolved: ", "Relapsed: ")) for t in updated), "a first alert says what its thread says"


async def until_calls(slack: WorkspaceClient, method: str, count: int, timeout: float = 15) -> None:  # noqa: ASYNC109
    """Wait until the stand-in has recorded ``count`` calls of ``method``."""
    deadline = time.monotonic() + timeout
    while len(await slack.calls(method)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} {method} calls"
        await asyncio.sleep(0.05)
