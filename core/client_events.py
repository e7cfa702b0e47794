"""Requests for a service's events, monitoring and update logs, over either generation's client.

v1: ``GET /v1/{project_id}/services/{id}/events`` (``event_type``, ``start_time``/``end_time`` in ms, ``offset``,
``limit``, ``sort_by``, ``order``), ``/monitor`` (``node_id``) and ``/logs`` (``update_time``). v2: ``GET
/v2/{project_id}/services/{id}/events`` (upper-case ``event_type``, ``sort_key``/``sort_dir``, ``limit`` 1..500
at offsets that are multiples of it) and, since v2 has no monitor, ``/deployments`` and
``/deployments/all/instances`` as the load answer. Every request goes through the generation client's own
transport (credentials, retries, typed errors), so nothing here knows how a request is signed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services_bot.core.client import ModelArtsClient, _parse, validate_service_id
from services_bot.core.models_events import (
    Event,
    EventKind,
    Load,
    UpdateLog,
    V1EventList,
    V1MonitorAnswer,
    V1UpdateLogs,
    V2DeploymentList,
    V2EventPage,
    V2InstancePage,
    update_logs,
    v1_events,
    v1_load,
    v2_events,
    v2_load,
)

V2_MAX_EVENTS = 500
"""v2's most events per page (``limit`` in [1, 500])."""


@dataclass(frozen=True)
class EventFilter:
    """What to ask of the events endpoint, in the product's words (both generations take the same filters)."""

    kind: EventKind | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    order: Literal["asc", "desc"] = "desc"


@dataclass(frozen=True)
class EventPage:
    """One page of events as the API counted it: ``total`` matches ignoring paging."""

    events: list[Event]
    total: int


def _ms(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


def v1_event_query(wanted: EventFilter, offset: int = 0) -> dict[str, str]:
    query = {"offset": str(offset), "limit": str(wanted.limit), "sort_by": "occur_time", "order": wanted.order}
    if wanted.kind == "abnormal":
        query["event_type"] = "abnormal"  # v1 knows no warning: its abnormal events are the only bad ones
    elif wanted.kind == "normal":
        query["event_type"] = "normal"
    if wanted.since:
        query["start_time"] = _ms(wanted.since)
    if wanted.until:
        query["end_time"] = _ms(wanted.until)
    return query


def v2_event_query(wanted: EventFilter, kind: str | None, offset: int = 0) -> dict[str, str]:
    limit = max(1, min(wanted.limit, V2_MAX_EVENTS))
    query = {
        "offset": str(offset - offset % limit),
        "limit": str(limit),
        "sort_key": "update_at",
        "sort_dir": wanted.order.upper(),
    }
    if kind:
        query["event_type"] = kind
    if wanted.since:
        query["start_time"] = _ms(wanted.since)
    if wanted.until:
        query["end_time"] = _ms(wanted.until)
    return query


class EventsClient:
    """The events, monitor and logs of services read through one generation client."""

    def __init__(self, client: ModelArtsClient) -> None:
        self.client = client

    @property
    def generation(self) -> str:
        return self.client.generation

    def _url(self, service_id: str, tail: str) -> str:
        return f"{self.client._base}/services/{validate_service_id(service_id)}/{tail}"

    async def events(self, service_id: str, wanted: EventFilter) -> EventPage:
        """The service's events, newest first unless asked otherwise. On v2 "abnormal" also asks for WARNING
        (one ``event_type`` per call, so two calls), since a repeating warning is often the cause."""
        context = self.client._context("events")
        if self.generation == "v1":
            answer = await self.client._request(
                "GET", self._url(service_id, "events"), v1_event_query(wanted), _parse(V1EventList, context)
            )
            events = v1_events(answer)
            return EventPage(events=events, total=answer.total_count if answer.total_count is not None else len(events))
        kinds: list[str | None] = (
            ["ABNORMAL", "WARNING"] if wanted.kind == "abnormal" else [wanted.kind.upper() if wanted.kind else None]
        )
        pages = await asyncio.gather(
            *(
                self.client._request(
                    "GET", self._url(service_id, "events"), v2_event_query(wanted, kind), _parse(V2EventPage, context)
                )
                for kind in kinds
            )
        )
        events = [e for page in pages for e in v2_events(page)]
        events.sort(key=lambda e: e.at.timestamp() if e.at else 0.0, reverse=wanted.order == "desc")
        total = sum(page.total if page.total is not None else len(page.data) for page in pages)
        return EventPage(events=events[: wanted.limit], total=total)

    async def update_logs(self, service_id: str) -> list[UpdateLog]:
        """v1's configuration updates (not container logs); v2 documents none, so an empty list there."""
        if self.generation != "v1":
            return []
        answer = await self.client._request(
            "GET", self._url(service_id, "logs"), {}, _parse(V1UpdateLogs, self.client._context("logs"))
        )
        return update_logs(answer)

    async def load(self, service_id: str, *, node_id: str | None = None) -> Load:
        """v1: the monitor. v2: deployments with their instances' pods, running against all."""
        if self.generation == "v1":
            query = {"node_id": node_id} if node_id else {}
            answer = await self.client._request(
                "GET", self._url(service_id, "monitor"), query, _parse(V1MonitorAnswer, self.client._context("monitor"))
            )
            return v1_load(answer)
        context = self.client._context("load")
        paged = {"offset": "0", "limit": str(V2_MAX_EVENTS)}
        deployments, instances = await asyncio.gather(
            self.client._request("GET", self._url(service_id, "deployments"), paged, _parse(V2DeploymentList, context)),
            self.client._request(
                "GET", self._url(service_id, "deployments/all/instances"), paged, _parse(V2InstancePage, context)
            ),
        )
        return v2_load(deployments, instances)
