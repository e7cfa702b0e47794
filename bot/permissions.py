"""Who may do what in a channel, as the Slack surface asks it: the channel's scope of targets (``core.access``)
and whether a person is an admin there, user groups (``S…``) resolved through Slack's ``usergroups.users.list``
and kept for a minute, so a burst of commands costs one call per group.

A group that cannot be read (no ``usergroups:read`` scope, Slack down) counts as having no members: the answer
is a refusal that names who may, never an admin right granted by an error.
"""

from __future__ import annotations

import logging
import time

from services_bot.bot.slack_errors import NETWORK_ERRORS, failure_of
from services_bot.core.access import Access, AdminRule, Scope
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)
GROUP_CACHE_SECONDS = 60.0


class Permissions:
    """``scope(channel)`` and ``is_admin(user, channel)`` over one ``Access``."""

    def __init__(self, access: Access, client: AsyncWebClient | None = None) -> None:
        self.access = access
        self.client = client
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}

    def scope(self, channel: str) -> Scope:
        return self.access.for_channel(channel)

    def rule(self, channel: str) -> AdminRule:
        return self.access.admin_rule(channel)

    async def is_admin(self, user: str, channel: str) -> bool:
        """True where no admins are configured (everyone may), or when ``user`` is one, directly or by group."""
        rule = self.rule(channel)
        if not rule.restricted or user in rule.users:
            return True
        for group in sorted(rule.groups):
            if user in await self._members(group):
                return True
        return False

    async def _members(self, group: str) -> frozenset[str]:
        cached = self._groups.get(group)
        if cached is not None and time.monotonic() - cached[0] < GROUP_CACHE_SECONDS:
            return cached[1]
        members: frozenset[str] = frozenset()
        if self.client is not None:
            try:
                response = await self.client.usergroups_users_list(usergroup=group)
                members = frozenset(str(u) for u in response.get("users") or [])
            except (SlackApiError, *NETWORK_ERRORS) as exc:
                log.warning("cannot read user group group=%s error=%s", group, failure_of(exc).describe())
                return members
        self._groups[group] = (time.monotonic(), members)
        return members
