"""The emulated ModelArts API (v1 list, details, legacy list; v2 list, details) and IAM, behind one gateway.

``gateway`` plays the part of Huawei Cloud's API gateway in front of every API route, in this order: the
``missing_generation`` quirk (an API the region has not published is a 404 before anything else), injected
latency, authentication (X-Auth-Token, IAM token or AK/SK signature, then the project check),
injected faults (429, error statuses, random 500s), the handler, an injected malformed body, and finally
the request counters. Authentication comes before faults so a refused request never consumes a fault.
"""

from __future__ import annotations

import asyncio
import hmac
import time
import uuid
from collections.abc import Awaitable, Callable

from services_bot.emulator import render_v2, signing
from services_bot.emulator.faults import (
    FaultAction,
    fault_error,
    html_body,
    listing_hidden_share,
    take_bad_listing,
    take_fault,
    take_listing_deletions,
    take_malformed,
)
from services_bot.emulator.fleet import DEFAULT_WORKSPACE, Service, now_ms, shown_status, visible_on
from services_bot.emulator.iam import issue_token
from services_bot.emulator.query import InvalidParameter, page_start, parse_list_query, run_list_query
from services_bot.emulator.query_v2 import parse_v2_query, run_v2_query
from services_bot.emulator.quirks import Quirks
from services_bot.emulator.render import UNKNOWN_FIELD, details, dumps, encoded_legacy_row, encoded_row
from services_bot.emulator.state import EmulatorState
from starlette.requests import Request
from starlette.responses import Response

JSON = "application/json"
AUTH_CODE = "APIGW.0301"
AUTH_PREFIX = "Incorrect IAM authentication information: "
FORBIDDEN_CODE = "ModelArts.0106"
NOT_FOUND_CODE = "ModelArts.3502"
NO_API_CODE = "APIGW.0101"
NO_API_MSG = "The API does not exist or has not been published in the environment."

Handler = Callable[[Request, EmulatorState], Awaitable[Response]]


def api_error(
    status: int,
    code: str,
    msg: str,
    *,
    legacy: bool = False,
    quirks: Quirks | None = None,
    from_fault: bool = False,
    headers: dict[str, str] | None = None,
) -> Response:
    """A ``{"error_code", "error_msg"}`` error, or the legacy ``is_success: false`` envelope.

    With the ``legacy_error_200`` quirk, legacy errors (except injected gateway faults) answer HTTP 200,
    which is what Q33 warns a client about.
    """
    if legacy:
        body = dumps({"is_success": False, "error_code": code, "error_msg": msg})
        if quirks is not None and quirks.legacy_error_200 and not from_fault:
            status = 200
    else:
        key = "error_message" if quirks is not None and quirks.error_message_key else "error_msg"
        fields: dict[str, object] = {"error_code": code, key: msg}
        if quirks is not None and quirks.request_id_in_body:
            fields["request_id"] = uuid.uuid4().hex
        body = dumps(fields)
    return Response(body, status, headers=headers, media_type=JSON)


def _fault_response(action: FaultAction, legacy: bool, quirks: Quirks) -> Response:
    headers = {"Retry-After": str(action.retry_after)} if action.retry_after is not None else None
    if action.body == "html":
        return Response(html_body(action.status), action.status, headers=headers, media_type="text/html")
    if action.body == "empty":
        return Response(b"", action.status, headers=headers)
    code, msg = fault_error(action.status, action.code)
    return api_error(action.status, code, msg, legacy=legacy, quirks=quirks, from_fault=True, headers=headers)


def _lower_headers(request: Request) -> dict[str, str]:
    """Header names lower-cased; values decoded as UTF-8, which is how the SDK signer encodes them."""
    return {k.decode("latin-1").lower(): v.decode("utf-8", "replace") for k, v in request.scope["headers"]}


async def authenticate(request: Request, emu: EmulatorState, legacy: bool) -> Response | None:
    """None if the request may proceed, else the 401/403 answer. Never echoes a credential.

    An AK/SK signature is verified over the raw path and query as received (``emulator.signing``), then a
    signed ``X-Project-Id`` must name the path's project, before the project check every credential gets.
    """
    s = emu.settings
    quirks = emu.quirks

    def unauthorized(why: str) -> Response:
        return api_error(401, AUTH_CODE, AUTH_PREFIX + why, legacy=legacy, quirks=quirks)

    credential_project: str | None = s.project_id
    token = request.headers.get("x-auth-token")
    authorization = request.headers.get("authorization")
    if token is not None:
        if not hmac.compare_digest(token.encode(), s.token.encode()):
            info = emu.tokens.lookup(token)
            if info is None:
                return unauthorized("token invalid")
            if info.expires_at <= time.time():
                return unauthorized("token expired")
            credential_project = info.project_id
    elif authorization is not None:
        if not authorization.lstrip().startswith(signing.ALGORITHM + " "):
            return unauthorized("unsupported Authorization scheme")
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        headers = _lower_headers(request)
        try:
            verified = signing.verify(
                authorization=authorization,
                method=request.method,
                raw_path=raw_path.decode("latin-1").partition("?")[0],
                raw_query=request.scope.get("query_string", b"").decode("latin-1"),
                headers=headers,
                body=await request.body(),
                keys={s.ak: s.sk},
                security_token=s.security_token,
            )
        except signing.SignatureError as exc:
            return unauthorized(str(exc))
        if "x-project-id" in verified.signed_headers:
            mismatch = _project_header_mismatch(headers["x-project-id"].strip(), request, legacy, quirks)
            if mismatch is not None:
                return mismatch
    elif legacy:
        # the legacy page's only error example is exactly this case (Q33/Q34)
        return api_error(401, "res.2301", "Failed to resolve the token from the request.", legacy=True, quirks=quirks)
    else:
        return unauthorized("missing X-Auth-Token (or an AK/SK signature)")

    path_project = request.path_params.get("project_id", "")
    if credential_project is None:
        return api_error(
            403, FORBIDDEN_CODE, "Forbidden: the token is not scoped to a project.", legacy=legacy, quirks=quirks
        )
    if path_project != s.project_id or credential_project != path_project:
        return api_error(
            403,
            FORBIDDEN_CODE,
            f"Forbidden: the credentials are not authorized for project {path_project}.",
            legacy=legacy,
            quirks=quirks,
        )
    return None


def _project_header_mismatch(project_header: str, request: Request, legacy: bool, quirks: Quirks) -> Response | None:
    """The SDK signs ``X-Project-Id`` for project-scoped credentials: a signed one must name the URL's project."""
    path_project = request.path_params.get("project_id", "")
    if project_header == path_project:
        return None
    return api_error(
        403,
        FORBIDDEN_CODE,
        f"Forbidden: X-Project-Id {project_header[:64]} does not match the project {path_project} in the URL.",
        legacy=legacy,
        quirks=quirks,
    )


def gateway(
    route: str, *, legacy: bool = False, auth: bool = True, generation: str | None = None
) -> Callable[[Handler], Callable]:
    """Wrap a handler with latency, auth, faults, malformed bodies and request counting (see module doc).

    ``generation`` names the API generation of the route, which the ``missing_generation`` quirk can take away.
    """

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            emu: EmulatorState = request.app.state.emu
            path = request.url.path
            started = time.monotonic()
            if generation is not None and emu.quirks.missing_generation == generation:
                response = api_error(404, NO_API_CODE, NO_API_MSG, quirks=emu.quirks)
                emu.requests.record(
                    route, request.method, path, request.url.query, 404, request.headers.get("user-agent")
                )
                return response
            faults = emu.faults
            applies = faults.applies_to(path)
            if applies and faults.latency_ms > 0:
                await asyncio.sleep(faults.latency_ms / 1000)
            response = await authenticate(request, emu, legacy) if auth else None
            if response is None and applies:
                action = take_fault(faults, emu.fault_rng)
                if action is not None:
                    response = _fault_response(action, legacy, emu.quirks)
            if response is None:
                response = await handler(request, emu)
                if applies and response.status_code == 200 and take_malformed(faults):
                    body = bytes(response.body)
                    response = Response(body[: max(1, len(body) // 2)], 200, media_type=JSON)
            emu.requests.record(
                route, request.method, path, request.url.query, response.status_code,
                request.headers.get("user-agent"), started,
            )  # fmt: skip
            return response

        endpoint.__name__ = handler.__name__
        endpoint.__doc__ = handler.__doc__
        return endpoint

    return wrap


#: HTTP 200 bodies that are not a v1 listing, by ``listing_body`` fault (each seen from some server or API)
_NOT_A_LISTING: dict[str, Callable[[int], dict[str, object]]] = {
    "empty_object": lambda total: {},
    "null_services": lambda total: {"total_count": total, "count": 0, "services": None},
    "error_envelope": lambda total: {
        "error_code": "ModelArts.0010",
        "error_msg": "Internal error.",
        "request_id": "req-in-body-200",
    },
    "legacy_failure": lambda total: {
        "is_success": False,
        "error_code": "ModelArts.0010",
        "error_msg": "Internal error.",
    },
    "v2_shape": lambda total: {"data": [], "current": 0, "size": 0, "pages": 0, "total": total},
}


@gateway("list", generation="v1")
async def list_services(request: Request, emu: EmulatorState) -> Response:
    """``GET /v1/{project_id}/services``: a page of ListServices rows (semantics in query.py)."""
    quirks = emu.quirks
    rules = quirks.paging_rules()
    try:
        q = parse_list_query(request.query_params, ignore_sort_by=quirks.ignore_sort_by)
        faulted = emu.faults.applies_to(request.url.path)
        hidden = listing_hidden_share(emu.faults, q.offset == 0) if faulted else 0.0
        total, page = run_list_query(emu.fleet, q, rules, hidden)
    except InvalidParameter as exc:
        return api_error(400, exc.code, exc.message, quirks=quirks)
    if faulted and (bad := take_bad_listing(emu.faults)) is not None:
        if bad != "half_page":
            return Response(dumps(_NOT_A_LISTING[bad](total)), media_type=JSON)
        page = page[: len(page) // 2]  # the envelope below still counts the whole page
        count = len(page) * 2
    else:
        count = q.limit if quirks.count_is_page_size else len(page)
    head: dict[str, object] = {}
    if not quirks.missing_total_count:
        head["total_count"] = float(total) if quirks.float_numbers else total
    if not quirks.missing_count:
        head["count"] = float(count) if quirks.float_numbers else count
    if quirks.unknown_fields:
        head["new_field"] = dict(UNKNOWN_FIELD)
    rows = b",".join([encoded_row(s, quirks) for s in page])
    opening = dumps(head)[:-1] + b"," if head else b"{"
    body = b"".join((opening, b'"services":[', rows, b"]}"))
    if faulted and page_start(q, rules) + len(page) < total:
        _delete_served(emu, page[: take_listing_deletions(emu.faults)])
    return Response(body, media_type=JSON)


def _delete_served(emu: EmulatorState, services: list[Service]) -> None:
    """The ``delete_during_listing`` fault: services just served disappear, so later pages shift back."""
    for s in services:
        emu.fleet.remove(s.service_id)
        emu.churn.record(s, shown_status(s), None, now_ms())


@gateway("show", generation="v1")
async def show_service(request: Request, emu: EmulatorState) -> Response:
    """``GET /v1/{project_id}/services/{service_id}``: the details object, or 404 ModelArts.3502 (also for a
    v2-only service, which the v1 API does not know)."""
    service_id = request.path_params["service_id"]
    s = emu.fleet.get(service_id)
    if s is None or not visible_on(s, "v1"):
        return api_error(404, NOT_FOUND_CODE, f"Service {service_id} does not exist.", quirks=emu.quirks)
    return Response(dumps(details(s, emu.quirks)), media_type=JSON)


@gateway("legacy", legacy=True, generation="v1")
async def legacy_services(request: Request, emu: EmulatorState) -> Response:
    """``GET /v1/{project_id}/infer-services``: one workspace (query ``workspace_id``, default 0), no paging."""
    ws = request.query_params.get("workspace_id") or DEFAULT_WORKSPACE
    quirks = emu.quirks
    services = emu.fleet.select(("legacy", ws), "publish_at", True, None, ws)
    rows = b",".join([encoded_legacy_row(s, quirks) for s in services])
    extra = b',"new_field":{"x":1}' if quirks.unknown_fields else b""
    body = b"".join((b'{"is_success":true', extra, b',"services":[', rows, b"]}"))
    return Response(body, media_type=JSON)


@gateway("list_v2", generation="v2")
async def list_services_v2(request: Request, emu: EmulatorState) -> Response:
    """``GET /v2/{project_id}/services``: a page of ServiceItem rows in the v2 envelope (rules in query_v2.py).

    A project with no v2 services gets an empty, well-formed page. The ``v2_short_page`` and
    ``v2_pages_overflow`` faults make the answer break v2's own paging rules (faults.py).
    """
    quirks = emu.quirks
    faults = emu.faults
    try:
        q = parse_v2_query(request.query_params)
    except InvalidParameter as exc:
        return api_error(400, exc.code, exc.message, quirks=quirks)
    faulted = faults.applies_to(request.url.path)
    hidden = listing_hidden_share(faults, q.offset == 0) if faulted else 0.0
    result = run_v2_query(emu.fleet, q, hidden)
    page, pages = result.services, result.pages
    last = q.offset + len(page) >= result.total
    if faulted and faults.v2_short_page and not last and page:
        page = page[:-1]
    if faulted and faults.v2_pages_overflow and pages > 0:
        pages -= 1
    rows = b",".join([render_v2.encoded_row(s, quirks) for s in page])
    head = render_v2.envelope_head(result.current, q.limit, pages, result.total, quirks)
    body = b"".join((b'{"data":[', rows, b"],", head))
    if faulted and not last:
        _delete_served(emu, page[: take_listing_deletions(faults)])
    return Response(body, media_type=JSON)


@gateway("show_v2", generation="v2")
async def show_service_v2(request: Request, emu: EmulatorState) -> Response:
    """``GET /v2/{project_id}/services/{service_id}``: the v2 details, or 404 ModelArts.3502 (also for a v1-only
    service, which the v2 API does not know)."""
    service_id = request.path_params["service_id"]
    s = emu.fleet.get(service_id)
    if s is None or not visible_on(s, "v2"):
        return api_error(404, NOT_FOUND_CODE, f"Service {service_id} does not exist.", quirks=emu.quirks)
    return Response(dumps(render_v2.details(s, emu.quirks)), media_type=JSON)


@gateway("iam", auth=False)
async def iam_tokens(request: Request, emu: EmulatorState) -> Response:
    """``POST /v3/auth/tokens``: a password token in ``X-Subject-Token`` (see iam.py)."""
    return await issue_token(request, emu.settings, emu.tokens, emu.token_ttl())


@gateway("other", auth=False)
async def no_such_api(request: Request, emu: EmulatorState) -> Response:
    """Any other ``/v1/`` or ``/v2/`` path: the gateway's "no such API" answer."""
    return api_error(404, NO_API_CODE, NO_API_MSG, quirks=emu.quirks)
