"""Async client of the ModelArts services API for one target (endpoint + project).

It owns the parts every caller needs and nobody should repeat: credentials on every request, retries with
backoff, typed errors, and listing *everything* through the ambiguous ``offset`` (quirk Q24) with the
remaining pages fetched concurrently: all at once (``list_all``) or a page at a time (``iter_pages``, which
reads only a few pages ahead, so a caller that keeps less than the rows holds one page, not the fleet).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import asdict, dataclass
from typing import Literal, TypeVar

import httpx
from pydantic import ValidationError
from services_bot.core.auth import Credentials
from services_bot.core.config import Target
from services_bot.core.errors import (
    ApiError,
    ApiNotFoundError,
    AuthenticationError,
    BadRequestError,
    ForbiddenError,
    IncompleteListingError,
    MalformedResponseError,
    QueryError,
    RateLimitedError,
    ServerError,
    UnavailableError,
)
from services_bot.core.metrics import API_LATENCY, API_REQUESTS
from services_bot.core.models import (
    LegacyServiceList,
    ListedPage,
    ListedService,
    Service,
    ServicePage,
    share_fields_sets,
)
from services_bot.core.retry import RETRYABLE_STATUSES, RetryPolicy, parse_retry_after
from services_bot.core.signing import wire_url

log = logging.getLogger("services_bot.client")

T = TypeVar("T")
OffsetMode = Literal["page", "record"]
MAX_PAGES = 10_000
_SERVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class ListParams:
    """The filters ``GET /services`` understands (LIST Table 2); None means "not sent"."""

    service_id: str | None = None
    service_name: str | None = None
    model_id: str | None = None
    workspace_id: str | None = None
    infer_type: str | None = None
    status: str | None = None
    sort_by: str | None = None
    order: str | None = None
    tags: str | None = None
    pool_id: str | None = None  # v2 only: the v1 list has no pool filter (core.generations skips v1 for it)
    every_field: bool = False
    """Not a filter: rows keep every field the API sent (``Service``), not only what answers read
    (``ListedService``, read in about 0.6 of the time and held in 0.6 of the memory); for ``ask --json``."""

    def query(self) -> dict[str, str]:
        return {
            k: v for k, v in asdict(self).items() if v is not None and k not in ("pool_id", "every_field")
        }


async def collect_pages(pages: AsyncIterator[list[ListedService]]) -> list[ListedService]:
    """All pages in one list; an ``IncompleteListingError`` leaves with the rows that did arrive."""
    services: list[ListedService] = []
    try:
        async with aclosing(pages) as opened:
            async for rows in opened:
                services += rows
    except IncompleteListingError as exc:
        exc.services = list(services)
        raise
    return services


def validate_service_id(service_id: str) -> str:
    """Refuse ids that cannot be a path segment before they reach the API (or another path)."""
    cleaned = service_id.strip() if isinstance(service_id, str) else ""
    if not cleaned:
        raise QueryError("The service id is empty.", hint="Give a service id or name, e.g. `show ocr-prod`.")
    if not _SERVICE_ID.match(cleaned):
        raise QueryError(
            f"'{service_id[:80]}' is not a valid service id.",
            hint="Service ids are letters, digits, '-', '_' and '.', like 195c1f2d-136d-40af-a0f3-db5717d2634a.",
        )
    return cleaned


class ModelArtsClient:
    """One target's v1 API. Share one ``httpx.AsyncClient`` between targets; each has its own limits.
    ``core.client_v2.ModelArtsV2Client`` reads the v2 API with the same transport, retries and paging."""

    generation: Literal["v1", "v2"] = "v1"

    def __init__(
        self,
        http: httpx.AsyncClient,
        target: Target,
        credentials: Credentials,
        *,
        retry: RetryPolicy | None = None,
        page_size: int = 1000,
        concurrency: int = 8,
    ) -> None:
        if page_size < 2:
            raise ValueError("page_size must be at least 2 to tell the two offset readings apart")
        self.http = http
        self.target = target
        self.credentials = credentials
        self.retry = retry or RetryPolicy()
        self.page_size = page_size
        self.concurrency = max(1, concurrency)
        self._semaphore = asyncio.Semaphore(self.concurrency)
        self.offset_mode: OffsetMode | None = None
        self.served_limit: int | None = None
        self.requests_sent = 0

    @property
    def _base(self) -> str:
        return f"{self.target.endpoint}/{self.generation}/{self.target.project_id}"

    # -- endpoints ---------------------------------------------------------------------------------

    async def list_page(self, params: ListParams, *, offset: int = 0, limit: int | None = None) -> ListedPage:
        """One page of ``GET /v1/{project_id}/services``: ``ListedService`` rows, or ``Service`` rows with
        ``params.every_field``."""
        asked = limit or self.page_size
        query = {**params.query(), "offset": str(offset), "limit": str(asked)}
        model = ServicePage if params.every_field else ListedPage
        parse = _parse_page(model, self._context("list"), asked)
        return await self._request("GET", f"{self._base}/services", query, parse)

    async def get_service(self, service_id: str) -> Service:
        """``GET /v1/{project_id}/services/{service_id}``; unknown ids raise ``ApiNotFoundError``."""
        service_id = validate_service_id(service_id)
        return await self._request(
            "GET", f"{self._base}/services/{service_id}", {}, _parse(Service, self._context("details"))
        )

    async def list_legacy(self, workspace_id: str | None = None) -> list[Service]:
        """The legacy ``GET /v1/{project_id}/infer-services``, normalised to ``Service`` (no paging, Q30)."""
        query = {"workspace_id": workspace_id} if workspace_id else {}
        envelope = await self._request("GET", f"{self._base}/infer-services", query, _parse_legacy)
        return [row.to_service(self.target.name) for row in envelope.services or []]

    async def list_all(self, params: ListParams) -> list[ListedService]:
        """Every service matching ``params``, each exactly once, whichever way the server reads ``offset``
        (all of ``iter_pages`` in one list). An ``IncompleteListingError`` carries the rows that did arrive."""
        return await collect_pages(self.iter_pages(params))

    @property
    def page_limit(self) -> int:
        """The most rows a page brings: the configured page size, or the server's cap once seen (the first page
        of each listing still asks for the configured size, so a lifted cap is noticed)."""
        return min(self.page_size, self.served_limit or self.page_size)

    async def iter_pages(self, params: ListParams) -> AsyncIterator[list[ListedService]]:
        """Every service matching ``params``, each exactly once, one page's new rows at a time and in page
        order, so a caller that keeps less than the parsed rows never holds the whole listing.

        The first page gives ``total_count`` and the page length the server really serves: one that answers
        fewer rows than asked while more exist caps ``limit`` (a v2-era server caps at 500), and the listing
        goes on with that length so offsets line up in both readings. If more pages are needed and the offset
        reading is not yet known, it is probed once (``_probe_offset_mode``). The remaining pages then go out
        concurrently, at most ``concurrency`` pages ahead of the one being yielded. Rows are de-duplicated by
        id, so a shift between pages cannot double a service; a page with no new row yields nothing.

        A listing is complete or it is an error: one that ends with fewer services than the last page's
        ``total_count`` raises ``IncompleteListingError`` after yielding what it got.
        Use ``contextlib.aclosing`` when you may stop early: closing cancels the requests still out.
        """
        asked = self.page_size
        seen: set[str] = set()
        first = await self.list_page(params, offset=0, limit=asked)
        if rows := _fresh(seen, first):
            yield rows
        totals = _Totals(first.total_count)
        served = len(first.services)
        if totals.reached(len(seen)) or served == 0 or (totals.latest is None and served < asked and served < 2):
            totals.check(len(seen))
            return
        size = asked
        if served < asked:
            # fewer than asked while more exist (or, with no total_count, maybe more): a cap on limit
            size = served
            if totals.latest is not None:
                self._note_cap(served, asked)
        else:
            self.served_limit = None  # asked for in full each time: a cap that was lifted is noticed
        if self.offset_mode is None:
            self.offset_mode = await self._probe_offset_mode(params, first, size)
            log.info("offset mode detected", extra={"target": self.target.name, "mode": self.offset_mode})
        del first
        if totals.latest is None:  # no total_count: nothing to fan out over, read on until a short page
            async for rows in self._read_on(params, seen, totals, 1, size):
                yield rows
            return
        pages = -(-totals.latest // size)
        indexes = iter(range(1, pages))
        ahead: deque[asyncio.Task[ListedPage]] = deque()

        def fetch_next(count: int) -> None:
            for index in itertools.islice(indexes, count):
                task = self.list_page(params, offset=self._offset(index, size), limit=size)
                ahead.append(asyncio.create_task(task))

        try:
            fetch_next(self.concurrency)
            while ahead:
                page = await ahead.popleft()
                fetch_next(1)
                totals.see(page)
                if rows := _fresh(seen, page):
                    yield rows
                del page
        finally:
            for task in ahead:
                task.cancel()
            if ahead:
                await asyncio.gather(*ahead, return_exceptions=True)
        if not totals.reached(len(seen)):
            async for rows in self._read_on(params, seen, totals, pages, size):
                yield rows
        totals.check(len(seen))

    def _note_cap(self, served: int, asked: int) -> None:
        if self.served_limit != served:
            log.warning(
                "ModelArts caps the page length",
                extra={"target": self.target.name, "asked": asked, "served": served},
            )
        self.served_limit = served

    def _offset(self, page_index: int, size: int) -> int:
        return page_index if self.offset_mode == "page" else page_index * size

    async def _probe_offset_mode(self, params: ListParams, first: ListedPage, size: int) -> OffsetMode:
        """Ask once how the server reads ``offset``, with a request valid under both readings.

        ``limit=k&offset=k`` (k = half a page) keeps ``offset`` a multiple of ``limit``, the rule the v2 API
        enforces: counting records it answers rows k..2k-1 of the first page; counting pages it answers rows
        from k² on, past the first page (or nothing). A 4xx to it is information, not a failed listing: the
        older probe ``limit=size&offset=1`` is tried, and a server refusing that too reads records (only a
        record reading makes "a multiple of limit" a rule).
        """
        first_ids = [s.service_id for s in first.services]
        half = size // 2
        if half * half >= size:
            try:
                probe = await self.list_page(params, offset=half, limit=half)
                return _offset_mode_from(first_ids, [s.service_id for s in probe.services], half)
            except ApiError as exc:
                if not _informative(exc):
                    raise
                log.info("offset probe refused", extra={"target": self.target.name, "status": exc.status})
        try:
            probe = await self.list_page(params, offset=1, limit=size)
        except ApiError as exc:
            if not _informative(exc):
                raise
            log.info("offset probe refused", extra={"target": self.target.name, "status": exc.status})
            return "record"
        return _offset_mode_from(first_ids, [s.service_id for s in probe.services], 1)

    async def _read_on(
        self, params: ListParams, seen: set[str], totals: _Totals, start: int, size: int
    ) -> AsyncIterator[list[ListedService]]:
        """Page sequentially from ``start`` until a short page (or the total reached): rows pushed past the
        pages we asked for by services added meanwhile, or a server that sends no ``total_count``."""
        for index in range(start, start + MAX_PAGES):
            page = await self.list_page(params, offset=self._offset(index, size), limit=size)
            totals.see(page)
            if rows := _fresh(seen, page):
                yield rows
            if len(page.services) < size or totals.reached(len(seen)):
                return
        raise MalformedResponseError(f"The API kept returning full pages past {MAX_PAGES} pages; paging stopped.")

    def _context(self, detail: str) -> dict[str, str]:
        return {"target": self.target.name, "detail": detail}

    # -- transport ---------------------------------------------------------------------------------

    async def _request(self, method: str, url: str, query: dict[str, str], parse: Callable[[httpx.Response], T]) -> T:
        """Send with credentials, retry what may heal, classify what will not."""
        started = time.monotonic()
        retry_number = 0
        refreshed = False
        async with self._semaphore:
            while True:
                outcome = await self._attempt(method, url, query, parse)
                if isinstance(outcome, _Unauthorized):
                    if not refreshed and await self.credentials.refresh_after_401(self.target.project_id):
                        refreshed = True  # one fresh token per request, not counted as a retry
                        continue
                    outcome = _Retryable(outcome.error, None, final=True)
                if not isinstance(outcome, _Retryable):
                    return outcome
                retry_number += 1
                remaining = self.retry.budget_seconds - (time.monotonic() - started)
                wait = None if outcome.final else self.retry.wait_before(retry_number, outcome.retry_after, remaining)
                if wait is None:
                    outcome.error.attempts = retry_number
                    raise outcome.error
                log.warning(
                    "retrying ModelArts request",
                    extra={
                        "target": self.target.name,
                        "path": httpx.URL(url).path,
                        "status": outcome.error.status,
                        "retry": retry_number,
                        "wait_s": round(wait, 3),
                    },
                )
                await asyncio.sleep(wait)

    async def _attempt(
        self, method: str, url: str, query: dict[str, str], parse: Callable[[httpx.Response], T]
    ) -> T | _Retryable | _Unauthorized:
        """One try: the parsed answer, or what went wrong and whether it may heal."""
        request = self.http.build_request(method, wire_url(url, query))  # the query exactly as signed
        try:
            await self.credentials.apply(request, self.target.project_id)
        except (UnavailableError, ServerError, RateLimitedError) as exc:  # IAM itself is briefly unwell
            return _Retryable(exc, getattr(exc, "retry_after", None))
        self.requests_sent += 1
        route = _route(request.url.path)
        sent = time.monotonic()
        try:
            response = await self.http.send(request)
        except httpx.TimeoutException as exc:
            API_REQUESTS.labels(self.target.name, route, "0").inc()
            return _Retryable(UnavailableError(f"ModelArts did not answer in time ({type(exc).__name__})."), None)
        except httpx.TransportError as exc:
            API_REQUESTS.labels(self.target.name, route, "0").inc()
            error = UnavailableError(f"Cannot reach ModelArts at {self.target.endpoint} ({type(exc).__name__}).")
            return _Retryable(error, None)
        API_LATENCY.labels(route).observe(time.monotonic() - sent)
        API_REQUESTS.labels(self.target.name, route, str(response.status_code)).inc()
        if response.status_code < 400:
            try:
                return parse(response)
            except MalformedResponseError as exc:
                return _Retryable(exc, None)
            except ApiError as exc:  # an error envelope inside a 2xx: retried unless it names a lasting cause
                return _Retryable(exc, None, final=type(exc) not in (ApiError, ServerError))
        error = _classify(response)
        if response.status_code == 401:
            return _Unauthorized(error)
        if response.status_code in RETRYABLE_STATUSES:
            return _Retryable(error, parse_retry_after(response.headers.get("Retry-After")))
        return _Retryable(error, None, final=True)


def _route(path: str) -> str:
    """A bounded label for a request path: the three v1 endpoints, the two v2 ones (``list_v2``, ``show_v2``) and a
    service's events, monitor, logs, deployments and instances."""
    suffix = "_v2" if "/v2/" in path else ""
    if path.endswith("/infer-services"):
        return "legacy"
    if path.endswith("/services"):
        return "list" + suffix
    tail = path.rsplit("/", 1)[-1]
    if "/services/" in path and tail in _SERVICE_PARTS:
        return tail + suffix
    return ("show" + suffix) if "/services/" in path else "other"


_SERVICE_PARTS = frozenset({"events", "monitor", "logs", "deployments", "instances"})
"""The sub-resources of a service (``core.client_events``), each its own route label."""


@dataclass
class _Retryable:
    """A failed attempt: ``final`` when retrying cannot help (4xx other than 429)."""

    error: ApiError
    retry_after: float | None
    final: bool = False


@dataclass
class _Unauthorized:
    error: ApiError


def _fresh(seen: set[str], page: ListedPage) -> list[ListedService]:
    """The page's rows whose id is not in ``seen`` yet (first occurrence wins); adds their ids to it."""
    rows = []
    for service in page.services:
        if service.service_id not in seen:
            seen.add(service.service_id)
            rows.append(service)
    return rows


class _Totals:
    """The ``total_count`` a listing must reach: the latest page's, since deletions and additions during the
    listing move it (and the first page's would call a shrinking fleet incomplete)."""

    def __init__(self, first: int | None) -> None:
        self.latest = first

    def see(self, page: ListedPage) -> None:
        if page.total_count is not None:
            self.latest = page.total_count

    def reached(self, seen: int) -> bool:
        return self.latest is not None and seen >= self.latest

    def check(self, seen: int) -> None:
        """Raise when the listing ended short of what the server announced."""
        if self.latest is not None and seen < self.latest:
            raise IncompleteListingError(
                f"ModelArts returned {seen:,} of {self.latest:,} services and stopped paging; "
                "the answer is incomplete.",
                served=seen,
                total=self.latest,
            )


def _informative(exc: ApiError) -> bool:
    """A 4xx that says "not like that" about a request, rather than about who is asking."""
    return 400 <= exc.status < 500 and exc.status not in (401, 403, 407, 429)


def _offset_mode_from(first_ids: list[str], probe_ids: list[str], index: int) -> OffsetMode:
    """Read the offset mode from a probe at ``offset=index``: counting records, it starts at row ``index`` of
    the first page; counting pages, past it (or nowhere)."""
    if not probe_ids:
        return "page"
    if probe_ids[0] == first_ids[index]:
        return "record"
    if probe_ids[0] == first_ids[0]:
        raise MalformedResponseError(
            "The API ignores the offset parameter: asking for a later page returned the first one again.",
            hint="Paging cannot work against this endpoint; check MODELARTS_ENDPOINT.",
        )
    overlap = len(set(first_ids) & set(probe_ids))
    return "record" if overlap > len(probe_ids) // 2 else "page"


def _parse(model: type[T], context: dict[str, str] | None = None) -> Callable[[httpx.Response], T]:
    def parse(response: httpx.Response) -> T:
        try:
            return model.model_validate_json(response.content, context=context)  # type: ignore[attr-defined,no-any-return]
        except ValidationError as exc:
            raise _unreadable(response, exc) from None

    return parse


def _parse_page(
    model: type[ListedPage], context: dict[str, str], limit: int
) -> Callable[[httpx.Response], ListedPage]:
    """A list page, or an error: a 200 is a listing only if it carries ``services`` as a list, no
    ``error_code``, and (when it says) as many rows as its ``count``. A ``count`` equal to ``limit`` over a
    shorter page is let through: it may be the page size (v2's ``size`` is ambiguous that way, L1), and a
    truncated page still shows as a listing short of ``total_count``."""

    def parse(response: httpx.Response) -> ListedPage:
        try:
            page = model.model_validate_json(response.content, context=context)
        except ValidationError as exc:
            raise _unreadable(response, exc) from None
        extra = page.__pydantic_extra__ or {}
        if extra.get("error_code") or extra.get("is_success") is False:
            raise _error_in_body(response, extra)
        if page.count is not None and page.count != len(page.services) and page.count != limit:
            raise MalformedResponseError(
                f"ModelArts answered a page that says count {page.count} but carries {len(page.services)} "
                "services (a truncated answer).",
                status=response.status_code,
                request_id=_request_id(response, extra),
            )
        share_fields_sets(page.services)
        return page

    return parse


def _unreadable(response: httpx.Response, exc: ValidationError) -> ApiError:
    """Why a 2xx body is not the documented JSON, in the terms of what it is instead when that can be told:
    an error envelope (then it is that API error), another API generation's listing, or nothing usable."""
    data = _json_object(response)
    if data is not None and (data.get("error_code") or data.get("is_success") is False):
        return _error_in_body(response, data)
    if data is not None and isinstance(data.get("data"), list) and ("total" in data or "pages" in data):
        what = "a v2-style listing (data/total) where the v1 API's services/total_count belong"
        return MalformedResponseError(
            f"ModelArts answered HTTP {response.status_code} with {what}.",
            status=response.status_code,
            request_id=_request_id(response, data),
            hint="Check MODELARTS_ENDPOINT: it may point at a gateway that routes to the other API generation.",
        )
    return MalformedResponseError(
        f"ModelArts answered HTTP {response.status_code} with a body that is not the documented "
        f"JSON ({_first_problem(exc)}).",
        status=response.status_code,
        request_id=_request_id(response, data or {}),
    )


def _error_in_body(response: httpx.Response, data: dict[str, object]) -> ApiError:
    """A 2xx whose body is an error envelope (the legacy API's ``is_success: false``, Q33, or a gateway's
    ``error_code``) is that error, never an empty answer."""
    code, msg = _error_fields(data)
    message = msg or "the API reported a failure"
    return api_error(
        response.status_code,
        f"ModelArts answered HTTP {response.status_code} with an error: {message}",
        code=code,
        msg=msg,
        request_id=_request_id(response, data),
    )


def _parse_legacy(response: httpx.Response) -> LegacyServiceList:
    """The legacy API may say ``is_success: false`` with HTTP 200 (Q33): that is an error too."""
    envelope = _parse(LegacyServiceList)(response)
    if envelope.is_success is False or envelope.error_code:
        message = envelope.error_msg or "The legacy API reported a failure."
        raise api_error(
            response.status_code,
            f"ModelArts refused the request: {message}",
            code=envelope.error_code,
            msg=envelope.error_msg,
            request_id=_request_id(response, envelope.__pydantic_extra__ or {}),
        )
    return envelope


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"]) or "body"
    return f"{where}: {error['msg']}"


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: ForbiddenError,
    404: ApiNotFoundError,
}

_TOKEN_HINT = (
    "The token was refused: get a new MODELARTS_AUTH_TOKEN scoped to MODELARTS_PROJECT_ID (tokens expire after "
    "24 h), or use IAM password or AK/SK credentials, which renew themselves."
)
_AKSK_HINT = (
    "The AK/SK was refused: check that HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK are one pair of an active access "
    "key (and HUAWEICLOUD_SDK_SECURITY_TOKEN for a temporary one), and that the machine's clock is right."
)
_PROJECT_HINT = "MODELARTS_PROJECT_ID is not the project these credentials are for, or not a project of this region."
_PERMISSION_HINT = "The user lacks ModelArts read permission (modelarts:service:list/get) in this project or workspace."

#: (class, hint) by error code, where the code says more than the HTTP status (v1-service-events-monitor-logs.md,
#: errors). A code may recur under several statuses: keyed by (status, code), with (None, code) for any status.
_BY_CODE: dict[tuple[int | None, str], tuple[type[ApiError], str]] = {
    (None, "ModelArts.0201"): (AuthenticationError, "The request carried no token. " + _TOKEN_HINT),
    (None, "ModelArts.0202"): (AuthenticationError, "The token has expired. " + _TOKEN_HINT),
    (None, "ModelArts.0203"): (AuthenticationError, _TOKEN_HINT),
    (None, "ModelArts.0204"): (AuthenticationError, _TOKEN_HINT),
    (None, "ModelArts.0205"): (AuthenticationError, _AKSK_HINT),
    (401, "ModelArts.0206"): (AuthenticationError, _AKSK_HINT),
    (403, "ModelArts.0206"): (AuthenticationError, _AKSK_HINT),
    (None, "ModelArts.0207"): (AuthenticationError, _PROJECT_HINT),
    (None, "ModelArts.0208"): (AuthenticationError, _AKSK_HINT),
    (None, "ModelArts.0212"): (AuthenticationError, _PROJECT_HINT),
    (None, "ModelArts.0210"): (ForbiddenError, _PROJECT_HINT),
    (None, "ModelArts.0108"): (ForbiddenError, _PERMISSION_HINT),
    (403, "ModelArts.0112"): (ForbiddenError, _PERMISSION_HINT),
    (None, "ModelArts.0102"): (BadRequestError, "The workspace does not exist: check MODELARTS_WORKSPACE_ID."),
    (None, "APIGW.0301"): (AuthenticationError, _TOKEN_HINT + " With AK/SK: " + _AKSK_HINT),
}


def _classify(response: httpx.Response) -> ApiError:
    """An error answer as a typed error: the class and hint by ``error_code`` where the code is telling, else
    by HTTP status; code, message and request id from the body when it has them (Q33)."""
    status = response.status_code
    data = _json_object(response) or {}
    code, msg = _error_fields(data)
    return api_error(
        status,
        f"ModelArts answered HTTP {status}" + (f": {msg}" if msg else ""),
        code=code,
        msg=msg,
        request_id=_request_id(response, data),
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
    )


def api_error(
    status: int,
    message: str,
    *,
    code: str | None,
    msg: str | None,
    request_id: str | None,
    retry_after: float | None = None,
) -> ApiError:
    kwargs: dict[str, object] = {"status": status, "error_code": code, "error_msg": msg, "request_id": request_id}
    by_code = _BY_CODE.get((status, code or "")) or _BY_CODE.get((None, code or ""))
    if status == 429 or code == "APIGW.0308":
        return RateLimitedError(message, retry_after=retry_after, **kwargs)
    if by_code is not None:
        kind, hint = by_code
        return kind(message, hint=hint, **kwargs)  # type: ignore[arg-type]
    if status < 400 and any(word in f"{code} {msg}".lower() for word in ("token", "auth")):
        return AuthenticationError(message, **kwargs)  # type: ignore[arg-type]  # an error in a 2xx body (Q33)
    if status >= 500:
        return ServerError(message, **kwargs)  # type: ignore[arg-type]
    return _BY_STATUS.get(status, ApiError)(message, **kwargs)  # type: ignore[arg-type]


def _json_object(response: httpx.Response) -> dict[str, object] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _error_fields(data: dict[str, object]) -> tuple[str | None, str | None]:
    """``error_code`` with ``error_msg`` or ``error_message`` (both spellings are documented), or an
    ``{"error": {"code", "message"}}`` object (IAM and gateways)."""
    inner = data.get("error")
    if isinstance(inner, dict):
        return _text(inner.get("code")), _text(inner.get("message"))
    return _text(data.get("error_code")), _text(data.get("error_msg") or data.get("error_message"))


def _request_id(response: httpx.Response, data: dict[str, object]) -> str | None:
    """The ``X-Request-Id`` header, else the body's ``request_id`` (some gateways put it only there)."""
    return response.headers.get("X-Request-Id") or _text(data.get("request_id"))


def _text(value: object) -> str | None:
    return str(value)[:500] if value not in (None, "") else None
