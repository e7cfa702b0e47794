"""``services-bot demo``: the whole product with no accounts at all.

An emulated ModelArts with a churning, mixed fleet (services on the v1 API, on the v2 API, and on both), a
local Slack-like workspace (a web page with an alerts and a general channel), and ``serve`` wired to both: the
Slack app answering ``/services`` typed in the page, the watcher posting alerts there as services change
state, and MCP over HTTP. Everything runs in this process on loopback; Ctrl-C stops it all.
"""

from __future__ import annotations

import asyncio
import shlex
import signal
import sys
import tempfile
import threading
from pathlib import Path

from services_bot import emulator
from services_bot.answers import answer
from services_bot.core.errors import ServicesBotError
from services_bot.serve import BackgroundServe
from services_bot.wiring import local_settings, open_queries
from services_bot.workspace import WorkspaceClient, WorkspaceServer, WorkspaceSettings

ALERTS_CHANNEL = "C0ALERTS"


def self_command() -> str:
    """This very ``services-bot``, as a command that works when pasted into another terminal: its full path,
    since the venv it was installed in need not be on that terminal's PATH."""
    here = Path(sys.argv[0])
    if here.name == "services-bot" and here.is_file():
        return shlex.quote(str(here.absolute()))
    return f"{shlex.quote(sys.executable)} -m services_bot.cli"


def _port(base: int, offset: int) -> int:
    return 0 if base == 0 else base + offset


def run_demo(*, port: int, services: int, churn: float, once: bool, poll: float = 2.0) -> int:
    """Start the emulator on ``port``, the workspace on ``port + 1`` and the bot on ``port + 2`` (0: any)."""
    store_dir = tempfile.TemporaryDirectory(prefix="services-bot-demo-")
    fleet = emulator.EmulatorSettings(port=port, services=services, churn=churn, workspaces=0, generations="mixed")
    slack = WorkspaceSettings(port=_port(port, 1))
    with emulator.EmulatorServer(fleet) as api, WorkspaceServer(slack) as workspace, store_dir:
        settings = local_settings(
            api.url,
            fleet.project_id,
            fleet.token,
            slack_bot_token=slack.bot_token,
            slack_signing_secret=slack.signing_secret,
            slack_app_token=None,
            slack_api_url=workspace.api_url,
            services_bot_port=_port(port, 2),
            services_bot_db=Path(store_dir.name) / "store.db",
            services_bot_poll_seconds=poll,
            services_bot_alert_channel=ALERTS_CHANNEL,
            services_bot_alert_statuses="failed,concerning",
            services_bot_mcp_token=None,
            # the region the fleet plays (its messages name cn-north-4): `show` and alerts then carry Open in
            # console, leading where it would for a real fleet; the endpoint stays the emulator's
            modelarts_region="cn-north-4",
        )
        with BackgroundServe(settings) as bot:
            workspace.settings.app_url = f"{bot.url}/slack/events"
            _print_urls(api, workspace, bot, services, churn, poll)
            if once:
                return asyncio.run(_check(api, workspace))
            _wait_for_ctrl_c()
            print("\nStopping…", flush=True)
    print("Stopped.")
    return 0


def _print_urls(
    api: emulator.EmulatorServer, workspace: WorkspaceServer, bot: BackgroundServe, services: int, churn: float,
    poll: float,
) -> None:  # fmt: skip
    every = f"about one every {1 / churn:.0f} s" if churn > 0 else "none (--churn 0)"
    print(
        f"""services-bot demo: everything local, no accounts.

  Slack workspace  {workspace.url}/          open it: type /services failed in #general; alerts land in #alerts
  MCP (HTTP)       {bot.url}/mcp       e.g. {{"url": "{bot.url}/mcp"}} in an MCP client's config
  Health, metrics  {bot.url}/healthz  {bot.url}/metrics
  ModelArts API    {api.url}           emulated: {services} services, status changes {every}
                   a mixed fleet: about 45% on the v1 API only, 45% on v2 only, 10% on both

The watcher polls every {poll:g} s. To ask from another terminal:
  export MODELARTS_ENDPOINT={api.url} MODELARTS_PROJECT_ID={api.settings.project_id} \\
MODELARTS_AUTH_TOKEN={api.settings.token}
  {self_command()} ask failed
Press Ctrl-C to stop.""",
        flush=True,
    )


async def _check(api: emulator.EmulatorServer, workspace: WorkspaceServer) -> int:
    """``--once``: answer a few commands in the terminal and one through the workspace, then exit."""
    settings = local_settings(api.url, api.settings.project_id, api.settings.token)
    async with open_queries(settings) as queries:
        for text in ("summary", "failed limit:5"):
            print(f"\n$ {self_command()} ask {text}")
            try:
                print(await answer(queries, text, as_json=False))
            except ServicesBotError as exc:
                print(f"error: {exc.user_text()}")
    async with WorkspaceClient(workspace.url) as user:
        ack = await user.command("summary", "C0GENERAL")
        found = await user.wait_for_messages(lambda m: any(x["user"] == "U0BOT" for x in m), channel="C0GENERAL")
    print(f"\n/services summary in the workspace: ack {ack['ack_ms']:.0f} ms, answer: {found[-1]['text']}")
    return 0


def _wait_for_ctrl_c() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
