"""Which build is this: `--version`, MCP's serverInfo, and the User-Agent the API and Slack see."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

from mcp import Client
from services_bot.core.query import ServiceQuery
from services_bot.emulator import EmulatorServer
from services_bot.workspace import WorkspaceClient, WorkspaceServer

from services_bot.serve import BackgroundServe
from tests.conftest import Control, queries_for, slack_settings
from tests.test_mcp_tools import server_for
from tests.test_slack_app import ask

INSTALLED = version("services-bot")


def test_services_bot_version_prints_the_installed_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "services_bot.cli", "--version"], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0 and proc.stdout.strip() == f"services-bot {INSTALLED}"


async def test_mcp_server_info_carries_the_version(emulator_server: EmulatorServer, control: Control) -> None:
    async with Client(server_for(emulator_server)) as client:
        info = client.server_info
    assert info is not None and info.name == "services-bot" and info.version == INSTALLED


async def test_api_and_slack_calls_name_the_product_and_version(
    emulator_server: EmulatorServer, control: Control, workspace_server: WorkspaceServer
) -> None:
    control.clear_requests()
    async with queries_for(emulator_server) as queries:
        await queries.list(ServiceQuery.build(statuses=["failed"]))
    ours = [e for e in control.requests()["log"] if e["path"].endswith("/services") and "status=failed" in e["query"]]
    assert ours and {e["user_agent"] for e in ours} == {f"services-bot/{INSTALLED}"}, ours
    # a bot of its own: bolt calls auth.test once per app, through the per-request client it builds from ours
    with BackgroundServe(slack_settings(emulator_server, workspace_server), watch=False, mcp=False) as bot:
        async with WorkspaceClient(workspace_server.url) as workspace:
            await workspace.reset()
            await workspace.set_app_url(bot.url + "/slack/events")
            await ask(workspace, "failed limit:3")
            web_api = [c for c in await workspace.calls() if c["method"] != "response_url"]
    assert web_api and all(f"services-bot/{INSTALLED}" in (c["user_agent"] or "") for c in web_api), web_api
