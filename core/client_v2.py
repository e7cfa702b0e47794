"""Async client of the v2 services API (``/v2/{project_id}/services``) for one target.

A subclass of the v1 client: credentials, retries, typed errors, concurrent pages and de-duplication are the
v1 client's own. What differs is said here once: the query parameters (``sort_key``/``sort_dir``, ``name``,
``id``, ``type``, ``asset_id``, upper-case values), the envelope (``data``/``current``/``size``/``pages``/
``total``), the paging rules (``limit`` 1..500, ``offset`` a record offset that is a multiple of ``limit``, so
the v1 client's offset probe is never needed) and the shapes, mapped onto ``Service`` by ``core.models_v2``.

A v2 answer that breaks its own paging rules (a page shorter than ``limit`` before ``total``, another page than
the one asked for, a ``pages`` that does not fit ``total``) ends the listing as incomplete, with the rows that
arrived, exactly as a v1 listing that stops short of its ``total_count``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import httpx
from pydantic import ValidationError
from services_bot.core.client import (
    ListParams,
    ModelArtsClient,
    _error_in_body,
    _unreadable,
    validate_service_id,
)
from services_bot.core.errors import IncompleteListingError
from services_bot.core.models import ListedPage, Service, ServicePage, share_fields_sets
from services_bot.core.models_v2 import (
    STATUS_TO_V2,
    TYPE_TO_V2,
    V2Page,
    V2ServiceDetail,
    detail_to_service,
    row_to_service,
)

MAX_V2_LIMIT = 500
"""The most rows the v2 list serves per page (``limit`` in [1, 500])."""

_SORT_KEYS = {"transition_at": "update_at", "publish_at": "create_at", "update_time": "update_at"}
"""v1 ``sort_by`` → v2 ``sort_key``; v2 cannot sort by name, so a name sort is not sent (it is sorted here)."""


def v2_query(params: ListParams) -> dict[str, str]:
    """The v1-shaped filters as v2 query parameters. A filter v2 has no value for returns None from
    ``accepts`` beforehand; everything sent here is a documented v2 parameter."""
    query: dict[str, str] = {}
    if params.service_id:
        query["id"] = params.service_id
    if params.service_name:
        query["name"] = params.service_name
    if params.workspace_id:
        query["workspace_id"] = params.workspace_id
    if params.status:
        query["status"] = STATUS_TO_V2.get(params.status, params.status.upper())
    if params.infer_type:
        query["type"] = TYPE_TO_V2.get(params.infer_type, params.infer_type.upper())
    if params.model_id:
        query["asset_id"] = params.model_id  # "services that use this asset (an asset or model id)"
    if params.tags:
        query["tags"] = params.tags
    if params.pool_id:
        query["pool_id"] = params.pool_id
    if params.sort_by in _SORT_KEYS:
        query["sort_key"] = _SORT_KEYS[params.sort_by]
        if params.order:
            query["sort_dir"] = params.order.upper()
    return query


def accepts(params: ListParams) -> bool:
    """Whether v2 can hold any service these filters match: a v1-only status (``pending``, ``waiting``,
    ``finished``) or type (``batch``, ``edge``) has no v2 value, so v2 is not asked at all."""
    status_ok = params.status is None or params.status in STATUS_TO_V2
    type_ok = params.infer_type is None or params.infer_type in TYPE_TO_V2
    return status_ok and type_ok


class ModelArtsV2Client(ModelArtsClient):
    """One target's v2 API; the same interface as ``ModelArtsClient``, so the watcher and the query layer use
    either through ``core.generations.TargetClient``."""

    generation = "v2"

    def __init__(self, *args: object, page_size: int = MAX_V2_LIMIT, **kwargs: object) -> None:
        super().__init__(*args, page_size=min(page_size, MAX_V2_LIMIT), **kwargs)  # type: ignore[arg-type]
        self.offset_mode = "record"  # documented: a record offset, a multiple of limit

    async def list_page(self, params: ListParams, *, offset: int = 0, limit: int | None = None) -> ListedPage:
        """One page of ``GET /v2/{project_id}/services``: ``ListedService`` rows, or ``Service`` rows with
        ``params.every_field``."""
        asked = min(limit or self.page_size, MAX_V2_LIMIT)
        if offset % asked:
            raise ValueError(f"v2 offsets are multiples of limit; got offset {offset} with limit {asked}")
        query = {**v2_query(params), "offset": str(offset), "limit": str(asked)}
        parse = _parse_v2_page(self._context("list"), offset, asked, every_field=params.every_field)
        return await self._request("GET", f"{self._base}/services", query, parse)

    async def get_service(self, service_id: str) -> Service:
        """``GET /v2/{project_id}/services/{service_id}``; unknown ids raise ``ApiNotFoundError``."""
        service_id = validate_service_id(service_id)
        context = self._context("details")

        def parse(response: httpx.Response) -> Service:
            try:
                detail = V2ServiceDetail.model_validate_json(response.content)
            except ValidationError as exc:
                raise _unreadable(response, exc) from None
            return detail_to_service(detail, context)

        return await self._request("GET", f"{self._base}/services/{service_id}", {}, parse)

    async def list_legacy(self, workspace_id: str | None = None) -> list[Service]:
        raise NotImplementedError("the legacy infer-services list is a v1 API")


def _parse_v2_page(
    context: dict[str, str], offset: int, limit: int, *, every_field: bool = False
) -> Callable[[httpx.Response], ListedPage]:
    def parse(response: httpx.Response) -> ListedPage:
        try:
            page = V2Page.model_validate_json(response.content)
        except ValidationError as exc:
            raise _unreadable(response, exc) from None
        envelope = page.__pydantic_extra__ or {}
        if envelope.get("error_code"):
            raise _error_in_body(response, envelope)
        problem = paging_problem(page, offset, limit)
        if problem:
            raise IncompleteListingError(
                f"ModelArts (v2) broke its own paging rules: {problem}; the answer is incomplete.",
                served=offset + len(page.data),
                total=page.total,
            )
        rows = [row_to_service(row, context, every_field=every_field) for row in page.data]
        share_fields_sets(rows)
        kind = ServicePage if every_field else ListedPage
        return kind.model_construct(total_count=page.total, count=len(rows), services=rows)

    return parse


def paging_problem(page: V2Page, offset: int, limit: int) -> str | None:
    """What is wrong with a v2 page against the rules it documents, or None. ``size`` is not checked: it may
    be the page length or the page size (L1)."""
    asked_page = offset // limit
    served = len(page.data)
    if served > limit:
        return f"a page of {served} rows where at most {limit} were asked"
    if page.current is not None and page.current != asked_page:
        return f"page {page.current} came back where page {asked_page} was asked"
    needed = math.ceil(page.total / limit) if page.total > 0 else 0
    if page.pages is not None and page.total > 0 and page.pages != needed:
        return f"it says {page.pages} pages for {page.total} services at {limit} a page ({needed} needed)"
    if page.pages is not None and served and asked_page >= max(page.pages, 1):
        return f"page {asked_page} has rows beyond the {page.pages} pages announced"
    if served < limit and offset + served < page.total:
        return f"page {asked_page} has {served} rows of {limit} while {page.total} services exist"
    return None
