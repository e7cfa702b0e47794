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

from core.auth import Credentials
from core.config import Target
from core.errors import (
    ApiError,
    ApiNotFoundError,
    AuthenticationError,
    BadRequestError,
    ForbiddenError,
    MalformedResponseError,
    QueryError,
    RateLimitedError,
    ServerError,
    UnavailableError,
)
from core.metrics import API_LATENCY, API_REQUESTS
from core.models import LegacyServiceList, Service, ServicePage
from core.retry import RETRYABLE_STATUSES, RetryPolicy, parse_retry_after
from core.signing import wire_url

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

    def query(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v is not None}


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
    """One target's API. Share one ``httpx.AsyncClient`` between targets; each has its own limits."""

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
        self.requests_sent = 0

    @property
    def _base(self) -> str:
        return f"{self.target.endpoint}/v1/{self.target.project_id}"

    # -- endpoints ---------------------------------------------------------------------------------

    async def list_page(self, params: ListParams, *, offset: int = 0, limit: int | None = None) -> ServicePage:
        """One page of ``GET /v1/{project_id}/services``."""
        query = {**params.query(), "offset": str(offset), "limit": str(limit or self.page_size)}
        return await self._request("GET", f"{self._base}/services", query, _parse(ServicePage, self._context("list")))

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

    async def list_all(self, params: ListParams) -> list[Service]:
        """Every service matching ``params``, each exactly once, whichever way the server reads ``offset``
        (all of ``iter_pages`` in one list)."""
        services: list[Service] = []
        async with aclosing(self.iter_pages(params)) as pages:
            async for rows in pages:
                services += rows
        return services

    async def iter_pages(self, params: ListParams) -> AsyncIterator[list[Service]]:
        """Every service matching ``params``, each exactly once, one page's new rows at a time and in page
        order, so a caller that keeps less than the parsed rows never holds the whole listing.

        The first page gives ``total_count``. If more pages are needed and the offset reading is not yet
        known, the second request asks for ``offset=1``: a server counting records answers with the first
        page's second row, one counting pages with rows not seen yet. The remaining pages then go out
        concurrently, at most ``concurrency`` pages ahead of the one being yielded. Rows are de-duplicated by
        id, so a shift between pages cannot double a service; a page with no new row yields nothing.
        Use ``contextlib.aclosing`` when you may stop early: closing cancels the requests still out.
        """
        size = self.page_size
        seen: set[str] = set()
        first = await self.list_page(params, offset=0, limit=size)
        if rows := _fresh(seen, first):
            yield rows
        total = first.total_count
        if len(first.services) < size or (total is not None and len(seen) >= total):
            return
        probed = False
        if self.offset_mode is None:
            second = await self.list_page(params, offset=1, limit=size)
            self.offset_mode = _detect_offset_mode(first, second)
            log.info("offset mode detected", extra={"target": self.target.name, "mode": self.offset_mode})
            if self.offset_mode == "page":
                probed = True
                if rows := _fresh(seen, second):
                    yield rows
            del second
        del first
        start = 2 if probed else 1
        if total is None:  # no total_count: nothing to fan out over, read on until a short page
            async for rows in self._read_on(params, seen, None, start):
                yield rows
            return
        pages = -(-total // size)
        indexes = iter(range(start, pages))
        ahead: deque[asyncio.Task[ServicePage]] = deque()

        def fetch_next(count: int) -> None:
            for index in itertools.islice(indexes, count):
                ahead.append(asyncio.create_task(self.list_page(params, offset=self._offset(index), limit=size)))

        try:
            fetch_next(self.concurrency)
            while ahead:
                page = await ahead.popleft()
                fetch_next(1)
                if rows := _fresh(seen, page):
                    yield rows
                del page
        finally:
            for task in ahead:
                task.cancel()
            if ahead:
                await asyncio.gather(*ahead, return_exceptions=True)
        if len(seen) < total:
            async for rows in self._read_on(params, seen, total, pages):
                yield rows

    def _offset(self, page_index: int) -> int:
        return page_index if self.offset_mode == "page" else page_index * self.page_size

    async def _read_on(
        self, params: ListParams, seen: set[str], total: int | None, start: int
    ) -> AsyncIterator[list[Service]]:
        """Page sequentially from ``start`` until a short page (or ``total`` reached): rows pushed past the
        pages we asked for by services added meanwhile, or a server that sends no ``total_count``."""
        for index in range(start, start + MAX_PAGES):
            page = await self.list_page(params, offset=self._offset(index), limit=self.page_size)
            if rows := _fresh(seen, page):
                yield rows
            if len(page.services) < self.page_size or (total is not None and len(seen) >= total):
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
        error = _classify(response)
        if response.status_code == 401:
            return _Unauthorized(error)
        if response.status_code in RETRYABLE_STATUSES:
            return _Retryable(error, parse_retry_after(response.headers.get("Retry-After")))
        return _Retryable(error, None, final=True)


def _route(path: str) -> str:
    """A bounded label for a request path: the three documented endpoints."""
    if path.endswith("/infer-services"):
        return "legacy"
    if path.endswith("/services"):
        return "list"
    return "show" if "/services/" in path else "other"


@dataclass
class _Retryable:
    """A failed attempt: ``final`` when retrying cannot help (4xx other than 429)."""

    error: ApiError
    retry_after: float | None
    final: bool = False


@dataclass
class _Unauthorized:
    error: ApiError


def _fresh(seen: set[str], page: ServicePage) -> list[Service]:
    """The page's rows whose id is not in ``seen`` yet (first occurrence wins); adds their ids to it."""
    rows = []
    for service in page.services:
        if service.service_id not in seen:
            seen.add(service.service_id)
            rows.append(service)
    return rows


def _detect_offset_mode(first: ServicePage, second: ServicePage) -> OffsetMode:
    first_ids = [s.service_id for s in first.services]
    second_ids = [s.service_id for s in second.services]
    if not second_ids:
        return "page"
    if second_ids[0] == first_ids[1]:
        return "record"
    if second_ids[0] == first_ids[0]:
        raise MalformedResponseError(
            "The API ignores the offset parameter: asking for a later page returned the first one again.",
            hint="Paging cannot work against this endpoint; check MODELARTS_ENDPOINT.",
        )
    overlap = len(set(first_ids) & set(second_ids))
    return "record" if overlap > len(second_ids) // 2 else "page"


def _parse(model: type[T], context: dict[str, str] | None = None) -> Callable[[httpx.Response], T]:
    def parse(response: httpx.Response) -> T:
        try:
            return model.model_validate_json(response.content, context=context)  # type: ignore[attr-defined,no-any-return]
        except ValidationError as exc:
            raise MalformedResponseError(
                f"ModelArts answered HTTP {response.status_code} with a body that is not the documented "
                f"JSON ({_first_problem(exc)}).",
                status=response.status_code,
                request_id=response.headers.get("X-Request-Id"),
            ) from None

    return parse


def _parse_legacy(response: httpx.Response) -> LegacyServiceList:
    """The legacy API may say ``is_success: false`` with HTTP 200 (Q33): that is an error too."""
    envelope = _parse(LegacyServiceList)(response)
    if envelope.is_success is False or envelope.error_code:
        message = envelope.error_msg or "The legacy API reported a failure."
        text = f"{envelope.error_code or ''} {message}".lower()
        kind = AuthenticationError if "token" in text or "auth" in text else ApiError
        raise kind(
            f"ModelArts refused the request: {message}",
            status=response.status_code,
            error_code=envelope.error_code,
            error_msg=envelope.error_msg,
            request_id=response.headers.get("X-Request-Id"),
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


def _classify(response: httpx.Response) -> ApiError:
    """HTTP status first, then the body's ``error_code``/``error_msg`` when it has them (Q33)."""
    status = response.status_code
    code, msg = _error_fields(response)
    request_id = response.headers.get("X-Request-Id")
    what = f"ModelArts answered HTTP {status}" + (f": {msg}" if msg else "")
    kwargs: dict[str, object] = {"status": status, "error_code": code, "error_msg": msg, "request_id": request_id}
    if status == 429:
        return RateLimitedError(what, retry_after=parse_retry_after(response.headers.get("Retry-After")), **kwargs)
    if status >= 500:
        return ServerError(what, **kwargs)  # type: ignore[arg-type]
    return _BY_STATUS.get(status, ApiError)(what, **kwargs)  # type: ignore[arg-type]


def _error_fields(response: httpx.Response) -> tuple[str | None, str | None]:
    try:
        data = response.json()
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    if isinstance(data.get("error"), dict):
        inner = data["error"]
        return _text(inner.get("code")), _text(inner.get("message"))
    return _text(data.get("error_code")), _text(data.get("error_msg"))


def _text(value: object) -> str | None:
    return str(value)[:500] if value not in (None, "") else None
