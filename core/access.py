"""Who may see which targets, and who may change what: the one place every surface asks.

A target's table in the targets file may bind Slack channels (``channels = ["C0123…"]``) and MCP bearer tokens
(``mcp_tokens = ["…"]``) to it. A bound channel sees only the targets bound to it; an unbound channel sees every
target, or none when ``SERVICES_BOT_CHANNEL_DEFAULT=none``. ``SERVICES_BOT_MCP_TOKEN`` sees every target, a
target's token only the targets that list it. Commands, buttons, subscriptions, alerts and MCP tools all take
their ``Scope`` from here and hand it to the query layer (``ServiceQueries.scoped``), so there is no second
opinion anywhere about what a caller may see.

Admins (``SERVICES_BOT_ADMINS``, plus a bound target's own ``admins``): when any are set for a channel, only they
may ``watch``, ``unwatch`` and mute for longer than the channel's mute limit there. Slack user-group ids (``S…``)
are resolved by the Slack surface; this module only says which ids count. Pure: no I/O.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from services_bot.core.config import Target

ChannelDefault = Literal["all", "none"]
DEFAULT_MUTE_LIMIT = timedelta(hours=24)
"""The longest mute someone who is not an admin may set, where admins are configured and no target says more."""


@dataclass(frozen=True)
class Scope:
    """The targets one caller may see; ``targets`` None means every configured target. ``where`` names the
    caller in refusals ("this channel", "this MCP token")."""

    targets: frozenset[str] | None = None
    where: str = "here"

    def allows(self, target: str | None) -> bool:
        return self.targets is None or (target or "") in self.targets

    @property
    def everything(self) -> bool:
        return self.targets is None


EVERYTHING = Scope()


@dataclass(frozen=True)
class AdminRule:
    """Who counts as an admin in one channel (users ``U…``/``W…`` and user groups ``S…``), and how long a mute
    may be without being one. ``ids`` empty: no admins are configured there, everyone may do everything."""

    ids: frozenset[str]
    mute_limit: timedelta

    @property
    def restricted(self) -> bool:
        return bool(self.ids)

    @property
    def users(self) -> frozenset[str]:
        return frozenset(i for i in self.ids if not i.startswith("S"))

    @property
    def groups(self) -> frozenset[str]:
        return frozenset(i for i in self.ids if i.startswith("S"))

    def describe(self) -> str:
        """Who may, in Slack mrkdwn (mentions render names; ids are validated at start)."""
        people = [f"<@{u}>" for u in sorted(self.users)] + [f"<!subteam^{g}>" for g in sorted(self.groups)]
        return ", ".join(people)


class Access:
    """The bindings of the targets file and the two settings, asked per channel or per MCP token."""

    def __init__(
        self,
        targets: Iterable[Target],
        *,
        channel_default: ChannelDefault = "all",
        admins: Iterable[str] = (),
        mcp_token: str | None = None,
    ) -> None:
        self.targets = list(targets)
        self.channel_default = channel_default
        self.admins = frozenset(admins)
        self.mcp_token = mcp_token
        self._by_channel: dict[str, frozenset[str]] = {}
        for t in self.targets:
            for channel in t.channels:
                self._by_channel[channel] = self._by_channel.get(channel, frozenset()) | {t.name}
        self._tokens: list[tuple[str, str]] = [
            (token.get_secret_value(), t.name) for t in self.targets for token in t.mcp_tokens
        ]

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.targets]

    def for_channel(self, channel: str) -> Scope:
        bound = self._by_channel.get(channel)
        if bound is not None:
            return Scope(bound, "this channel")
        if self.channel_default == "none":
            return Scope(frozenset(), "this channel")
        return Scope(None, "this channel")

    def bound(self, channel: str) -> bool:
        return channel in self._by_channel

    @property
    def has_mcp_tokens(self) -> bool:
        return bool(self._tokens)

    def for_mcp_token(self, given: str | None) -> Scope | None:
        """The scope of a bearer token, or None when it is no token we know. Every comparison is constant time
        and all are made, so the answer's timing says nothing about which token came close."""
        if given is None:
            return None
        everything = bool(self.mcp_token) and hmac.compare_digest(given.encode(), (self.mcp_token or "").encode())
        names = {name for token, name in self._tokens if hmac.compare_digest(given.encode(), token.encode())}
        if everything:
            return Scope(None, "this MCP token")
        return Scope(frozenset(names), "this MCP token") if names else None

    def admin_rule(self, channel: str) -> AdminRule:
        """Global admins, plus the admins of the targets this channel is bound to; the mute limit is the
        shortest of those targets' ``mute_limit`` (else ``DEFAULT_MUTE_LIMIT``)."""
        bound = [t for t in self.targets if t.name in self._by_channel.get(channel, frozenset())]
        ids = self.admins.union(*(t.admins for t in bound)) if bound else self.admins
        limits = [t.mute_limit for t in bound if t.mute_limit is not None]
        return AdminRule(frozenset(ids), min(limits) if limits else DEFAULT_MUTE_LIMIT)
