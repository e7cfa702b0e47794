"""In ``serve``, answers stand on the watcher's state (``core.read_model``): a flip made through the emulator is in
the very next answer (the on-demand poll saw it) at the cost of that poll; with ModelArts down the answer comes
from memory and says how old it is and why; a deleted service is gone from answers after one poll; paging, ``show``
by name and MCP answer the same way. The watcher's own loop polls only at start here (every 10 minutes), so every
later change an answer shows was seen by the poll that answer made."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from services_bot.emulator import EmulatorServer, EmulatorSettings
from services_bot.workspace import WorkspaceClient, WorkspaceServer

from services_bot.serve import BackgroundServe
from tests.conftest import Control, slack_settings
from tests.test_slack_app import answers, ask, button, dumps, text_of

FLEET = 2000
PAGE = 100
"""A live listing of the fleet takes FLEET / PAGE = 20 list requests; an answer from the watcher's state, one."""


@pytest.fixture(scope="module")
def big_fleet() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorSettings(port=0, services=FLEET, workspaces=0, seed=17, churn=0)) as server:
        yield server


@pytest.fixture
def fleet_control(big_fleet: EmulatorServer) -> Iterator[Control]:
    ctl = Control(big_fleet.url)
    ctl.reset(services=FLEET, seed=17)
    yield ctl
    ctl.delete("/faults")
    ctl.http.close()


@contextmanager
def watching_bot(
    server: EmulatorServer, workspace: WorkspaceServer, db: Path, **overrides: Any
) -> Iterator[BackgroundServe]:
    settings = slack_settings(
        server,
        workspace,
        services_bot_db=db,
        services_bot_poll_seconds=600,
        services_bot_page_size=PAGE,
        services_bot_max_retries=0,
        **overrides,
    )
    with BackgroundServe(settings, mcp=True) as running:
        deadline = time.monotonic() + 30
        while running.runtime.watcher is None or running.runtime.watcher.last_success_at is None:
            assert time.monotonic() < deadline, "the watcher did not complete its first poll"
            time.sleep(0.05)
        yield running


@pytest.fixture
def bot(
    big_fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer, tmp_path: Path
) -> Iterator[BackgroundServe]:
    with watching_bot(big_fleet, workspace_server, tmp_path / "store.db") as running:
        yield running


@pytest.fixture
async def slack(workspace_server: WorkspaceServer, bot: BackgroundServe) -> AsyncIterator[WorkspaceClient]:
    async with WorkspaceClient(workspace_server.url) as client:
        await client.reset()
        await client.set_app_url(bot.url + "/slack/events")
        yield client


def running_service(control: Control, big_fleet: EmulatorServer) -> dict[str, Any]:
    rows = control.list_raw(big_fleet.settings.project_id, big_fleet.settings.token, status="running")["services"]
    return rows[0]  # type: ignore[no-any-return]


def list_requests(control: Control) -> int:
    return int(control.requests()["by_route"]["list"])


async def test_a_flip_is_in_the_next_answer_at_the_cost_of_one_poll(
    bot: BackgroundServe, slack: WorkspaceClient, fleet_control: Control, big_fleet: EmulatorServer
) -> None:
    service = running_service(fleet_control, big_fleet)
    fleet_control.set_status(service["service_id"], "failed", error_msg="OOMKilled: container memory 4Gi")
    fleet_control.clear_requests()
    reply = await ask(slack, "failed")
    shown = text_of(reply)
    assert service["service_name"] in shown and "OOMKilled" in shown, "the flip is in the answer asked right after it"
    assert list_requests(fleet_control) <= 2, "the answer cost the watcher's poll, not a listing of the fleet"
    fleet_control.clear_requests()
    summary = await ask(slack, "summary")
    assert service["service_name"] in text_of(summary) and list_requests(fleet_control) <= 2


async def test_with_modelarts_down_the_answer_comes_from_memory_with_its_age(
    bot: BackgroundServe, slack: WorkspaceClient, fleet_control: Control
) -> None:
    fleet_control.faults(error_status=503, error_count=100_000)
    reply = await ask(slack, "summary")
    shown = text_of(reply)
    assert f"{FLEET} services" in shown, "the counts come from the watcher's state"
    assert "as of" in shown and "ModelArts is not answering" in shown, shown
    listing = await ask(slack, "limit:5")
    assert f"1–5 of {FLEET}" in text_of(listing) and "ModelArts is not answering" in text_of(listing)


async def test_a_deleted_service_is_gone_after_one_poll(
    bot: BackgroundServe, slack: WorkspaceClient, fleet_control: Control, big_fleet: EmulatorServer
) -> None:
    service = running_service(fleet_control, big_fleet)
    before = await ask(slack, f"show {service['service_name']}")
    assert service["service_id"] in text_of(before)
    fleet_control.delete(f"/services/{service['service_id']}")
    listing = await ask(slack, f"name:{service['service_name']}")
    assert "Nothing matches." in text_of(listing)
    gone = await ask(slack, f"show {service['service_name']}")
    assert "No service with id or name" in text_of(gone)


async def test_failed_answers_follow_recoveries_and_deletions(
    bot: BackgroundServe, slack: WorkspaceClient, fleet_control: Control, big_fleet: EmulatorServer
) -> None:
    """`failed` reads only the unhealthy services of the state: one that recovers or is deleted leaves it with
    the next poll, one that fails joins it, and the count stays that of the fleet's failed services."""
    rows = fleet_control.list_raw(big_fleet.settings.project_id, big_fleet.settings.token, status="running")
    recovering, deleted, still = rows["services"][:3]
    for service in (recovering, deleted, still):
        fleet_control.set_status(service["service_id"], "failed", "OOMKilled")
    shown = text_of(await ask(slack, "failed limit:100"))
    assert all(s["service_name"] in shown for s in (recovering, deleted, still)), shown
    fleet_control.set_status(recovering["service_id"], "running")
    fleet_control.delete(f"/services/{deleted['service_id']}")
    failed = fleet_control.list_raw(big_fleet.settings.project_id, big_fleet.settings.token, status="failed")
    shown = text_of(await ask(slack, "failed limit:100"))
    assert still["service_name"] in shown
    assert recovering["service_name"] not in shown and deleted["service_name"] not in shown, shown
    assert f"of {failed['total_count']}" in shown or f"{failed['total_count']} failed" in shown, shown


async def test_show_by_name_and_a_next_click_cost_no_listing(
    bot: BackgroundServe, slack: WorkspaceClient, fleet_control: Control, big_fleet: EmulatorServer
) -> None:
    service = running_service(fleet_control, big_fleet)
    fleet_control.clear_requests()
    shown = await ask(slack, f"show {service['service_name']}")
    assert service["service_id"] in text_of(shown)
    counts = fleet_control.requests()["by_route"]
    assert counts["list"] <= 2 and counts["show"] == 1, counts
    first = await ask(slack, "limit:5")
    fleet_control.clear_requests()
    await slack.click(first, "page_next", button(first, "page_next")["value"])
    found = await slack.wait_for_messages(lambda m: "6–10 of" in dumps(answers(m)), channel=first["channel"])
    assert "6–10 of" in text_of(answers(found)[-1])
    assert list_requests(fleet_control) <= 2


async def test_show_by_name_asks_the_details_while_the_poll_is_under_way(
    big_fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer, tmp_path: Path
) -> None:
    """A name the watcher's state already knows: its details (and, for a failed service, its events) go out
    beside the poll that brings the state up to now, not after it, so `show NAME` costs one API round trip
    instead of two (seen in the emulator's log: they arrived before the poll's list request was answered)."""
    service = running_service(fleet_control, big_fleet)
    with watching_bot(big_fleet, workspace_server, tmp_path / "store.db", services_bot_answer_fresh_seconds=0) as bot:
        async with WorkspaceClient(workspace_server.url) as slack:
            await slack.reset()
            await slack.set_app_url(bot.url + "/slack/events")
            fleet_control.set_status(service["service_id"], "failed", "OOMKilled")
            await ask(slack, "failed")  # the state knows it failed (as after its alert)
            fleet_control.faults(latency_ms=300)
            fleet_control.clear_requests()
            shown = await ask(slack, f"show {service['service_name']}")
    assert service["service_id"] in text_of(shown)
    log = fleet_control.requests()["log"]
    polls = [e for e in log if e["path"].endswith("/services")]
    details = [e for e in log if e["path"].endswith(service["service_id"])]
    events = [e for e in log if e["path"].endswith(service["service_id"] + "/events")]
    assert polls and len(details) == 1 and events, log
    poll_ended = min(e["ended_s"] for e in polls)
    assert details[0]["started_s"] < poll_ended, "the details waited for the poll"
    assert events[0]["started_s"] < poll_ended, "a failed service's events waited for the poll"


@pytest.mark.parametrize("command", ["summary", "failed"])
async def test_failure_causes_the_state_lacks_are_asked_while_the_poll_is_under_way(
    big_fleet: EmulatorServer,
    fleet_control: Control,
    workspace_server: WorkspaceServer,
    tmp_path: Path,
    command: str,
) -> None:
    """Services that were failed before `serve` started: the watcher's start-up listing has no cause for them
    (list rows carry none, Q17). The first `summary` or `failed` asks their details beside its poll, not after it,
    so it costs one API round trip instead of two, and still shows every cause."""
    rows = fleet_control.list_raw(big_fleet.settings.project_id, big_fleet.settings.token, status="running")
    flipped = rows["services"][:3]
    for number, service in enumerate(flipped):
        fleet_control.set_status(service["service_id"], "failed", f"ImagePullBackOff: registry {number} refused")
    with watching_bot(big_fleet, workspace_server, tmp_path / "store.db", services_bot_answer_fresh_seconds=0) as bot:
        async with WorkspaceClient(workspace_server.url) as slack:
            await slack.reset()
            await slack.set_app_url(bot.url + "/slack/events")
            await ask(slack, "name:no-such-service")  # the first answer's poll also checks the API's order
            fleet_control.faults(latency_ms=300)
            fleet_control.clear_requests()
            shown = text_of(await ask(slack, command))
    for number, service in enumerate(flipped):
        assert service["service_name"] in shown and f"registry {number} refused" in shown, shown
    log = fleet_control.requests()["log"]
    poll_ended = min(e["ended_s"] for e in log if e["path"].endswith("/services"))
    started = {e["path"].rsplit("/", 1)[-1]: e["started_s"] for e in log if "/services/" in e["path"]}
    late = [s["service_name"] for s in flipped if started[s["service_id"]] >= poll_ended]
    assert not late, f"details waited for the poll: {late}"


async def test_mcp_answers_from_the_watchers_state(
    bot: BackgroundServe, fleet_control: Control, big_fleet: EmulatorServer
) -> None:
    service = running_service(fleet_control, big_fleet)
    fleet_control.set_status(service["service_id"], "concerning")
    fleet_control.clear_requests()
    async with Client(streamable_http_client(bot.url + "/mcp", http_client=httpx2.AsyncClient())) as client:
        result = await client.call_tool("list_services", {"limit": 5})
    assert not result.is_error, result.content
    first = result.structured_content["services"][0]  # type: ignore[index]
    assert (first["service_name"], first["status"]) == (service["service_name"], "concerning"), "newest change first"
    assert result.structured_content["total"] == FLEET  # type: ignore[index]
    assert list_requests(fleet_control) <= 2, "not a listing of the fleet"


async def test_concurrent_answers_share_one_poll_and_a_recent_poll_is_not_repeated(
    big_fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer, tmp_path: Path
) -> None:
    with watching_bot(big_fleet, workspace_server, tmp_path / "store.db", services_bot_answer_fresh_seconds=3.0) as bot:
        async with WorkspaceClient(workspace_server.url) as slack:
            await slack.reset()
            await slack.set_app_url(bot.url + "/slack/events")
            await asyncio.sleep(3.1)  # the start-up poll is older than the fresh window: the next answer polls
            fleet_control.clear_requests()
            acks = await asyncio.gather(*(slack.command(f"limit:{n}") for n in range(1, 11)))
            assert all(a["status"] == 200 for a in acks)
            await slack.wait_for_messages(lambda m: len(answers(m)) >= 10, channel="C0GENERAL", timeout=10)
            polled = list_requests(fleet_control)
            assert 1 <= polled <= 2, f"ten answers, one shared poll of one request: {polled} list requests"
            fleet_control.clear_requests()
            await ask(slack, "summary")
            assert list_requests(fleet_control) == 0, "a poll younger than the fresh window is not repeated"
