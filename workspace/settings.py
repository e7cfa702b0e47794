"""Who and where the stand-in workspace is: ids, secrets, channels and the bot's request URL.

Defaults match the demo (``services-bot demo``) so that a bot configured with the demo secrets talks to it
without any extra wiring. Ids look like Slack's (``T…``, ``C…``, ``U…``) because bots sometimes check prefixes.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ChannelSpec(BaseModel):
    """A public channel. ``is_member=False`` makes posts fail with ``not_in_channel``, as when nobody invited
    the bot."""

    model_config = ConfigDict(validate_assignment=True)

    id: str
    name: str
    is_member: bool = True
    topic: str = ""


class UserSpec(BaseModel):
    """A person who can run slash commands and click buttons."""

    id: str
    name: str
    real_name: str = ""


def _default_channels() -> list[ChannelSpec]:
    return [ChannelSpec(id="C0ALERTS", name="alerts"), ChannelSpec(id="C0GENERAL", name="general")]


def _default_users() -> list[UserSpec]:
    return [UserSpec(id="U0DEMO", name="demo", real_name="Demo User")]


class WorkspaceSettings(BaseModel):
    """Settings of one stand-in workspace.

    ``app_url`` is the bot's ``POST /slack/events`` URL; it may be unknown when the workspace starts (the bot
    often needs the workspace's URL first), so it can be assigned later: ``settings.app_url = ...`` or
    ``POST /_workspace/app_url``.
    """

    model_config = ConfigDict(validate_assignment=True)

    signing_secret: str = "demo-signing-secret"
    bot_token: str = "xoxb-demo-token"
    app_token: str = "xapp-demo-app-token"
    socket_url: str | None = None
    """Hand out this ``ws://`` base instead of the workspace's own (tests of a websocket that cannot be reached)."""
    """The app-level token (``connections:write``) that ``apps.connections.open`` asks for: Socket Mode."""
    verification_token: str = "demo-verification-token"
    app_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    channels: list[ChannelSpec] = Field(default_factory=_default_channels)
    users: list[UserSpec] = Field(default_factory=_default_users)
    usergroups: dict[str, list[str]] = Field(default_factory=dict)
    """User groups (``S…`` id → member ids), answered by ``usergroups.users.list``."""
    team_id: str = "T0DEMO"
    team_domain: str = "demo"
    team_name: str = "Demo"
    bot_user_id: str = "U0BOT"
    bot_user_name: str = "services-bot"
    bot_id: str = "B0BOT"
    app_id: str = "A0DEMO"
    ack_timeout_seconds: float = Field(default=3.0, gt=0)
    """Slack gives the app 3 s to acknowledge a command or a click."""
    response_url_max_uses: int = Field(default=5, ge=1)
    response_url_ttl_seconds: float = Field(default=1800.0, gt=0)
    """Slack honours a response_url at most 5 times within 30 minutes."""
    event_log_size: int = Field(default=5000, ge=10)

    @property
    def default_user(self) -> UserSpec:
        return self.users[0]
