"""The ``/_emulator/`` control API: steer the fleet, faults and quirks from tests and the demo.

No authentication and no faults apply here, and these requests are not counted, so a test can always
set up and inspect the emulator without disturbing what it measures. Bodies are JSON objects; errors are
``{"error": "..."}`` with 400 (bad input), 404 (unknown service) or 409 (duplicate service id).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from services_bot.emulator import render_v2
from services_bot.emulator.faults import Faults
from services_bot.emulator.fleet import DEFAULT_WORKSPACE, Service, build_fleet, now_ms, shown_status
from services_bot.emulator.generations import FLEET_GENERATIONS, GENERATIONS
from services_bot.emulator.quirks import Quirks
from services_bot.emulator.render import details
from services_bot.emulator.state import EmulatorState
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

MAX_NEW_SERVICES = 1_000_000


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _emu(request: Request) -> EmulatorState:
    return request.app.state.emu


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _opt_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if key == "workspace_id" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{key} must be a non-empty string")
    return value


def _generation(body: dict[str, Any], key: str, valid: tuple[str, ...], default: str) -> str:
    value = body.get(key)
    if value is None:
        return default
    if value not in valid:
        raise BadRequest(f"{key} must be one of {', '.join(valid)}")
    return str(value)


def service_view(s: Service, *, tag_v1: bool = True) -> dict[str, Any]:
    """What the control API answers for a service: its details in its own generation's shape (v1 details for
    a v1 service, v2 details for a v2 one, v1 details plus ``"v2"`` for a both service), with ``generation``.

    ``tag_v1=False`` leaves a v1 service's details exactly the documented v1 object, as the status and create
    answers always were."""
    if s.generation == "v2":
        return {**render_v2.details(s), "generation": s.generation}
    if s.generation == "v1" and not tag_v1:
        return details(s)
    view = {**details(s), "generation": s.generation}
    if s.generation == "both":
        view["v2"] = render_v2.details(s)
    return view


def _opt_int(body: dict[str, Any], key: str, lo: int, hi: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise BadRequest(f"{key} must be an integer from {lo} to {hi}")
    return value


def _opt_number(body: dict[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise BadRequest(f"{key} must be a non-negative number")
    return float(value)


def _handled(fn: Any) -> Any:
    """Turn ``BadRequest`` into its JSON answer, so handlers read as the happy path."""

    async def endpoint(request: Request) -> Response:
        try:
            return await fn(request)
        except BadRequest as exc:
            return JSONResponse({"error": exc.message}, exc.status)

    endpoint.__name__ = fn.__name__
    endpoint.__doc__ = fn.__doc__
    return endpoint


@_handled
async def set_status(request: Request) -> Response:
    """``POST /_emulator/services/{id}/status`` ``{"status", "error_msg"?, "progress"?}``: any status string
    is accepted on purpose (Q08), in either vocabulary and any case (read for the service's generation,
    ``generations.py``); ``error_msg`` is a v2 service's ``failure_reason``, and ``""`` fails the service with
    no message at all (its events still say why, ``events.py``); ``transition_at`` and ``update_at`` become now.
    Answers ``service_view``."""
    emu = _emu(request)
    s = emu.fleet.get(request.path_params["service_id"])
    if s is None:
        raise BadRequest(f"service {request.path_params['service_id']} does not exist", 404)
    body = await _body(request)
    status = _opt_str(body, "status")
    if status is None:
        raise BadRequest("status is required")
    silent = body.get("error_msg") == ""
    error_msg = None if silent else _opt_str(body, "error_msg")
    progress = _opt_int(body, "progress", 0, 100)
    at = now_ms()
    old = emu.fleet.set_status(s, status, at, error_msg=error_msg, progress=progress, rng=emu.churn.rng)
    if silent:
        s.error_msg = None
        emu.fleet.changed(s)
    emu.churn.record(s, old, shown_status(s), at)
    return JSONResponse(service_view(s, tag_v1=False))


@_handled
async def set_statuses(request: Request) -> Response:
    """``POST /_emulator/statuses`` ``{"changes": [{"service_id", "status", "error_msg"?}, ...]}``: several
    changes at one instant, so a poll sees all of them or none (a burst, for tests of grouped alerts)."""
    emu = _emu(request)
    body = await _body(request)
    changes = body.get("changes")
    if not isinstance(changes, list) or not changes:
        raise BadRequest("changes must be a non-empty list of {service_id, status, error_msg?}")
    planned = []
    for change in changes:
        if not isinstance(change, dict):
            raise BadRequest("each change must be an object")
        s = emu.fleet.get(str(change.get("service_id")))
        if s is None:
            raise BadRequest(f"service {change.get('service_id')} does not exist", 404)
        status = _opt_str(change, "status")
        if status is None:
            raise BadRequest("status is required in every change")
        planned.append((s, status, _opt_str(change, "error_msg")))
    at = now_ms()
    for s, status, error_msg in planned:
        old = emu.fleet.set_status(s, status, at, error_msg=error_msg, progress=None, rng=emu.churn.rng)
        emu.churn.record(s, old, shown_status(s), at)
    return JSONResponse({"changed": len(planned)})


@_handled
async def create_services(request: Request) -> Response:
    """``POST /_emulator/services``: one service with the given fields (default: running, workspace "0",
    generation "v1", appearing now), or ``{"count": N}`` generated ones following the fleet's distributions.
    A v2 or both service is real-time (v2 has no batch or edge services)."""
    emu = _emu(request)
    body = await _body(request)
    known = {
        "service_name",
        "infer_type",
        "workspace_id",
        "status",
        "model_id",
        "tags",
        "error_msg",
        "service_id",
        "generation",
    }
    unknown = set(body) - known - {"count"}
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(unknown))}")
    pins = {k: _opt_str(body, k) for k in ("service_name", "infer_type", "workspace_id", "status", "model_id")}
    error_msg = _opt_str(body, "error_msg")
    service_id = _opt_str(body, "service_id")
    tags = body.get("tags")
    if tags is not None and (
        not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items())
    ):
        raise BadRequest("tags must be an object of string keys and string values")
    generation = _generation(body, "generation", GENERATIONS, "v1")
    if generation != "v1" and pins["infer_type"] not in (None, "real-time"):
        raise BadRequest(f"a {generation} service is real-time: v2 has no {pins['infer_type']} services")
    gen = emu.fleet.generator
    count = _opt_int(body, "count", 0, MAX_NEW_SERVICES)
    if count is not None:
        if service_id is not None or pins["service_name"] is not None:
            raise BadRequest("count cannot be combined with service_id or service_name")
        ids = []
        for _ in range(count):
            s = gen.make(
                status=pins["status"],
                infer_type=pins["infer_type"],
                workspace_id=pins["workspace_id"],
                model_id=pins["model_id"],
                tags=tags,
                generation=generation,
            )
            while s.service_id in emu.fleet.by_id:  # astronomically unlikely, but never clobber
                s = gen.make(generation=generation)
            emu.fleet.add(s)
            emu.churn.record(s, None, shown_status(s), now_ms())
            ids.append(s.service_id)
        return JSONResponse({"service_ids": ids}, 201)
    if service_id is not None and service_id in emu.fleet.by_id:
        raise BadRequest(f"service {service_id} already exists", 409)
    s = gen.make(
        status=pins["status"] or "running",
        infer_type=pins["infer_type"],
        workspace_id=pins["workspace_id"] or DEFAULT_WORKSPACE,
        service_name=pins["service_name"],
        service_id=service_id,
        model_id=pins["model_id"],
        tags=tags,
        error_msg=error_msg,
        fresh_at=now_ms(),
        generation=generation,
    )
    emu.fleet.add(s)
    emu.churn.record(s, None, shown_status(s), s.transition_at)
    return JSONResponse(service_view(s, tag_v1=False), 201)


@_handled
async def get_service(request: Request) -> Response:
    """``GET /_emulator/services/{id}``: ``service_view`` (``generation`` included) with no quirks and no
    auth (handy in tests)."""
    s = _emu(request).fleet.get(request.path_params["service_id"])
    if s is None:
        raise BadRequest(f"service {request.path_params['service_id']} does not exist", 404)
    return JSONResponse(service_view(s))


@_handled
async def delete_service(request: Request) -> Response:
    """``DELETE /_emulator/services/{id}``: the service disappears at once (204)."""
    emu = _emu(request)
    service_id = request.path_params["service_id"]
    if emu.fleet.get(service_id) is None:
        raise BadRequest(f"service {service_id} does not exist", 404)
    s = emu.fleet.remove(service_id)
    emu.churn.record(s, shown_status(s), None, now_ms())
    return Response(status_code=204)


@_handled
async def reset(request: Request) -> Response:
    """``POST /_emulator/reset`` ``{"services"?, "seed"?, "generations"?}``: a fresh fleet; faults, quirks,
    counters, churn rate and history back to the settings. Issued tokens stay valid."""
    emu = _emu(request)
    body = await _body(request)
    n = _opt_int(body, "services", 0, 2_000_000)
    seed = _opt_int(body, "seed", -(2**63), 2**63)
    st = emu.settings
    generations = _generation(body, "generations", FLEET_GENERATIONS, st.generations)
    n = st.services if n is None else n
    seed = st.seed if seed is None else seed
    # generate off the event loop so API requests in flight are not stalled for a large fleet
    fleet = await asyncio.to_thread(build_fleet, n, seed, st.project_id, st.workspaces, st.anchor_ms, generations)
    emu.reset(fleet, seed)
    return JSONResponse({"services": n})


@_handled
async def churn(request: Request) -> Response:
    """``POST /_emulator/churn`` ``{"steps"?: N, "rate"?: R}``: apply N transitions now and/or set the
    automatic rate (transitions per second)."""
    emu = _emu(request)
    body = await _body(request)
    steps = _opt_int(body, "steps", 0, 1_000_000)
    rate = _opt_number(body, "rate")
    if rate is not None:
        emu.churn.set_rate(rate)
    transitions = emu.churn.steps(steps) if steps else []
    return JSONResponse({"transitions": transitions, "rate": emu.churn.rate})


async def transitions(request: Request) -> Response:
    """``GET /_emulator/transitions``: the last 1000 transitions, from churn and from this control API."""
    return JSONResponse({"transitions": list(_emu(request).churn.history)})


@_handled
async def faults(request: Request) -> Response:
    """``GET|POST|DELETE /_emulator/faults``: read, merge into, or clear the current faults."""
    emu = _emu(request)
    if request.method == "POST":
        try:
            emu.faults.merge(await _body(request))
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    elif request.method == "DELETE":
        emu.faults = Faults()
    return JSONResponse(emu.faults.as_dict())


async def expire_tokens(request: Request) -> Response:
    """``POST /_emulator/tokens/expire``: every IAM-issued token is expired from now on."""
    return JSONResponse({"expired": _emu(request).tokens.expire_all()})


@_handled
async def quirks(request: Request) -> Response:
    """``GET|POST|DELETE /_emulator/quirks``: read, merge into, or reset the quirk switches."""
    emu = _emu(request)
    if request.method == "POST":
        try:
            rows_changed = emu.quirks.merge(await _body(request))
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        if rows_changed:
            emu.fleet.clear_encoded()
    elif request.method == "DELETE":
        emu.quirks = Quirks(offset_mode=emu.settings.offset_mode)
        emu.fleet.clear_encoded()
    return JSONResponse(emu.quirks.as_dict())


async def requests_log(request: Request) -> Response:
    """``GET|DELETE /_emulator/requests``: API/IAM request counters by route and the last 500 requests."""
    emu = _emu(request)
    if request.method == "DELETE":
        emu.requests.clear()
    return JSONResponse(emu.requests.as_dict())


async def healthz(request: Request) -> Response:
    """``GET /_emulator/healthz``: liveness and the fleet size."""
    return JSONResponse({"ok": True, "services": len(_emu(request).fleet)})
