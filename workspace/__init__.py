"""A local stand-in for a Slack workspace, for tests and the demo: it plays Slack for the bot.

It serves Slack's Web API (``/api/chat.postMessage`` ...) for the bot's ``AsyncWebClient``, sends the bot
signed slash commands and button clicks as a person would (``/_workspace/command``, ``/_workspace/click``),
honours response_urls, records every call and injects faults. It is an independent reading of Slack's docs:
nothing here imports ``bot``, ``core`` or ``tools``.

    with WorkspaceServer(WorkspaceSettings(app_url="http://127.0.0.1:3000/slack/events")) as slack:
        web = AsyncWebClient(token=slack.settings.bot_token, base_url=slack.api_url)
        async with WorkspaceClient(slack.url) as user:
            await user.command("failed", channel="C0GENERAL")
"""

from services_bot.workspace.app import create_app
from services_bot.workspace.client import WorkspaceClient, WorkspaceError
from services_bot.workspace.server import WorkspaceServer
from services_bot.workspace.settings import ChannelSpec, UserSpec, WorkspaceSettings
from services_bot.workspace.state import Message, WorkspaceState

__all__ = [
    "ChannelSpec",
    "Message",
    "UserSpec",
    "WorkspaceClient",
    "WorkspaceError",
    "WorkspaceServer",
    "WorkspaceSettings",
    "WorkspaceState",
    "create_app",
]
