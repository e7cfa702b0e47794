"""``/services watch|watches|unwatch|history|mute`` and the alert buttons ("Mute 1h", "Show all"), on the store.

Changes to what a channel hears (watch, unwatch, mute) are posted in the channel, so everyone there knows
who changed it; listings (watches, history) are private unless ``public`` is given.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services_bot.bot.alerts import transitions_message, watches_message
from services_bot.bot.replies import Reply
from services_bot.bot.views import escape, mention
from services_bot.core.client import validate_service_id
from services_bot.core.errors import QueryError, ServiceNotFoundError
from services_bot.core.grammar import NotificationCommand
from services_bot.core.limits import preview
from services_bot.core.notifications import (
    parse_history_args,
    parse_mute_args,
    parse_unwatch_args,
    parse_watch_args,
)
from services_bot.core.query import ServiceQueries
from services_bot.core.store import Store


class ChannelNotifications:
    """Carries out the notification commands for the channel they were typed in."""

    def __init__(self, store: Store, queries: ServiceQueries) -> None:
        self.store = store
        self.queries = queries

    async def run(self, command: NotificationCommand, *, channel: str, user: str) -> Reply:
        verb, args = command.verb, command.args
        if verb == "watch":
            subscription = await self.store.add_subscription(channel=channel, created_by=user, **parse_watch_args(args))
            return _said(
                f"{mention(user)} set this channel to be told about *{escape(subscription.describe(), 300)}*.",
                "Alerts need the bot in the channel: `/invite @services-bot`. `/services watches` lists them all.",
            )
        if verb == "unwatch":
            removed = await self.store.remove_subscription(channel, parse_unwatch_args(args))
            return _said(f"{mention(user)} removed the watch *{escape(removed.describe(), 300)}*.")
        if verb == "watches":
            text, blocks = watches_message(await self.store.subscriptions(channel))
            return Reply(text=text, blocks=blocks, public=command.public)
        if verb == "history":
            service, since = parse_history_args(args)
            found = await self.store.transitions(since=datetime.now(UTC) - since, service=service, limit=100)
            title = f"Transitions of {service}" if service else "Transitions"
            text, blocks = transitions_message(f"{title} in the last {_span(since)}", found)
            return Reply(text=text, blocks=blocks, public=command.public)
        ref, duration = parse_mute_args(args)
        service = await self.queries.get(ref)
        return await self.mute(channel, user, service.target or "", service.service_id, service.display_name, duration)

    async def mute(
        self, channel: str, user: str, target: str, service_id: str, name: str | None, duration: timedelta
    ) -> Reply:
        until = datetime.now(UTC) + duration
        await self.store.mute(channel, target, service_id, name, until)
        return _said(
            f"{mention(user)} muted *{escape(name or service_id, 150)}* in this channel for {_span(duration)}.",
            f"Alerts for it resume <!date^{int(until.timestamp())}^{{time}}|at {until:%H:%M} UTC>.",
        )

    async def mute_alerted(self, channel: str, user: str, target: str, service_id: str, duration: timedelta) -> Reply:
        """The "Mute 1h" button. Its value comes back from whoever sends the click: a correctly signed click can
        still carry a value the bot never wrote, so the service must exist before a mute is stored, and the name
        shown is the one we know, not the one in the value."""
        name = await self._existing_name(target, service_id)
        return await self.mute(channel, user, target, service_id, name, duration)

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

    async def poll_transitions(self, poll_id: str, channel: str) -> Reply:
        found = await self.store.poll_transitions(poll_id, channel)
        text, blocks = transitions_message(f"{len(found)} services changed state", found)
        return Reply(text=text, blocks=blocks)


def _said(text: str, note: str | None = None) -> Reply:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    if note:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    return Reply(text=text, blocks=blocks, public=True)


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
