"""Query parameters of ``GET /v1/{project_id}/services``: validation, filtering, sorting and paging.

Choices where the spec is silent (quirks.md Q24-Q29), made once here and documented:

- ``workspace_id`` absent (or empty) means the default workspace ``"0"`` only (Q29), never "all".
- ``service_name`` is a case-insensitive substring match (the spec does not say exact or fuzzy; a substring
  match is the more forgiving reading, and lets a client resolve names by listing).
- ``service_id``, ``model_id``, ``infer_type``, ``status`` are exact matches. ``model_id`` matches when any
  ``config`` entry of the service deploys that model.
- ``status`` and ``infer_type`` take one value (Q27). A comma in the value, or the parameter given twice, is
  a 400: silently matching nothing would hide a client bug.
- ``tags`` is a comma-separated list of ``key=value`` or ``key`` items; a service matches when it carries
  all of them (keys and values are case-sensitive).
- An empty value (``status=``) counts as absent. Unknown parameters (e.g. the SDK's ``service_status``)
  are ignored, as web APIs commonly do.
- ``offset``/``limit`` must be decimal non-negative integers; numeric strings such as ``"0"`` are what a
  query string carries anyway (Q31). ``limit`` must be at least 1; no maximum is documented, none is set.
- Sorting defaults to ``publish_at`` ``desc``. Ties are broken by ``service_id`` (ascending for ``asc``,
  descending for ``desc``: the ``desc`` order is the exact reverse of ``asc``), so the order is total and
  pages never overlap or skip.
- ``offset`` is a page index (first record ``offset*limit``) in ``page`` mode and a record index in
  ``record`` mode (Q24); past the end the page is empty and ``total_count`` still counts every match.
- Servers that page otherwise (a cap on ``limit``, v2's "offset must be a multiple of limit", a result window)
  are quirks (``PagingRules``), off by default.
- With the ``ignore_sort_by`` quirk, ``sort_by`` is neither read nor checked: answers come in ``publish_at``
  order (``order`` is still honoured), as a server that only knows the SDK's sort keys would answer (Q12).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from services_bot.emulator.faults import without_hidden
from services_bot.emulator.fleet import DEFAULT_WORKSPACE, INFER_TYPES, SORT_KEYS, STATUSES, Fleet, Service
from starlette.datastructures import QueryParams

ORDERS = ("asc", "desc")
DEFAULT_LIMIT = 1000
_DIGITS = re.compile(r"[0-9]+")


class InvalidParameter(Exception):
    """A 400 answer: ``ModelArts.0101`` with a message naming the parameter, the value and what is valid."""

    code = "ModelArts.0101"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ListQuery:
    """A validated list query. Frozen and hashable: it is the key of the filtered-order cache."""

    service_id: str | None = None
    service_name: str | None = None
    model_id: str | None = None
    workspace_id: str = DEFAULT_WORKSPACE
    infer_type: str | None = None
    status: str | None = None
    tags: tuple[tuple[str, str | None], ...] = ()
    sort_by: str = "publish_at"
    order: str = "desc"
    offset: int = 0
    limit: int = DEFAULT_LIMIT

    def filter_key(self) -> tuple[object, ...]:
        """Everything that decides the ordered result, but not which page of it."""
        return (
            self.service_id,
            self.service_name.lower() if self.service_name else None,
            self.model_id,
            self.workspace_id,
            self.infer_type,
            self.status,
            self.tags,
            self.sort_by,
            self.order,
        )


def _single(params: QueryParams, name: str) -> str | None:
    values = params.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise InvalidParameter(f"Invalid parameter {name}: given {len(values)} times. Give one value.")
    return values[0] or None


def _last(params: QueryParams, name: str) -> str | None:
    values = params.getlist(name)
    return (values[-1] or None) if values else None


def _enum(params: QueryParams, name: str, valid: tuple[str, ...], multi_hint: bool) -> str | None:
    value = _single(params, name) if multi_hint else _last(params, name)
    if value is None:
        return None
    if value not in valid:
        hint = " Only one value is accepted." if multi_hint and "," in value else ""
        raise InvalidParameter(f"Invalid parameter {name}: '{value}'. Valid values: {', '.join(valid)}.{hint}")
    return value


def _natural(params: QueryParams, name: str, default: int, minimum: int) -> int:
    raw = _last(params, name)
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw):
        kind = "a positive integer" if minimum else "a non-negative integer"
        raise InvalidParameter(f"Invalid parameter {name}: '{raw}'. It must be {kind}.")
    value = int(raw)
    if value < minimum:
        raise InvalidParameter(f"Invalid parameter {name}: '{raw}'. It must be at least {minimum}.")
    return value


def _tags(raw: str | None) -> tuple[tuple[str, str | None], ...]:
    if raw is None:
        return ()
    items: list[tuple[str, str | None]] = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not key:
            raise InvalidParameter(f"Invalid parameter tags: '{raw}'. Use comma-separated items 'key=value' or 'key'.")
        items.append((key, value.strip() if sep else None))
    return tuple(sorted(set(items), key=lambda kv: (kv[0], kv[1] or "")))


def parse_list_query(params: QueryParams, *, ignore_sort_by: bool = False) -> ListQuery:
    """Validate the query string; raises ``InvalidParameter`` on the first bad parameter."""
    sort_by = None if ignore_sort_by else _enum(params, "sort_by", SORT_KEYS, multi_hint=False)
    return ListQuery(
        service_id=_last(params, "service_id"),
        service_name=_last(params, "service_name"),
        model_id=_last(params, "model_id"),
        workspace_id=_last(params, "workspace_id") or DEFAULT_WORKSPACE,
        infer_type=_enum(params, "infer_type", INFER_TYPES, multi_hint=True),
        status=_enum(params, "status", STATUSES, multi_hint=True),
        tags=_tags(_last(params, "tags")),
        sort_by=sort_by or "publish_at",
        order=_enum(params, "order", ORDERS, multi_hint=False) or "desc",
        offset=_natural(params, "offset", 0, 0),
        limit=_natural(params, "limit", DEFAULT_LIMIT, 1),
    )


def _predicate(q: ListQuery) -> Callable[[Service], bool] | None:
    checks: list[Callable[[Service], bool]] = []
    if q.service_id is not None:
        sid = q.service_id
        checks.append(lambda s: s.service_id == sid)
    if q.status is not None:
        st = q.status
        checks.append(lambda s: s.status == st)
    if q.infer_type is not None:
        it = q.infer_type
        checks.append(lambda s: s.infer_type == it)
    if q.service_name is not None:
        needle = q.service_name.lower()
        checks.append(lambda s: needle in s.name_lower)
    if q.model_id is not None:
        mid = q.model_id
        checks.append(lambda s: any(m[0] == mid for m in s.models))
    if q.tags:
        wanted = q.tags

        def has_tags(s: Service) -> bool:
            t = s.tags
            return all(k in t and (v is None or t[k] == v) for k, v in wanted)

        checks.append(has_tags)
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]
    return lambda s: all(c(s) for c in checks)


@dataclass(frozen=True)
class PagingRules:
    """How a server other than the documented v1 one pages (the paging quirks): see ``run_list_query``."""

    offset_mode: str = "page"
    max_limit: int | None = None
    offset_multiple_of_limit: bool = False
    offset_past_end_400: bool = False
    result_window: int | None = None

    def served_limit(self, q: ListQuery) -> int:
        return min(q.limit, self.max_limit) if self.max_limit else q.limit


def page_start(q: ListQuery, rules: PagingRules) -> int:
    """The index of the page's first record among the matches (Q24), pages being of the served length."""
    return q.offset * rules.served_limit(q) if rules.offset_mode == "page" else q.offset


def run_list_query(
    fleet: Fleet, q: ListQuery, rules: PagingRules, hidden_share: float = 0.0
) -> tuple[int, list[Service]]:
    """(total_count, the services of the requested page); ``InvalidParameter`` where ``rules`` forbid the page.

    ``max_limit`` serves at most that many rows whatever ``limit`` says, silently, and pages by the rows served
    (a page index counts pages of the served length); ``offset_multiple_of_limit`` rejects an ``offset`` that
    is not a multiple of ``limit`` (v2's rule); ``offset_past_end_400`` rejects a page starting past the last
    match; ``result_window`` never serves rows past that index while ``total_count`` still counts them all.
    ``hidden_share`` of the matches are left out of both, as if they did not exist (the ``hide_fraction`` fault).
    """
    if rules.offset_multiple_of_limit and q.offset % q.limit:
        raise InvalidParameter(f"Invalid parameter offset: '{q.offset}'. It must be a multiple of limit ({q.limit}).")
    matches = fleet.select(q.filter_key(), q.sort_by, q.order == "desc", _predicate(q), q.workspace_id)
    matches = without_hidden(matches, hidden_share)
    start = page_start(q, rules)
    if rules.offset_past_end_400 and start > 0 and start >= len(matches):
        raise InvalidParameter(
            f"Invalid parameter offset: '{q.offset}'. It is past the last of {len(matches)} matches."
        )
    end = start + rules.served_limit(q)
    if rules.result_window is not None:
        end = min(end, rules.result_window)
    return len(matches), matches[start:end]
