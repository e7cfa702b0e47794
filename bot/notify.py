"""``/services watch|watches|unwatch|history|mute|unmute|mutes|audit`` and the alert buttons ("Mute 1h", "Unmute",
"Acknowledge", "Show all", "Older"), on the store.

Every command and click sees only what its channel may (``bot.permissions``: the channel's targets), and a
button's value is never trusted: it must name this channel, a target the channel sees and something that
exists (the alert was posted here, the mute is active), or the click gets "This button no longer works" and
changes nothing. Changes to what a channel hears (watch, unwatch, mute, unmute) are posted in the channel, so
everyone there knows who changed it, and every state-changing action is appended to the audit trail
(``/services audit``); where admins are configured, only they may watch, unwatch and mute for longer than the
channel's limit. Listings (watches, mutes, history, audit) are private unless ``public`` is given.
"""

from __future__ import annotations

import shlex
from datetime import UTC, datetime, timedelta
from typing import Any

from services_bot.bot.alert_updates import refresh_alert, refresh_grouped
from services_bot.bot.alerts import (
    audit_message,
    mutes_message,
    transitions_message,
    unmute_button,
    watches_message,
)
from services_bot.bot.permissions import Permissions
from services_bot.bot.replies import ButtonValueError, Reply
from services_bot.bot.views import escape, mention
from services_bot.core.access import Access, Scope
from services_bot.core.client import validate_service_id
from services_bot.core.errors import QueryError, ServiceNotFoundError
from services_bot.core.grammar import NotificationCommand
from services_bot.core.limits import preview
from services_bot.core.notifications import (
    parse_audit_args,
    parse_history_args,
    parse_mute_args,
    parse_unmute_args,
    parse_unwatch_args,
    parse_watch_args,
)
from services_bot.core.query import ServiceQueries
from services_bot.core.service_fields import ConsoleLink
from services_bot.core.store import Store
from services_bot.core.suggest import did_you_mean
from slack_sdk.web.async_client import AsyncWebClient

HISTORY_PAGE = 50
"""Transitions one ``history`` answer lists; an "Older" button shows the next ones."""


class ChannelNotifications:
    """Carries out the notification commands and alert buttons for the channel they come from."""

    def __init__(
        self,
        store: Store,
        queries: ServiceQueries,
        *,
        permissions: Permissions | None = None,
        client: AsyncWebClient | None = None,
        console_link: ConsoleLink | None = None,
    ) -> None:
        self.store = store
        self.queries = queries
        self.console_link = console_link
        self.permissions = permissions or Permissions(Access([c.target for c in queries.clients]), client)
        self.client = client

    def _scope(self, channel: str) -> Scope:
        return self.permissions.scope(channel)

    async def run(self, command: NotificationCommand, *, channel: str, user: str) -> Reply:
        verb, args = command.verb, command.args
        scope = self._scope(channel)
        if verb == "watch":
            fields = parse_watch_args(args)
            refused = await self._admins_only(user, channel, "change what this channel watches")
            if refused:
                return refused
            self._check_target(scope, fields.get("target"))
            subscription = await self.store.add_subscription(channel=channel, created_by=user, **fields)
            await self.store.audit("watch", channel, user, target=fields.get("target"), detail=subscription.describe())
            return _said(
                f"{mention(user)} set this channel to be told about *{escape(subscription.describe(), 300)}*.",
                "Alerts need the bot in the channel: `/invite @services-bot`. `/services watches` lists them all.",
            )
        if verb == "unwatch":
            number = parse_unwatch_args(args)
            refused = await self._admins_only(user, channel, "change what this channel watches")
            if refused:
                return refused
            removed = await self.store.remove_subscription(channel, number)
            await self.store.audit("unwatch", channel, user, target=removed.target, detail=removed.describe())
            return _said(f"{mention(user)} removed the watch *{escape(removed.describe(), 300)}*.")
        if verb == "watches":
            text, blocks = watches_message(await self.store.subscriptions(channel))
            return Reply(text=text, blocks=blocks, public=command.public)
        if verb == "history":
            return await self.history(args, channel, offset=0, public=command.public)
        if verb == "mutes":
            text, blocks = mutes_message(await self.store.mutes(channel), channel)
            return Reply(text=text, blocks=blocks, public=command.public)
        if verb == "unmute":
            return await self._unmute_named(channel, user, parse_unmute_args(args))
        if verb == "audit":
            return await self._audit(channel, user, parse_audit_args(args), public=command.public)
        ref, duration = parse_mute_args(args)
        service = await self.queries.scoped(scope).get(ref)
        return await self.mute(channel, user, service.target or "", service.service_id, service.display_name, duration)

    # -- mutes -------------------------------------------------------------------------------------------

    async def mute(
        self, channel: str, user: str, target: str, service_id: str, name: str | None, duration: timedelta
    ) -> Reply:
        rule = self.permissions.rule(channel)
        if rule.restricted and duration > rule.mute_limit and not await self.permissions.is_admin(user, channel):
            return _refused(
                f"Only admins may mute for longer than {_span(rule.mute_limit)} here.",
                f"Mute for {_span(rule.mute_limit)} or less, or ask {rule.describe()}.",
            )
        until = datetime.now(UTC) + duration
        await self.store.mute(channel, target, service_id, name, until, set_by=user)
        await self.store.audit(
            "mute",
            channel,
            user,
            target=target,
            service_id=service_id,
            detail=f"{name or service_id} for {_span(duration)}",
        )
        return _said(
            f"{mention(user)} muted *{escape(name or service_id, 150)}* in this channel for {_span(duration)}.",
            f"Alerts for it resume <!date^{int(until.timestamp())}^{{date_short_pretty}} {{time}}|at "
            f"{until:%Y-%m-%d %H:%M} UTC>. `/services mutes` lists this channel's mutes.",
            buttons=[unmute_button(channel, target, service_id)],
        )

    async def mute_alerted(self, channel: str, user: str, target: str, service_id: str, duration: timedelta) -> Reply:
        """The "Mute 1h" button. Its value comes back from whoever sends the click: a correctly signed click can
        still carry a value the bot never wrote, so the target must be one this channel sees and the service must
        exist before a mute is stored, and the name shown is the one we know, not the one in the value."""
        if not self._scope(channel).allows(target):
            raise ButtonValueError()
        name = await self._existing_name(target, service_id)
        return await self.mute(channel, user, target, service_id, name, duration)

    async def unmute_clicked(self, channel: str, user: str, value: dict[str, Any]) -> Reply:
        """The "Unmute" button (on a mute's note and in ``mutes``): for this channel, a target it sees, and a
        mute that is still on; anything else is a button that no longer works."""
        target, service_id = str(value.get("t") or ""), str(value.get("id") or "")
        if value.get("c") != channel or not service_id or not self._scope(channel).allows(target):
            raise ButtonValueError()
        lifted = await self._unmute(channel, user, target, service_id)
        if lifted is None:
            raise ButtonValueError()  # stale: the mute has ended or was lifted since the button was drawn
        return lifted

    async def _unmute_named(self, channel: str, user: str, ref: str) -> Reply:
        active = await self.store.mutes(channel)
        lowered = ref.lower()
        chosen = [m for m in active if m.service_id == ref] or [
            m for m in active if (m.service_name or "").lower() == lowered
        ]
        if not chosen:
            names = [m.service_name or m.service_id for m in active]
            guess = did_you_mean(ref, names) if names else None
            raise QueryError(
                f"'{preview(ref)}' is not muted in this channel." + (f" Did you mean '{guess}'?" if guess else ""),
                hint="`/services mutes` lists this channel's mutes, each with an Unmute button.",
                suggestion=guess,
            )
        if len(chosen) > 1:
            ids = ", ".join(m.service_id for m in chosen)
            raise QueryError(f"Several muted services are named '{preview(ref)}': {ids}.", hint="Unmute one by id.")
        lifted = await self._unmute(channel, user, chosen[0].target, chosen[0].service_id)
        if lifted is None:
            raise QueryError(
                "That mute has already ended or was lifted.", hint="`/services mutes` lists this channel's mutes."
            )
        return lifted

    async def _unmute(self, channel: str, user: str, target: str, service_id: str) -> Reply | None:
        """Lift the mute and say so in the channel; None when there was no active mute to lift."""
        lifted = await self.store.unmute(channel, target, service_id)
        if lifted is None:
            return None
        name = lifted.service_name or service_id
        await self.store.audit("unmute", channel, user, target=target, service_id=service_id, detail=name)
        return _said(f"{mention(user)} unmuted *{escape(name, 150)}* in this channel: its alerts are back.")

    async def _existing_name(self, target: str, service_id: str) -> str | None:
        """The watcher's record first (no API call, works while ModelArts is down), else the query layer by id."""
        known = (await self.store.known_services(target)).get(service_id)
        if known is not None:
            return known.service_name
        try:
            validate_service_id(service_id)
            found = await self.queries.get(service_id, target=target)
        except (ServiceNotFoundError, QueryError):
            found = None
        if found is None or found.service_id != service_id or (found.target or "") != target:
            raise QueryError(
                f"Nothing was muted: there is no service '{preview(service_id)}' in target '{preview(target)}'.",
                hint="It may have been deleted since the alert; `/services history` shows recent changes.",
            )
        return found.display_name

    # -- acknowledgements ----------------------------------------------------------------------------------

    async def acknowledge(self, channel: str, user: str, value: dict[str, Any]) -> Reply | None:
        """The "Acknowledge" button: recorded with the transition (or each transition of a grouped alert), and
        the alert updated in place to show who and when. Only an alert the bot posted in this channel, of a
        target this channel sees, can be acknowledged from here."""
        if value.get("c") != channel:
            raise ButtonValueError()
        scope = self._scope(channel)
        if "p" in value:
            poll_id = str(value.get("p") or "")
            transitions = await self.store.poll_transitions(poll_id, channel) if poll_id else []
            if not transitions or not all(scope.allows(t.target) for t in transitions):
                raise ButtonValueError()
            new = False
            for t in transitions:
                if t.id is not None and await self.store.was_posted(channel, t.id):
                    new = (await self.store.acknowledge(channel, t.id, user))[0] or new
            if new:
                await self.store.audit(
                    "acknowledge", channel, user, detail=f"{len(transitions)} services changed state"
                )
            if self.client is not None:
                await refresh_grouped(self.store, self.client, channel, poll_id)
            return None
        raw = value.get("x")
        transition = await self.store.transition(raw) if isinstance(raw, int) and not isinstance(raw, bool) else None
        if transition is None or transition.id is None or not scope.allows(transition.target):
            raise ButtonValueError()
        if not await self.store.was_posted(channel, transition.id):
            raise ButtonValueError()
        new, _all = await self.store.acknowledge(channel, transition.id, user)
        if new:
            await self.store.audit(
                "acknowledge",
                channel,
                user,
                target=transition.target,
                service_id=transition.service_id,
                detail=transition.display_name,
            )
        if self.client is not None:
            await refresh_alert(self.store, self.client, channel, transition.id, self.console_link)
            thread = await self.store.alert_thread(
                channel, transition.target, transition.service_id, datetime.fromtimestamp(0, UTC)
            )
            if thread is not None and thread.transition_id not in (None, transition.id):
                await refresh_alert(self.store, self.client, channel, thread.transition_id, self.console_link)  # type: ignore[arg-type]
        return None

    # -- listings ----------------------------------------------------------------------------------------

    async def history(self, args: list[str], channel: str, *, offset: int, public: bool = False) -> Reply:
        """``history [service] [since:…]``: newest change first, ``HISTORY_PAGE`` at a time, saying how many more
        there are with an "Older" button; an unknown service is named as such (with the closest names)."""
        service, since = parse_history_args(args)
        scope = self._scope(channel)
        targets = scope.targets
        if service is not None:
            await self._check_history_service(service, scope)
        start = datetime.now(UTC) - since
        found = await self.store.transitions(
            since=start, service=service, limit=HISTORY_PAGE, targets=targets, offset=offset
        )
        total = await self.store.count_transitions(since=start, service=service, targets=targets)
        acks = await self.store.acknowledgements(t.id for t in found if t.id is not None)
        shown_to = offset + len(found)
        beyond = max(0, total - shown_to)
        older = {"q": shlex.join(["history", *args]), "o": shown_to} if beyond else None
        title = f"Transitions of {service}" if service else "Transitions"
        where = f" ({offset + 1}–{shown_to} of {total})" if offset or beyond else ""
        text, blocks = transitions_message(
            f"{title} in the last {_span(since)}{where}", found, acks=acks, beyond=beyond, older=older
        )
        return Reply(text=text, blocks=blocks, public=public)

    async def history_older(self, channel: str, value: dict[str, Any]) -> Reply:
        """The "Older" button of ``history``: the same question, from the position it carries."""
        try:
            words = shlex.split(str(value.get("q") or ""))
            offset = int(value.get("o") or 0)
        except (ValueError, TypeError):
            raise ButtonValueError() from None
        if not words or words[0] != "history" or not 0 < offset <= 1_000_000:
            raise ButtonValueError()
        return await self.history(words[1:], channel, offset=offset)

    async def _check_history_service(self, service: str, scope: Scope) -> None:
        """A service the watcher never saw in a target this channel sees: say so, rather than "none"."""
        if await self.store.knows_service(service, scope.targets):
            return
        if not scope.everything and await self.store.knows_service(service):
            raise QueryError(
                f"'{preview(service)}' is not visible from this channel.",
                hint="This channel sees only the targets it is bound to.",
            )
        names = await self.store.known_names(scope.targets)
        guess = did_you_mean(service, names) if names else None
        raise QueryError(
            f"There is no service named '{preview(service)}'." + (f" Did you mean '{guess}'?" if guess else ""),
            hint="history knows the services the watcher has seen; `/services history` lists every recent change.",
            suggestion=guess,
        )

    async def _audit(self, channel: str, user: str, since: timedelta, *, public: bool) -> Reply:
        rule = self.permissions.rule(channel)
        if rule.restricted and not await self.permissions.is_admin(user, channel):
            return _refused("Only admins may read the audit trail.", f"Ask {rule.describe()}.")
        every_channel = rule.restricted  # an admin sees every channel; without admins, a channel sees its own
        start = datetime.now(UTC) - since
        only = None if every_channel else channel
        entries = await self.store.audit_entries(start, only)
        total = await self.store.audit_count(start, only)
        text, blocks = audit_message(entries, _span(since), total, every_channel=every_channel)
        return Reply(text=text, blocks=blocks, public=public)

    async def poll_transitions(self, poll_id: str, channel: str) -> Reply:
        found = await self.store.poll_transitions(poll_id, channel)
        acks = await self.store.acknowledgements((t.id for t in found if t.id is not None), channel)
        text, blocks = transitions_message(f"{len(found)} services changed state", found, acks=acks)
        return Reply(text=text, blocks=blocks)

    # -- checks --------------------------------------------------------------------------------------------

    async def _admins_only(self, user: str, channel: str, what: str) -> Reply | None:
        if await self.permissions.is_admin(user, channel):
            return None
        return _refused(f"Only admins may {what}.", f"Ask {self.permissions.rule(channel).describe()}.")

    @staticmethod
    def _check_target(scope: Scope, target: str | None) -> None:
        if scope.targets is not None and not scope.targets:
            raise QueryError(
                "This channel sees no target, so it cannot watch any.",
                hint="The bot's operator binds channels to targets with `channels = [...]` in the targets file.",
            )
        if target is not None and not scope.allows(target):
            raise QueryError(
                f"Target '{preview(target)}' is not visible from this channel.",
                hint="Watch a target this channel is bound to, or leave target: out.",
            )


def _said(text: str, note: str | None = None, *, buttons: list[dict[str, Any]] | None = None) -> Reply:
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    if note:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return Reply(text=text, blocks=blocks, public=True)


def _refused(text: str, hint: str) -> Reply:
    """A private refusal naming who may (their mentions render as names; the ids were checked at start)."""
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f":no_entry: *{text}*\n{hint}"}}]
    return Reply(text=f"{text} {hint}", blocks=blocks)


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
