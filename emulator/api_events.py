"""The routes of a service's events, monitor and update logs (v1), and events, deployments and instances (v2).

Each goes through the same gateway as the list and details (latency, auth, faults, request counting), so a
fault aimed at ``/events`` (``paths``) fails these and nothing else. The bodies come from ``events.py``; the
query rules are the documents' own (``v1-service-events-monitor-logs.md`` section 1, ``v2-service-events.md``
section 1): v1 takes lower-case ``event_type`` and ``order``, v2 upper-case ones and a ``limit`` of 1..500 at
offsets that are multiples of it.
"""

from __future__ import annotations

from typing import Any

from services_bot.emulator import events, render_v2
from services_bot.emulator.api import NOT_FOUND_CODE, api_error, gateway
from services_bot.emulator.fleet import Service, visible_on
from services_bot.emulator.query import InvalidParameter
from services_bot.emulator.query_v2 import _enum, _int
from services_bot.emulator.render import dumps
from services_bot.emulator.state import EmulatorState
from starlette.requests import Request
from starlette.responses import Response

JSON = "application/json"
V1_DEFAULT_LIMIT = 1000
V2_DEFAULT_LIMIT = 10
V2_MAX_LIMIT = 500


def _service(request: Request, emu: EmulatorState, generation: str) -> Service | Response:
    service_id = request.path_params["service_id"]
    s = emu.fleet.get(service_id)
    if s is None or not visible_on(s, generation):
        return api_error(404, NOT_FOUND_CODE, f"Service {service_id} does not exist.", quirks=emu.quirks)
    return s


def _window(request: Request, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    start = _int(request.query_params, "start_time", 0)
    end = _int(request.query_params, "end_time", 0)
    return [e for e in rows if e["at"] >= start and (not end or e["at"] <= end)]


@gateway("events", generation="v1")
async def events_v1(request: Request, emu: EmulatorState) -> Response:
    """``GET /v1/{project_id}/services/{service_id}/events``: newest first by default, ``offset`` a record offset."""
    found = _service(request, emu, "v1")
    if isinstance(found, Response):
        return found
    params = request.query_params
    try:
        kind = _enum(params, "event_type", ("normal", "abnormal"))
        order = _enum(params, "order", ("asc", "desc")) or "desc"
        _enum(params, "sort_by", ("occur_time",))
        offset = _int(params, "offset", 0)
        limit = _int(params, "limit", V1_DEFAULT_LIMIT)
        rows = [events.v1_event(e) for e in _window(request, events.timeline(found))]
    except InvalidParameter as exc:
        return api_error(400, exc.code, exc.message, quirks=emu.quirks)
    if kind:
        rows = [e for e in rows if e["event_type"] == kind]
    rows.sort(key=lambda e: e["occur_time"], reverse=order == "desc")
    page = rows[offset : offset + limit]
    body = {
        "service_id": found.service_id,
        "service_name": found.service_name,
        "total_count": len(rows),
        "count": len(page),
        "events": page,
    }
    return Response(dumps(body), media_type=JSON)


@gateway("monitor", generation="v1")
async def monitor_v1(request: Request, emu: EmulatorState) -> Response:
    """``GET /v1/{project_id}/services/{service_id}/monitor``."""
    found = _service(request, emu, "v1")
    if isinstance(found, Response):
        return found
    return Response(dumps(events.monitor(found)), media_type=JSON)


@gateway("logs", generation="v1")
async def logs_v1(request: Request, emu: EmulatorState) -> Response:
    """``GET /v1/{project_id}/services/{service_id}/logs``; ``update_time`` read as "since" (undocumented)."""
    found = _service(request, emu, "v1")
    if isinstance(found, Response):
        return found
    try:
        since = _int(request.query_params, "update_time", 0)
    except InvalidParameter as exc:
        return api_error(400, exc.code, exc.message, quirks=emu.quirks)
    body = events.update_logs(found)
    body["logs"] = [log for log in body["logs"] if log["update_time"] >= since]
    return Response(dumps(body), media_type=JSON)


def _v2_paging(request: Request) -> tuple[int, int]:
    limit = _int(request.query_params, "limit", V2_DEFAULT_LIMIT)
    if not 1 <= limit <= V2_MAX_LIMIT:
        raise InvalidParameter(f"Invalid parameter limit: '{limit}'. It must be from 1 to {V2_MAX_LIMIT}.")
    offset = _int(request.query_params, "offset", 0)
    return offset, limit


def _v2_page(rows: list[dict[str, Any]], offset: int, limit: int) -> bytes:
    page = rows[offset : offset + limit]
    pages = -(-len(rows) // limit) if rows else 0
    return dumps({"current": offset // limit, "pages": pages, "size": limit, "total": len(rows), "data": page})


@gateway("events_v2", generation="v2")
async def events_v2(request: Request, emu: EmulatorState) -> Response:
    """``GET /v2/{project_id}/services/{service_id}/events``: one row per distinct event, with its count."""
    found = _service(request, emu, "v2")
    if isinstance(found, Response):
        return found
    params = request.query_params
    try:
        offset, limit = _v2_paging(request)
        if offset % limit:
            raise InvalidParameter(
                f"Invalid parameter offset: '{offset}'. It must be a whole multiple of limit ({limit})."
            )
        kind = _enum(params, "event_type", ("NORMAL", "ABNORMAL", "WARNING"))
        direction = _enum(params, "sort_dir", ("ASC", "DESC")) or "DESC"
        key = _enum(params, "sort_key", ("create_at", "update_at")) or "update_at"
        timeline = _window(request, events.timeline(found))
    except InvalidParameter as exc:
        return api_error(400, exc.code, exc.message, quirks=emu.quirks)
    version_id = render_v2.details(found)["version"]["id"]
    rows = [events.v2_event(found, e, i, version_id) for i, e in enumerate(timeline)]
    if kind:
        rows = [e for e in rows if e["event_type"] == kind]
    rows.sort(key=lambda e: e[key], reverse=direction == "DESC")
    return Response(_v2_page(rows, offset, limit), media_type=JSON)


@gateway("deployments_v2", generation="v2")
async def deployments_v2(request: Request, emu: EmulatorState) -> Response:
    """``GET /v2/{project_id}/services/{service_id}/deployments``."""
    found = _service(request, emu, "v2")
    if isinstance(found, Response):
        return found
    try:
        offset, limit = _v2_paging(request)
    except InvalidParameter as exc:
        return api_error(400, exc.code, exc.message, quirks=emu.quirks)
    rows = [events.public(d) for d in events.deployments(found)]
    return Response(_v2_page(rows, offset, limit), media_type=JSON)


@gateway("instances_v2", generation="v2")
async def instances_v2(request: Request, emu: EmulatorState) -> Response:
    """``GET /v2/{project_id}/services/{service_id}/deployments/{name}/instances`` (``name`` may be ``all``)."""
    found = _service(request, emu, "v2")
    if isinstance(found, Response):
        return found
    try:
        offset, limit = _v2_paging(request)
    except InvalidParameter as exc:
        return api_error(400, exc.code, exc.message, quirks=emu.quirks)
    rows = events.instances(found, request.path_params["name"])
    if rows is None:
        return api_error(
            404, NOT_FOUND_CODE, f"Deployment {request.path_params['name'][:64]} does not exist.", quirks=emu.quirks
        )
    return Response(_v2_page(rows, offset, limit), media_type=JSON)
