"""Hostile and oversized inputs end to end: name globs that cannot freeze the process, every argument bounded with
a clear message that quotes only a short prefix, forged Mute clicks refused, idle MCP sessions expired.

Slack runs through the local stand-in (signed commands and clicks) against a ``serve`` of its own with two
people in the workspace; MCP through the SDK's own ``Client``; the fleet is the emulator over loopback."""

from __future__ import annotations

import asyncio
import fnmatch
import json
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from services_bot.core.errors import QueryError
from services_bot.core.grammar import parse_command
from services_bot.core.notifications import (
    Subscription,
    Transition,
    parse_duration,
    parse_history_args,
    parse_mute_args,
    parse_watch_args,
    route,
)
from services_bot.core.query import ServiceQueries, ServiceQuery, name_matcher
from services_bot.core.store import Store
from services_bot.emulator import EmulatorServer
from services_bot.tools.server import create_mcp_server
from services_bot.workspace import WorkspaceClient, WorkspaceServer, WorkspaceSettings
from services_bot.workspace.settings import UserSpec
from slack_sdk.web.async_client import AsyncWebClient

from services_bot.serve import BackgroundServe
from services_bot.wiring import open_queries
from tests.conftest import Control, make_settings, queries_for, slack_settings

GENERAL = "C0GENERAL"
ASKER, OTHER = "U0DEMO", "U0OTHER"
MEGABYTE = "x" * 1_000_000


# -- the glob matcher ------------------------------------------------------------------------------------------

NAMES = ["ocr-prod", "OCR-Staging", "a[b", "a]b", "a-b", "abc", "", "[", "]", "x!y", "résumé-v2", "a\\b", "a.b"]
PATTERNS = [
    "ocr-*", "*prod", "o?r*", "[ab]*", "[!a]*", "[]]", "[!]]", "[a-]b", "a[-]b", "[z-a]*", "[!z-a]", "a[b", "[",
    "*[", "[[]", "a[!b-c]b", "*.*", "a\\b", "*-*-*", "[a-c][!x]?", "r*[é]*", "***", "?", "", "[A-Z]*", "[^a]*",
]  # fmt: skip


def test_globs_match_exactly_as_fnmatch_does_case_insensitively() -> None:
    for pattern in PATTERNS:
        matches = name_matcher(pattern)
        for name in NAMES:
            if any(ch in pattern for ch in "*?["):
                expected = fnmatch.fnmatchcase(name.lower(), pattern.lower())
            else:
                expected = pattern.lower() in name.lower()
            assert matches(name) is expected, (pattern, name)


def test_random_globs_agree_with_fnmatch() -> None:
    """Seeded fuzz over the characters that matter to globs: the linear matcher never disagrees with fnmatch."""
    rng = random.Random(11)
    for _ in range(3000):
        pattern = "".join(rng.choice("ab-[]!*?^\\") for _ in range(rng.randint(1, 9)))
        name = "".join(rng.choice("ab-[]!^\\") for _ in range(rng.randint(0, 7)))
        if any(ch in pattern for ch in "*?["):
            assert name_matcher(pattern)(name) is fnmatch.fnmatchcase(name, pattern), (pattern, name)


@pytest.mark.parametrize(
    ("pattern", "name", "budget"),
    [
        ("*a" * 100, "a" * 10_000 + "b", 0.05),
        ("*" + "a" * 199, "a" * 10_000, 0.05),
        ("*" + "a" * 198 + "b*", "a" * 10_000, 0.05),
        ("*[a-z]" * 33 + "?", "a" * 10_000 + "-", 0.05),
        ("[" * 200, "[" * 10_000, 0.05),
        # longer than a pattern may now be, as a subscription stored before the bound could be: linear, not 12 s
        ("[" * 20_000, "abc", 0.5),
        ("[!]" * 5000 + "*", "]" * 10_000, 0.5),
    ],
)
def test_pathological_globs_compile_and_match_in_bounded_time(pattern: str, name: str, budget: float) -> None:
    """Compiling is linear in the pattern and matching costs at most len(name) x len(pattern), no backtracking."""
    name_matcher.cache_clear()
    started = time.perf_counter()
    matches = name_matcher(pattern)
    matches(name)
    assert time.perf_counter() - started < budget


def test_a_stored_pathological_subscription_keeps_routing_fast() -> None:
    """A subscription stored before the bounds existed (``watch failed name:[[[…``) must not slow every poll."""
    subscriptions = [
        Subscription(channel="C1", statuses=frozenset({"failed"}), name_glob="[" * 4000),
        Subscription(channel="C2", statuses=frozenset({"failed"})),
    ]
    burst = [
        Transition(target="default", service_id=f"svc-{i}", service_name=f"svc-{i}", kind="changed",
                   from_status="running", to_status="failed")
        for i in range(20)
    ]  # fmt: skip
    started = time.perf_counter()
    pairs = route(burst, subscriptions)
    assert time.perf_counter() - started < 0.1
    assert {channel for channel, _t in pairs} == {"C2"}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("failed name:" + "x" * 2000, "at most 1000"),
        ("name:" + "x" * 201, "at most 200"),
        ("ws:" + "x" * 129, "at most 128"),
        ("model:" + "x" * 129, "at most 128"),
        ("tag:" + "x" * 513, "at most 512"),
        ("target:" + "x" * 129, "at most 128"),
        ("show " + "x" * 201, "at most 200"),
    ],
)
def test_the_grammar_bounds_every_filter_with_the_same_limits(text: str, fragment: str) -> None:
    with pytest.raises(QueryError, match=fragment) as refused:
        parse_command(text)
    assert "x" * 81 not in refused.value.user_text()


@pytest.mark.parametrize(
    "args",
    [["name:" + "[" * 201], ["ws:" + "x" * 129], ["target:" + "x" * 129]],
)
def test_watch_filters_are_bounded(args: list[str]) -> None:
    with pytest.raises(QueryError, match="at most"):
        parse_watch_args(["failed", *args])


def test_durations_are_bounded_before_any_arithmetic() -> None:
    for text in ("999999999w", "9" * 30 + "s"):
        with pytest.raises(QueryError, match="too long: at most 366 days"):
            parse_duration(text)
    with pytest.raises(QueryError, match="at most 32"):
        parse_duration("9" * 5000)
    with pytest.raises(QueryError, match="at most 30 days"):
        parse_mute_args(["ocr-prod", "999999999w"])
    assert parse_history_args(["since:366d"])[1] == timedelta(days=366)


# -- MCP -------------------------------------------------------------------------------------------------------


def _server(emulator_server: EmulatorServer, store: Path | None = None):  # type: ignore[no-untyped-def]
    settings = make_settings(emulator_server)
    return create_mcp_server(lambda: open_queries(settings), open_store=(lambda: Store(store)) if store else None)


def _text(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


async def test_mcp_unclosed_brackets_are_refused_at_once(emulator_server: EmulatorServer, control: Control) -> None:
    async with Client(_server(emulator_server)) as client:
        started = time.perf_counter()
        result = await client.call_tool("list_services", {"name": "[" * 20_000})
        took = time.perf_counter() - started
    text = _text(result)
    assert result.is_error and "200" in text and "name" in text, text
    assert "[" * 81 not in text and len(text) < 500
    assert took < 1.0


async def test_mcp_long_valid_globs_answer_fast_and_right(emulator_server: EmulatorServer, control: Control) -> None:
    raw = control.list_raw(emulator_server.settings.project_id, emulator_server.settings.token)["services"]
    names = [s["service_name"] for s in raw if s.get("workspace_id") in (None, "0")]
    patterns = ["*" * 100 + "-" + "*" * 99, "*?" * 99 + "*", "*-*" * 66, "*[a-m]*" * 28]
    async with Client(_server(emulator_server)) as client:
        for pattern in patterns:
            assert len(pattern) <= 200
            started = time.perf_counter()
            result = await client.call_tool("list_services", {"name": pattern, "limit": 1})
            took = time.perf_counter() - started
            assert not result.is_error, _text(result)
            expected = sum(fnmatch.fnmatchcase(n.lower(), pattern) for n in names)
            assert result.structured_content and result.structured_content["total"] == expected, pattern
            assert took < 0.5, (pattern, took)


async def test_matching_a_large_listing_off_the_event_loop_gives_the_same_answer(
    emulator_server: EmulatorServer, control: Control
) -> None:
    async with queries_for(emulator_server) as inline:
        threaded = ServiceQueries(inline.clients, cache_seconds=0, inline_match_rows=0)
        for pattern in ("*-*", "r*", "[a-m]*[!0-4]", "prod"):
            query = ServiceQuery.build(name=pattern, limit=1000, sort="name")
            on_loop, in_thread = await inline.list(query), await threaded.list(query)
            assert on_loop.total > 0, pattern
            assert [s.service_id for s in in_thread.services] == [s.service_id for s in on_loop.services]


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("list_services", {"tags": MEGABYTE}),
        ("list_services", {"workspace_id": MEGABYTE}),
        ("list_services", {"model_id": MEGABYTE}),
        ("list_services", {"name": MEGABYTE}),
        ("list_services", {"cursor": MEGABYTE}),
        ("summarize_services", {"workspace_id": MEGABYTE}),
        ("get_service", {"service": MEGABYTE}),
        ("list_transitions", {"service": MEGABYTE}),
        ("list_transitions", {"since": MEGABYTE}),
        ("list_transitions", {"since": "999999999w"}),
        ("list_transitions", {"since": "9" * 5000 + "s"}),
    ],
)
async def test_mcp_oversized_arguments_are_clear_tool_errors(
    emulator_server: EmulatorServer, control: Control, tmp_path: Path, tool: str, args: dict[str, Any]
) -> None:
    async with Client(_server(emulator_server, tmp_path / "store.db")) as client:
        result = await client.call_tool(tool, args)
    text = _text(result)
    assert result.is_error, text
    assert text.strip() != f"Error executing tool {tool}", "an unexpected exception, not a clear error"
    assert "at most" in text, text
    assert "x" * 81 not in text and "9" * 81 not in text and len(text) < 500, text


# -- Slack -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_people() -> Iterator[WorkspaceServer]:
    users = [UserSpec(id=ASKER, name="demo"), UserSpec(id=OTHER, name="other")]
    with WorkspaceServer(WorkspaceSettings(users=users)) as server:
        yield server


@pytest.fixture(scope="module")
def bot_for_two(emulator_server: EmulatorServer, two_people: WorkspaceServer) -> Iterator[BackgroundServe]:
    with BackgroundServe(slack_settings(emulator_server, two_people), watch=False) as bot:
        yield bot


@pytest.fixture
async def slack(two_people: WorkspaceServer, bot_for_two: BackgroundServe) -> AsyncIterator[WorkspaceClient]:
    async with WorkspaceClient(two_people.url) as client:
        await client.reset()
        await client.set_app_url(bot_for_two.url + "/slack/events")
        yield client


def _store_rows(bot: BackgroundServe, table: str) -> list[sqlite3.Row]:
    with sqlite3.connect(bot.settings.services_bot_db) as conn:
        conn.row_factory = sqlite3.Row
        return list(conn.execute(f"SELECT * FROM {table}"))  # a fixed table name


def _private_to(messages: list[dict[str, Any]], user: str) -> list[dict[str, Any]]:
    return [m for m in messages if m["ephemeral"] and m.get("visible_to") == user]


async def test_a_huge_filter_is_refused_and_does_not_hold_up_anyone_else(
    slack: WorkspaceClient, control: Control
) -> None:
    async def other_person() -> dict[str, Any]:
        await asyncio.sleep(0.3)
        return await slack.command("failed", GENERAL, user=OTHER)

    huge, other = await asyncio.gather(slack.command("name:" + "[" * 16_000, GENERAL, user=ASKER), other_person())
    body = json.dumps(huge["ack_body"])
    assert huge["status"] == 200 and "1000" in body and "at most" in body, body
    assert "[" * 81 not in body
    assert other["status"] == 200 and not other["timed_out"] and other["ack_ms"] < 1000, other
    found = await slack.wait_for_messages(lambda m: _private_to(m, OTHER), channel=GENERAL, timeout=10)
    assert "services" in json.dumps(_private_to(found, OTHER)[-1]["blocks"])


async def test_watch_with_an_overlong_name_glob_is_refused(
    slack: WorkspaceClient, bot_for_two: BackgroundServe, control: Control
) -> None:
    before = len(_store_rows(bot_for_two, "subscriptions"))
    ack = await slack.command("watch failed name:" + "[" * 300, GENERAL, user=ASKER)
    assert ack["status"] == 200
    found = await slack.wait_for_messages(lambda m: _private_to(m, ASKER), channel=GENERAL, timeout=10)
    text = json.dumps(_private_to(found, ASKER)[-1])
    assert "200" in text and "name" in text and "[" * 81 not in text, text
    assert len(_store_rows(bot_for_two, "subscriptions")) == before


async def test_history_since_too_far_back_is_a_clear_error(slack: WorkspaceClient, control: Control) -> None:
    await slack.command("history since:999999999w", GENERAL, user=ASKER)
    found = await slack.wait_for_messages(lambda m: _private_to(m, ASKER), channel=GENERAL, timeout=10)
    text = json.dumps(_private_to(found, ASKER)[-1])
    assert "at most a year" in text and "unexpected" not in text.lower(), text


async def _forged_mute_button(two_people: WorkspaceServer, value: dict[str, Any]) -> dict[str, Any]:
    """An alert-like message with a Mute button whose value the bot never wrote: Slack signs the click anyway."""
    web = AsyncWebClient(token=two_people.settings.bot_token, base_url=two_people.api_url)
    button = {"type": "button", "action_id": "mute_service", "text": {"type": "plain_text", "text": "Mute 1h"},
              "value": json.dumps(value)}  # fmt: skip
    blocks = [{"type": "actions", "elements": [button]}]
    posted = await web.chat_postMessage(channel=GENERAL, text="forged", blocks=blocks)
    return {"ts": posted["ts"], "channel": GENERAL}


@pytest.mark.parametrize(
    "value",
    [
        {"id": "0badc0de-0000-4000-8000-000000000000", "t": "default", "n": "ghost-service"},
        {"id": "../../etc", "t": "default", "n": "ghost-service"},
        {"id": "REAL", "t": "no-such-target", "n": "ghost-service"},
    ],
)
async def test_a_forged_mute_click_for_a_service_that_does_not_exist_stores_nothing(
    slack: WorkspaceClient,
    two_people: WorkspaceServer,
    bot_for_two: BackgroundServe,
    control: Control,
    emulator_server: EmulatorServer,
    value: dict[str, Any],
) -> None:
    if value["id"] == "REAL":
        raw = control.list_raw(emulator_server.settings.project_id, emulator_server.settings.token)
        value = {**value, "id": raw["services"][0]["service_id"]}
    before = len(_store_rows(bot_for_two, "mutes"))
    message = await _forged_mute_button(two_people, value)
    clicked = await slack.click(message, "mute_service", user=ASKER)
    assert clicked["status"] == 200 and not clicked["timed_out"]
    found = await slack.wait_for_messages(lambda m: _private_to(m, ASKER), channel=GENERAL, timeout=10)
    text = json.dumps(_private_to(found, ASKER)[-1])
    assert "Nothing was muted: there is no service" in text and "ghost-service" not in text, text
    assert len(_store_rows(bot_for_two, "mutes")) == before
    public = [m for m in await slack.messages(GENERAL) if not m["ephemeral"] and "muted *" in json.dumps(m)]
    assert not public


async def test_a_mute_click_for_a_real_service_still_mutes(
    slack: WorkspaceClient,
    two_people: WorkspaceServer,
    bot_for_two: BackgroundServe,
    control: Control,
    emulator_server: EmulatorServer,
) -> None:
    created = control.add(service_name="real-noisy-svc", status="failed")
    message = await _forged_mute_button(two_people, {"id": created["service_id"], "t": "default", "n": "spoofed"})
    await slack.click(message, "mute_service", user=ASKER)
    found = await slack.wait_for_messages(lambda m: "muted *real-noisy-svc*" in json.dumps(m), channel=GENERAL)
    assert found
    rows = [r for r in _store_rows(bot_for_two, "mutes") if r["service_id"] == created["service_id"]]
    assert len(rows) == 1 and rows[0]["target"] == "default" and rows[0]["service_name"] == "real-noisy-svc"


# -- MCP sessions over HTTP ------------------------------------------------------------------------------------

MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def _rpc(method: str, request_id: int | None = None, **params: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if request_id is not None:
        message["id"] = request_id
    return message


async def _open_session(http: httpx.AsyncClient, url: str) -> str:
    init = _rpc("initialize", 1, protocolVersion="2025-06-18", capabilities={},
                clientInfo={"name": "idle-test", "version": "0"})  # fmt: skip
    opened = await http.post(url, json=init, headers=MCP_HEADERS)
    assert opened.status_code == 200, opened.text[:200]
    session = opened.headers["mcp-session-id"]
    headers = {**MCP_HEADERS, "mcp-session-id": session, "mcp-protocol-version": "2025-06-18"}
    assert (await http.post(url, json=_rpc("notifications/initialized"), headers=headers)).status_code == 202
    return session


async def test_an_idle_mcp_session_is_expired(
    emulator_server: EmulatorServer, workspace_server: WorkspaceServer, control: Control
) -> None:
    settings = slack_settings(emulator_server, workspace_server, services_bot_mcp_session_idle_seconds=1.0)
    with BackgroundServe(settings, watch=False) as bot:
        url = bot.url + "/mcp"
        async with httpx.AsyncClient(timeout=10) as http:
            session = await _open_session(http, url)
            headers = {**MCP_HEADERS, "mcp-session-id": session, "mcp-protocol-version": "2025-06-18"}
            alive = await http.post(url, json=_rpc("tools/list", 2), headers=headers)
            assert alive.status_code == 200 and "list_services" in alive.text
            await asyncio.sleep(2.5)
            expired = await http.post(url, json=_rpc("tools/list", 3), headers=headers)
            assert expired.status_code == 404, expired.text[:200]
            assert await _open_session(http, url) != session, "a new session can be opened"


def test_sessions_idle_for_half_an_hour_by_default() -> None:
    from services_bot.core.config import Settings

    assert Settings(_env_file=None).services_bot_mcp_session_idle_seconds == 1800  # type: ignore[call-arg]
