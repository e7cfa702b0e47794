"""Why a service failed, what changed, how loaded it is: its timeline and its load, beside ``core/query.py``.

Both stand on a service the (scoped) query layer already found, so a channel or token sees the events of
exactly the services it may see. Each service is asked through the generation it came from
(``Service.generation``). The calls for one answer go out together (events and update logs; on v2 the two
abnormal kinds, and deployments with instances), and answers are cached as briefly as listings. A failing
events or logs call never fails the answer: it comes back without that part and with a note saying why.

The events command grammar (``events <service> [since:2h] [type:abnormal]``) is parsed here too, so Slack, the
command line and MCP read it the same way.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from datetime import UTC, datetime, timedelta
from typing import get_args

from pydantic import BaseModel, Field
from services_bot.core.client_events import EventFilter, EventsClient
from services_bot.core.errors import QueryError, ServicesBotError
from services_bot.core.generations import TargetClient
from services_bot.core.limits import preview
from services_bot.core.models import ListedService, Service
from services_bot.core.models_events import Event, EventKind, Load, UpdateLog
from services_bot.core.notifications import MAX_HISTORY_SINCE, parse_duration
from services_bot.core.query import ServiceQueries
from services_bot.core.ttl_cache import TtlCache

log = logging.getLogger("services_bot.insights")

SHOWN_ABNORMAL = 5
"""How many abnormal events ``show`` adds for a failed or concerning service."""
MAX_EVENTS = 200
"""The most events one answer carries (the v1 default page is 1000; nobody reads that many in chat)."""
EVENT_KINDS: tuple[str, ...] = get_args(EventKind)


class Timeline(BaseModel):
    """A service's events and configuration updates, newest first, abnormal ones marked (``Event.abnormal``)."""

    service_id: str
    service_name: str | None = None
    generation: str = "v1"
    entries: list[Event] = Field(default_factory=list)
    total: int = Field(0, description="events matching the filter as the API counts them, plus the updates shown")
    last_update: UpdateLog | None = None
    notes: list[str] = Field(default_factory=list, description="what could not be read, and why")

    @property
    def abnormal(self) -> list[Event]:
        return [e for e in self.entries if e.abnormal]


class LoadAnswer(BaseModel):
    service_id: str
    service_name: str | None = None
    generation: str = "v1"
    load: Load | None = None
    notes: list[str] = Field(default_factory=list)


def parse_events_args(args: list[str]) -> tuple[str, timedelta | None, EventKind | None]:
    """``events <service> [since:2h] [type:abnormal]`` → (service, how far back, which kind)."""
    service: str | None = None
    since: timedelta | None = None
    kind: EventKind | None = None
    for arg in args:
        key, sep, value = arg.partition(":")
        key = key.strip().lower()
        if sep and key == "since":
            since = parse_duration(value, at_most=MAX_HISTORY_SINCE, hint="Events go back at most a year.")
        elif sep and key == "type":
            word = value.strip().lower()
            if word not in EVENT_KINDS:
                raise QueryError(
                    f"Unknown event type '{preview(value)}'.",
                    hint="Use type:abnormal (abnormal and warning events), type:warning or type:normal.",
                )
            kind = word  # type: ignore[assignment]
        elif service is None and not sep:
            service = arg
        else:
            raise QueryError(
                f"events takes one service, since: and type:, not '{preview(arg)}'.",
                hint="e.g. `events ocr-prod since:2h type:abnormal`.",
            )
    if not service:
        raise QueryError("No service given.", hint="e.g. `events ocr-prod since:2h type:abnormal`.")
    return service, since, kind


_CACHES: weakref.WeakKeyDictionary[ServiceQueries, TtlCache] = weakref.WeakKeyDictionary()


class ServiceInsights:
    """Timelines and load over one (scoped) query layer; the cache is shared by every view of the same layer."""

    def __init__(self, queries: ServiceQueries) -> None:
        self.queries = queries
        root = queries._whole or queries
        cache = _CACHES.get(root)
        if cache is None:
            cache = _CACHES[root] = TtlCache(root._cache.seconds, max_entries=2000)
        self._cache = cache

    def _events_client(self, service: ListedService) -> EventsClient:
        client: TargetClient | None = next((c for c in self.queries.clients if c.target.name == service.target), None)
        if client is None:
            raise QueryError(
                f"'{preview(service.display_name)}' is not visible from {self.queries.scope.where}.",
                hint="Ask in a channel bound to its target.",
            )
        generation = client.generation(service.generation) or client.active[0]
        return EventsClient(generation)

    async def timeline(
        self,
        service: ListedService,
        *,
        since: timedelta | None = None,
        kind: EventKind | None = None,
        limit: int = 50,
    ) -> Timeline:
        """Events and update logs merged, newest first; ``kind`` "abnormal" keeps abnormal and warning events and
        failed updates."""
        limit = max(1, min(limit, MAX_EVENTS))
        client = self._events_client(service)
        start = datetime.now(UTC) - since if since else None
        wanted = EventFilter(kind=kind, since=start, limit=limit)
        key = ("timeline", service.target, service.service_id, client.generation, kind, since, limit)

        async def fetch() -> Timeline:
            events, logs = await asyncio.gather(
                client.events(service.service_id, wanted),
                client.update_logs(service.service_id),
                return_exceptions=True,
            )
            notes: list[str] = []
            entries: list[Event] = []
            total = 0
            if isinstance(events, BaseException):
                notes.append(f"Events could not be read: {_reason(events)}")
            else:
                entries.extend(e for e in events.events if kind is None or _kind_matches(e, kind))
                total = events.total
            last_update = None
            if isinstance(logs, BaseException):
                notes.append(f"Update logs could not be read: {_reason(logs)}")
            else:
                dated = sorted(logs, key=lambda log: log.at or datetime.min.replace(tzinfo=UTC), reverse=True)
                last_update = dated[0] if dated else None
                for log in dated:
                    if (start and log.at and log.at < start) or (kind is not None and not _update_matches(log, kind)):
                        continue
                    entries.append(_update_event(log))
                    total += 1
            entries.sort(key=lambda e: e.at.timestamp() if e.at else 0.0, reverse=True)
            return Timeline(
                service_id=service.service_id,
                service_name=service.service_name,
                generation=service.generation,
                entries=entries[:limit],
                total=total,
                last_update=last_update,
                notes=notes,
            )

        return await self._cache.get(key, fetch)  # type: ignore[no-any-return]

    async def why(self, service: ListedService) -> Timeline | None:
        """What ``show`` adds for a failed or concerning service: its latest abnormal events (at most
        ``SHOWN_ABNORMAL``) and last update; None for a service that is not unhealthy (nothing to explain)."""
        if not service.is_unhealthy:
            return None
        return await self.timeline(service, kind="abnormal", limit=SHOWN_ABNORMAL)

    async def show(self, ref: str, *, target: str | None = None) -> tuple[Service, Timeline | None]:
        """``show``: the service's details and, when it is failed or concerning, ``why``. Found by name, the
        events go out with the details request (the listing row says the status); the details have the last
        word on whether they are wanted."""
        early: asyncio.Future[Timeline | None] | None = None

        def on_row(row: ListedService) -> None:
            nonlocal early
            if early is not None:
                early.cancel()  # superseded: the name means another service now
                early = None
            if row.is_unhealthy:
                early = asyncio.ensure_future(self.why(row))

        try:
            service = await self.queries.get(ref, target=target, on_row=on_row)
        except BaseException:
            if early is not None:
                early.cancel()
            raise
        if early is None or not service.is_unhealthy:
            if early is not None:
                early.cancel()
            return service, await self.why(service)
        return service, await early

    async def load(self, service: Service) -> LoadAnswer:
        """Running against wanted instances and resource usage, whichever the generation offers."""
        client = self._events_client(service)
        key = ("load", service.target, service.service_id, client.generation)

        async def fetch() -> LoadAnswer:
            answer = LoadAnswer(
                service_id=service.service_id, service_name=service.service_name, generation=service.generation
            )
            try:
                answer.load = await client.load(service.service_id)
            except ServicesBotError as exc:
                answer.notes.append(f"Load could not be read: {_reason(exc)}")
            return answer

        return await self._cache.get(key, fetch)  # type: ignore[no-any-return]


GENERIC_CAUSES = frozenset(
    {"unknown", "unknown error", "error", "failed", "failure", "internal error", "service failed", "deploy failed",
     "deployment failed", "failed to deploy service", "service deployment failed", "system error", "none", "null"}
)  # fmt: skip
"""Failure texts that name no cause: an alert then quotes the latest abnormal event instead."""


def is_generic_cause(text: str | None) -> bool:
    """True for an empty ``error_msg`` or one that only says that it failed."""
    words = " ".join((text or "").lower().replace(".", " ").split())
    return not words or words in GENERIC_CAUSES


async def latest_abnormal_cause(client: TargetClient, service: Service) -> str | None:
    """The newest abnormal event's text (else the newest warning's), for an alert whose ``error_msg`` says
    nothing; None when there is none. One events request through the service's own generation."""
    generation = client.generation(service.generation) or client.active[0]
    page = await EventsClient(generation).events(service.service_id, EventFilter(kind="abnormal", limit=10))
    ranked = sorted(
        (e for e in page.events if e.abnormal and e.text.strip()),
        key=lambda e: (e.kind == "abnormal", e.at.timestamp() if e.at else 0.0),
        reverse=True,
    )
    return ranked[0].text if ranked else None


def _kind_matches(event: Event, kind: EventKind) -> bool:
    return event.abnormal if kind == "abnormal" else event.kind == kind


def _update_matches(log: UpdateLog, kind: EventKind) -> bool:
    return (log.result == "fail") == (kind != "normal")


def _update_event(log: UpdateLog) -> Event:
    what = ", ".join(log.models)
    text = f"update {log.result}" + (f": {what}" if what else "")
    return Event(at=log.at, kind="abnormal" if log.result == "fail" else "normal", text=text, source="update")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ServicesBotError):
        return exc.user_text()
    log.error("reading events failed unexpectedly", exc_info=exc)  # a bug, not ModelArts: the operator must see it
    return f"an unexpected {type(exc).__name__}."
