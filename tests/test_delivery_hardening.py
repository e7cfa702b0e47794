"""Alerts survive what Slack does to them; first, a transient error between a failure and its recovery.
Everything runs for real: the emulator over loopback, ``serve`` in the background, the Slack stand-in with its
faults."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulator import EmulatorServer, EmulatorSettings
from services_bot.serve import BackgroundServe
from services_bot.workspace import WorkspaceClient, WorkspaceServer
from tests.conftest import Control
from tests.test_notifications import (
    ALERTS,
    alert_settings,
    bot_messages,
    service,
    wait_baseline,
)
from tests.test_slack_views import mrkdwn_texts

FAST = {
    "services_bot_delivery_backoff_seconds": 0.05,
    "services_bot_delivery_backoff_max_seconds": 0.3,
}
"""Ten tries (what delivery used to give up after) take about two seconds with these values."""


@pytest.fixture(scope="module")
def fleet() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorSettings(port=0, services=20, workspaces=0, seed=23, churn=0)) as server:
        yield server


@pytest.fixture
def fleet_control(fleet: EmulatorServer) -> Iterator[Control]:
    ctl = Control(fleet.url)
    ctl.reset(services=20, seed=23)
    yield ctl
    ctl.http.close()


@pytest.fixture
async def slack(workspace_server: WorkspaceServer) -> AsyncIterator[WorkspaceClient]:
    async with WorkspaceClient(workspace_server.url) as client:
        await client.reset()
        yield client


def top_level(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in bot_messages(messages) if not m.get("thread_ts") or m["thread_ts"] == m["ts"]]


def blocks_text(message: dict[str, Any]) -> str:
    return "\n".join(mrkdwn_texts(message["blocks"] or []))


async def health(bot: BackgroundServe) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        answer = await http.get(bot.url + "/healthz")
    return answer.status_code, answer.json()


async def health_until(bot: BackgroundServe, check: Any, what: str, timeout: float = 15) -> dict[str, Any]:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while True:
        code, body = await health(bot)
        if check(code, body):
            return body
        assert time.monotonic() < deadline, f"timed out waiting for {what}; last /healthz: {code} {body}"
        await asyncio.sleep(0.1)


async def metric(bot: BackgroundServe, name: str, **labels: str) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(bot.url + "/metrics")).text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", re.M)
    for found_labels, value in pattern.findall(text):
        if ",".join(sorted(found_labels.split(","))) == wanted or (not labels and not found_labels):
            return float(value)
    return 0.0


async def calls_of(slack: WorkspaceClient, method: str) -> list[dict[str, Any]]:
    return await slack.calls(method)


def crash_after_posting(db: Path) -> None:
    """What a crash right after Slack took the posts leaves behind: the rows in flight, their ts unknown."""
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE outbox SET state = 'in_flight', ts = NULL")


async def _posted_any(slack: WorkspaceClient) -> bool:
    return bool(await calls_of(slack, "chat.postMessage"))


async def _until_async(check: Any, what: str, timeout: float = 15) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


# -- 5: a service's alerts keep their order --------------------------------------------------------


async def test_a_recovery_waits_for_its_failure_alert_that_met_one_transient_error(
    fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer, slack: WorkspaceClient,
    tmp_path: Path,
) -> None:  # fmt: skip
    created = service(fleet_control, "ordered-svc")
    settings = alert_settings(
        fleet, workspace_server, tmp_path / "store.db",
        services_bot_delivery_backoff_seconds=2.0, services_bot_delivery_backoff_max_seconds=2.0,
    )  # fmt: skip
    with BackgroundServe(settings) as bot:
        wait_baseline(bot, 2)
        await slack.set_fault("chat.postMessage", status=500, count=1)
        fleet_control.set_status(created["service_id"], "failed", "boom")
        await _until_async(lambda: _posted_any(slack), "the failure alert was tried")
        fleet_control.set_status(created["service_id"], "running")
        await slack.wait_for_messages(lambda m: len(bot_messages(m)) >= 2, channel=ALERTS, timeout=15)
        found = await slack.wait_for_messages(
            lambda m: any(x["edited"] for x in bot_messages(m)), channel=ALERTS, timeout=5
        )
    (root,) = top_level(found)
    assert "running → *failed*" in blocks_text(root), "the failure opens the thread"
    assert "*Resolved*" in json.dumps(root["blocks"]) and root["text"].startswith("Resolved")
    (reply,) = [m for m in bot_messages(found) if m is not root]
    assert reply["thread_ts"] == root["ts"] and "failed → *running*" in blocks_text(reply)
