"""The Slack app: the ``/services`` command and the buttons of its answers, on slack-bolt's ``AsyncApp``.

Every listener acks at once (grammar errors and help are answered in the ack itself, which needs no I/O) and
leaves the answer to a task that sends it through the ``response_url``; so Slack's 3-second limit is never at the
mercy of ModelArts, nor of the CPU work of answers already under way.
Answers are ephemeral unless the asker wrote ``public`` or pressed "Share in channel".
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any, Protocol

from services_bot.bot.acks_first import AcksFirst
from services_bot.bot.permissions import Permissions
from services_bot.bot.replies import (
    ButtonValueError,
    Reply,
    details_reply,
    error_reply,
    help_reply,
    list_reply,
    load_reply,
    summary_reply,
    timeline_reply,
    unexpected_reply,
)
from services_bot.core.config import DEFAULT_CONSOLE_HOST
from services_bot.core.errors import QueryError, ServicesBotError
from services_bot.core.grammar import (
    Command,
    EventsCommand,
    HelpCommand,
    ListCommand,
    LoadCommand,
    NotificationCommand,
    ShowCommand,
    SummaryCommand,
    parse_command,
)
from services_bot.core.insights import ServiceInsights, Timeline
from services_bot.core.metrics import COMMAND_SECONDS
from services_bot.core.models import Service
from services_bot.core.query import ListResult, ServiceQueries, ServiceQuery, encode_cursor
from services_bot.core.service_fields import console_url
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

COMMAND = "/services"
SLACK_PAGE = 40
"""Most services one message lists: with the header, position and buttons it stays under Slack's 50 blocks."""


class NotificationCommands(Protocol):
    """Carries out ``watch``/``unwatch``/``watches``/``history``/``mute``/``unmute``/``mutes``/``audit`` and the
    alert buttons for a channel."""

    async def run(self, command: NotificationCommand, *, channel: str, user: str) -> Reply: ...

    async def mute(
        self, channel: str, user: str, target: str, service_id: str, name: str | None, duration: timedelta
    ) -> Reply: ...

    async def mute_alerted(
        self, channel: str, user: str, target: str, service_id: str, duration: timedelta
    ) -> Reply: ...

    async def poll_transitions(self, poll_id: str, channel: str) -> Reply: ...

    async def unmute_clicked(self, channel: str, user: str, value: dict[str, Any]) -> Reply: ...

    async def acknowledge(self, channel: str, user: str, value: dict[str, Any]) -> Reply | None: ...

    async def history_older(self, channel: str, value: dict[str, Any]) -> Reply: ...


class SlackHandlers:
    """The listeners, holding what they share: the query layer, the notifier and a time limit per answer."""

    def __init__(
        self,
        queries: ServiceQueries,
        notifications: NotificationCommands | None,
        *,
        answer_timeout: float,
        permissions: Permissions | None = None,
        console_host: str = DEFAULT_CONSOLE_HOST,
        acks: AcksFirst | None = None,
    ) -> None:
        self.queries = queries
        self.acks = acks
        self.notifications = notifications
        self.answer_timeout = answer_timeout
        self.permissions = permissions
        self.console_host = console_host
        self._running: set[asyncio.Task[bool]] = set()

    def _queries(self, channel: str) -> ServiceQueries:
        """The query layer as this channel may see it (its targets only, when the targets file binds it)."""
        return self.queries.scoped(self.permissions.scope(channel)) if self.permissions else self.queries

    async def on_command(self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        text = (command.get("text") or "").strip()
        try:
            parsed = parse_command(text)
        except QueryError as exc:
            await ack(**error_reply(exc).payload())
            return
        if isinstance(parsed, HelpCommand):
            await ack(**help_reply().payload())
            return
        await ack()
        channel, user = command.get("channel_id") or "", command.get("user_id") or ""
        self._later(self._answer(respond, "command", lambda: self._reply(parsed, text, channel, user)))

    async def on_details(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        """Details of the service a button names, if this channel may see its target (a forged value may not)."""
        await ack()
        channel, _user = _where(body)

        async def reply() -> Reply:
            value = _button_value(body)
            queries = self._queries(channel)
            target = _visible_target(value, queries)
            service = await queries.get(str(value.get("id") or ""), target=target)
            return await self._details(queries, service)

        self._later(self._answer(respond, "details", reply, replace_original=False))

    async def on_page(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        """Previous/Next: an ephemeral answer is replaced in place; a shared one stays as it is for the
        channel and the clicker gets the next page to themselves."""
        await ack()
        ephemeral = bool((body.get("container") or {}).get("is_ephemeral"))
        channel, _user = _where(body)

        async def reply() -> Reply:
            value = _button_value(body)
            text = str(value.get("q") or "")
            query = _list_query(text)
            if value.get("c"):
                query = query.model_copy(update={"cursor": str(value["c"])})
            else:
                query = _at_offset(query, _offset(value))
            return list_reply(await self._list(query, channel), text)

        self._later(self._answer(respond, "page", reply, replace_original=ephemeral))

    async def on_share(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        """Post the same answer (a list's page, a summary, a service's details) in the channel for everyone, and
        remove the asker's private copy. The command is run again with the channel's scope, so a shared answer
        never shows what the channel may not see."""
        await ack()
        channel, user = _where(body)

        async def reply() -> Reply:
            value = _button_value(body)
            text = str(value.get("q") or "")
            try:
                command = parse_command(text)
            except QueryError:
                raise ButtonValueError() from None
            queries = self._queries(channel)
            if isinstance(command, ShowCommand):
                return await self._show(queries, command, public=True, command_text=text, shared_by=user)
            if isinstance(command, SummaryCommand):
                summary = await queries.summary(command.query)
                return summary_reply(summary, public=True, command_text=text, shared_by=user)
            query = _at_offset(_list_query(text), _offset(value))
            result = await self._list(query, channel)
            return list_reply(result, text, public=True, shared_by=user)

        async def share() -> bool:
            shared = await self._answer(respond, "share", reply, replace_original=False)
            if shared:
                await respond(delete_original=True)
            return shared

        self._later(share())

    async def on_mute(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        """ "Mute 1h" under an alert: silence that service in that channel, and say so in the channel. The
        button's value is not trusted: a service that does not exist is refused to the clicker, nothing stored."""
        await ack()
        channel, user = _where(body)

        async def reply() -> Reply:
            value = _button_value(body)
            notifications = self._notifications()
            service_id, target = str(value.get("id") or ""), str(value.get("t") or "")
            if not service_id:
                raise ButtonValueError()
            return await notifications.mute_alerted(channel, user, target, service_id, timedelta(hours=1))

        self._later(self._answer(respond, "mute", reply, replace_original=False))

    async def on_unmute(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        """ "Unmute" on a mute's note or in ``mutes``: lifts the mute and says so in the channel."""
        await ack()
        channel, user = _where(body)

        async def reply() -> Reply:
            return await self._notifications().unmute_clicked(channel, user, _button_value(body))

        self._later(self._answer(respond, "unmute", reply, replace_original=False))

    async def on_acknowledge(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        """ "Acknowledge" under an alert: recorded, and the alert itself updated to show who and when."""
        await ack()
        channel, user = _where(body)

        async def reply() -> Reply | None:
            return await self._notifications().acknowledge(channel, user, _button_value(body))

        self._later(self._answer(respond, "acknowledge", reply, replace_original=False))

    async def on_history_older(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        """ "Older" under ``history``: the next transitions, replacing a private answer in place."""
        await ack()
        channel, _user = _where(body)
        ephemeral = bool((body.get("container") or {}).get("is_ephemeral"))

        async def reply() -> Reply:
            return await self._notifications().history_older(channel, _button_value(body))

        self._later(self._answer(respond, "history_older", reply, replace_original=ephemeral))

    async def on_show_transitions(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        """ "Show all" under a grouped alert: every transition of that burst, to the clicker."""
        await ack()
        channel, _user = _where(body)

        async def reply() -> Reply:
            poll_id = str(_button_value(body).get("p") or "")
            return await self._notifications().poll_transitions(poll_id, channel)

        self._later(self._answer(respond, "show_transitions", reply, replace_original=False))

    def _later(self, answer: Coroutine[Any, Any, bool]) -> None:
        """Answer after the listener has returned, so bolt sends the ack at once (``process_before_response``),
        and after the acks of requests that arrived alongside (``AcksFirst``): the HTTP 200 never waits behind an
        answer's work. A reference is kept until the task ends."""
        task = asyncio.create_task(self._after_acks(answer))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _after_acks(self, answer: Coroutine[Any, Any, bool]) -> bool:
        try:
            if self.acks is not None:
                await self.acks.turn()
        except BaseException:
            answer.close()  # cancelled while waiting (shutdown): the answer never started
            raise
        return await answer

    def _notifications(self) -> NotificationCommands:
        if self.notifications is None:
            raise ServicesBotError(
                "Notifications are not running in this bot.",
                hint="They run with `services-bot serve` or `services-bot demo`.",
            )
        return self.notifications

    async def _show(self, queries: ServiceQueries, command: ShowCommand, **reply: Any) -> Reply:
        """``show``: details and, for a failed or concerning service, its events fetched alongside them."""
        service, why = await ServiceInsights(queries).show(command.ref, target=command.target)
        return self._details_reply(queries, service, why, **reply)

    async def _details(self, queries: ServiceQueries, service: Service, **reply: Any) -> Reply:
        """Details, with the latest abnormal events of a failed or concerning service and its console link."""
        return self._details_reply(queries, service, await ServiceInsights(queries).why(service), **reply)

    def _details_reply(self, queries: ServiceQueries, service: Service, why: Timeline | None, **reply: Any) -> Reply:
        target = next((c.target for c in queries.clients if c.target.name == service.target), None)
        url = console_url(service.service_id, target.region if target else None, self.console_host)
        return details_reply(service, why=why, console_url=url, **reply)

    async def on_timeline(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        """The Timeline button under a service's details: its events and updates, newest first, to the clicker.
        The value is checked like the Details button's: a target this channel may not see is refused."""
        await ack()
        channel, _user = _where(body)

        async def reply() -> Reply:
            value = _button_value(body)
            queries = self._queries(channel)
            target = _visible_target(value, queries)
            try:
                command = parse_command(str(value.get("q") or ""))
            except QueryError:
                raise ButtonValueError() from None
            if not isinstance(command, EventsCommand):
                raise ButtonValueError()
            service = await queries.get(command.ref, target=target)
            return timeline_reply(service, await ServiceInsights(queries).timeline(service))

        self._later(self._answer(respond, "timeline", reply, replace_original=False))

    async def on_link(self, ack: AsyncAck) -> None:
        """A link button (Open in console) opens in the browser; Slack still reports the click, which needs an ack."""
        await ack()

    async def _list(self, query: ServiceQuery, channel: str) -> ListResult:
        """A Slack page lists at most ``SLACK_PAGE`` services, so paging never skips what a message cannot hold."""
        queries = self._queries(channel)
        if query.limit <= SLACK_PAGE:
            return await queries.list(query)
        result = await queries.list(query.model_copy(update={"limit": SLACK_PAGE}))
        result.warnings.append(f"{SLACK_PAGE} per page in Slack")
        return result

    async def _reply(self, command: Command, text: str, channel: str, user: str) -> Reply:
        queries = self._queries(channel)
        if isinstance(command, ShowCommand):
            return await self._show(queries, command, public=command.public, command_text=text)
        if isinstance(command, EventsCommand):
            service = await queries.get(command.ref, target=command.target)
            timeline = await ServiceInsights(queries).timeline(service, since=command.since, kind=command.kind)
            return timeline_reply(service, timeline, public=command.public)
        if isinstance(command, LoadCommand):
            service = await queries.get(command.ref, target=command.target)
            return load_reply(service, await ServiceInsights(queries).load(service), public=command.public)
        if isinstance(command, SummaryCommand):
            return summary_reply(await queries.summary(command.query), public=command.public, command_text=text)
        if isinstance(command, ListCommand):
            return list_reply(await self._list(command.query, channel), text, public=command.public)
        if isinstance(command, NotificationCommand):
            return await self._notifications().run(command, channel=channel, user=user)
        return help_reply()

    async def _answer(
        self, respond: AsyncRespond, kind: str, build: Callable[[], Awaitable[Reply | None]], **extra: Any
    ) -> bool:
        """Build a reply within the time limit and send it (None: the answer is elsewhere, e.g. the alert a click
        updated); any failure becomes an error message instead."""
        started = asyncio.get_running_loop().time()
        ok = False
        try:
            async with asyncio.timeout(self.answer_timeout):
                reply = await build()
            ok = True
        except ServicesBotError as exc:
            log.info("answer failed kind=%s error=%s detail=%s", kind, type(exc).__name__, exc.message)
            reply = error_reply(exc)
        except TimeoutError:
            log.warning("answer timed out kind=%s after=%.0fs", kind, self.answer_timeout)
            reply = error_reply(
                ServicesBotError(
                    f"ModelArts did not answer within {self.answer_timeout:.0f} s.",
                    hint="Try again in a minute, or narrow the question (a status, a name: filter).",
                )
            )
        except Exception:
            log.exception("answer crashed kind=%s", kind)
            reply = unexpected_reply()
        if reply is None:
            COMMAND_SECONDS.labels(kind, "ok").observe(asyncio.get_running_loop().time() - started)
            return True
        payload = reply.payload(**extra) if ok else reply.payload(replace_original=False)
        try:
            await respond(**payload)
        except Exception as exc:  # the asker cannot be told; the operator must be
            log.error("respond failed kind=%s error=%s", kind, type(exc).__name__)
            ok = False
        COMMAND_SECONDS.labels(kind, "ok" if ok else "error").observe(asyncio.get_running_loop().time() - started)
        return ok


def _where(body: dict[str, Any]) -> tuple[str, str]:
    """The channel and user of a click."""
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or ""
    return str(channel), str((body.get("user") or {}).get("id") or "")


def _button_value(body: dict[str, Any]) -> dict[str, Any]:
    actions = body.get("actions") or [{}]
    try:
        value = json.loads(actions[0].get("value") or "")
    except (ValueError, TypeError):
        raise ButtonValueError() from None
    if not isinstance(value, dict):
        raise ButtonValueError()
    return value


def _visible_target(value: dict[str, Any], queries: ServiceQueries) -> str | None:
    """The target a button names (``t``), if any, and only one this channel may see: a forged value may not."""
    target = value.get("t")
    if target is not None and (not isinstance(target, str) or not queries.scope.allows(target)):
        raise ButtonValueError()
    return target


def _offset(value: dict[str, Any]) -> int:
    """A page position from a button: a small whole number, or the button is not one we drew."""
    raw = value.get("o") or 0
    if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw <= 1_000_000:
        raise ButtonValueError()
    return raw


def _list_query(text: str) -> ServiceQuery:
    command = parse_command(text)
    if not isinstance(command, ListCommand):
        raise ButtonValueError()
    return command.query


def _at_offset(query: ServiceQuery, offset: int) -> ServiceQuery:
    if offset <= 0:
        return query
    return query.model_copy(update={"cursor": encode_cursor(offset, query.fingerprint())})


class _TokenFromEnvironmentNotice(logging.Filter):
    """bolt reads SLACK_BOT_TOKEN itself and warns that the given client wins; that client holds the same token."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


logging.getLogger("bot.slack").addFilter(_TokenFromEnvironmentNotice())


def create_slack_app(
    queries: ServiceQueries,
    *,
    client: AsyncWebClient,
    signing_secret: str | None,
    notifications: NotificationCommands | None = None,
    answer_timeout: float = 60.0,
    permissions: Permissions | None = None,
    console_host: str = DEFAULT_CONSOLE_HOST,
    acks: AcksFirst | None = None,
) -> AsyncApp:
    """The bolt app. ``signing_secret`` None means Socket Mode, where Slack's websocket replaces signatures.
    ``acks``: the count ``POST /slack/events`` keeps of the requests it is acking; answers wait for it."""
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret or "",
        request_verification_enabled=signing_secret is not None,
        process_before_response=True,  # listeners only ack and hand the answer to a task (SlackHandlers._later)
        logger=logging.getLogger("bot.slack"),
    )
    handlers = SlackHandlers(
        queries,
        notifications,
        answer_timeout=answer_timeout,
        permissions=permissions,
        console_host=console_host,
        acks=acks,
    )
    app.command(COMMAND)(handlers.on_command)
    app.action("service_details")(handlers.on_details)
    app.action(re.compile(r"^page_(previous|next)$"))(handlers.on_page)
    app.action("share_in_channel")(handlers.on_share)
    app.action("service_timeline")(handlers.on_timeline)
    app.action("open_in_console")(handlers.on_link)
    app.action("mute_service")(handlers.on_mute)
    app.action("show_transitions")(handlers.on_show_transitions)
    app.action("unmute_service")(handlers.on_unmute)
    app.action("acknowledge_alert")(handlers.on_acknowledge)
    app.action("history_older")(handlers.on_history_older)
    return app
