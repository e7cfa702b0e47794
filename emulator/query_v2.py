"""Query parameters of ``GET /v2/{project_id}/services``: validation, filters, sorting and paging.

The documented rules (v2-list-services.md) are enforced, each broken one a 400 ``ModelArts.0101`` naming the
parameter and what is valid: ``limit`` is 1..500 (default 10); ``offset`` is a record offset that must be a
whole multiple of ``limit`` (default 0); ``sort_key`` is ``create_at``, ``update_at`` or both joined by a
comma (compared in turn; default ``update_at``); ``sort_dir`` is ``ASC`` or ``DESC`` in upper case (default
``DESC``); ``status``, ``type`` and ``auth_type`` take one of their documented upper-case values (``status``
also ``INIT``, which details show); ``tags`` is ``key1|value1,key2|value2`` with the documented format rules.

Choices where the page is silent, made once here:

- ``workspace_id`` absent means the default workspace ``"0"`` only, as v1 documents (L6 leaves v2 open).
- ``name`` and ``description`` are case-insensitive substring matches (``description`` is documented
  fuzzy; for ``name`` the match is undocumented, L7). ``id``, ``pool_id``, ``pool_name``, ``user_name``,
  ``asset_id`` (a model of any deployment) and ``node_ip`` (a node running one of the service's pods) are
  exact. A ``tags`` group without ``|value`` matches the key with any value.
- An empty value counts as absent; a parameter given twice takes its last value; unknown ones are ignored.
- An ``offset`` past the last match answers an empty ``data`` with ``current`` = offset / limit.
- Ties in the sort are broken by ``id`` (``DESC`` is the exact reverse of ``ASC``), so pages never overlap.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from services_bot.emulator import v2_fields
from services_bot.emulator.faults import without_hidden
from services_bot.emulator.fleet import DEFAULT_WORKSPACE, Fleet, Service
from services_bot.emulator.generations import V2_STATUSES
from services_bot.emulator.query import InvalidParameter
from starlette.datastructures import QueryParams

DEFAULT_LIMIT = 10
MAX_LIMIT = 500
SORT_KEYS = ("create_at", "update_at")
SORT_DIRS = ("ASC", "DESC")
MAX_NAME = 128  # the list's documented name length (details say 64)
MAX_VALUE = 256  # any other filter value: longer is a client bug, answered before any work
_DIGITS = re.compile(r"[0-9]{1,18}")


@dataclass(frozen=True)
class V2Query:
    """A validated v2 list query. Frozen and hashable: its ``filter_key`` keys the filtered-order cache."""

    id: str | None = None
    pool_id: str | None = None
    pool_name: str | None = None
    sort_key: str = "update_at"
    status: str | None = None
    name: str | None = None
    auth_type: str | None = None
    type: str | None = None
    description: str | None = None
    workspace_id: str = DEFAULT_WORKSPACE
    user_name: str | None = None
    tags: tuple[tuple[str, str | None], ...] = ()
    asset_id: str | None = None
    node_ip: str | None = None
    sort_dir: str = "DESC"
    offset: int = 0
    limit: int = DEFAULT_LIMIT

    def filter_key(self) -> tuple[object, ...]:
        """Everything that decides the ordered result, but not which page of it."""
        return (
            "v2",
            self.id,
            self.pool_id,
            self.pool_name,
            self.sort_key,
            self.status,
            self.name.lower() if self.name else None,
            self.auth_type,
            self.type,
            self.description.lower() if self.description else None,
            self.workspace_id,
            self.user_name,
            self.tags,
            self.asset_id,
            self.node_ip,
            self.sort_dir,
        )


def _value(params: QueryParams, name: str, limit: int = MAX_VALUE) -> str | None:
    values = params.getlist(name)
    value = (values[-1] or None) if values else None
    if value is not None and len(value) > limit:
        raise InvalidParameter(f"Invalid parameter {name}: {len(value)} characters. It must be at most {limit}.")
    return value


def _enum(params: QueryParams, name: str, valid: tuple[str, ...]) -> str | None:
    value = _value(params, name)
    if value is not None and value not in valid:
        raise InvalidParameter(f"Invalid parameter {name}: '{value}'. Valid values: {', '.join(valid)}.")
    return value


def _int(params: QueryParams, name: str, default: int) -> int:
    raw = _value(params, name)
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw):
        raise InvalidParameter(f"Invalid parameter {name}: '{raw[:32]}'. It must be a non-negative integer.")
    return int(raw)


def _sort_key(raw: str | None) -> str:
    if raw is None:
        return "update_at"
    keys: list[str] = []
    for key in raw.split(","):
        if key not in SORT_KEYS:
            raise InvalidParameter(
                f"Invalid parameter sort_key: '{raw}'. Valid values: {', '.join(SORT_KEYS)}, or both joined by a comma."
            )
        if key not in keys:
            keys.append(key)
    return ",".join(keys)


def _tags(raw: str | None) -> tuple[tuple[str, str | None], ...]:
    """``key1|value1,key2|value2``: no leading ``,`` or ``|``, no trailing ``,``, no doubled ``|`` or ``,``."""
    if raw is None:
        return ()
    if raw[0] in ",|" or raw.endswith(",") or "||" in raw or ",," in raw:
        raise InvalidParameter(
            f"Invalid parameter tags: '{raw}'. Use 'key1|value1,key2|value2' "
            "(no leading ',' or '|', no trailing ',', no doubled '|' or ',')."
        )
    items: set[tuple[str, str | None]] = set()
    for group in raw.split(","):
        key, sep, value = group.partition("|")
        if not key or "|" in value:
            raise InvalidParameter(f"Invalid parameter tags: '{raw}'. Each group is 'key|value'.")
        items.add((key, value if sep else None))
    return tuple(sorted(items, key=lambda kv: (kv[0], kv[1] or "")))


def parse_v2_query(params: QueryParams) -> V2Query:
    """Validate the query string; raises ``InvalidParameter`` on the first bad parameter."""
    limit = _int(params, "limit", DEFAULT_LIMIT)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidParameter(f"Invalid parameter limit: '{limit}'. It must be from 1 to {MAX_LIMIT}.")
    offset = _int(params, "offset", 0)
    if offset % limit:
        raise InvalidParameter(
            f"Invalid parameter offset: '{offset}'. It must be a whole multiple of limit ({limit}): "
            f"page n starts at offset n*{limit}."
        )
    return V2Query(
        id=_value(params, "id"),
        pool_id=_value(params, "pool_id"),
        pool_name=_value(params, "pool_name"),
        sort_key=_sort_key(_value(params, "sort_key")),
        status=_enum(params, "status", V2_STATUSES),
        name=_value(params, "name", MAX_NAME),
        auth_type=_enum(params, "auth_type", v2_fields.AUTH_TYPES),
        type=_enum(params, "type", v2_fields.TYPES),
        description=_value(params, "description"),
        workspace_id=_value(params, "workspace_id") or DEFAULT_WORKSPACE,
        user_name=_value(params, "user_name"),
        tags=_tags(_value(params, "tags", 4 * MAX_VALUE)),
        asset_id=_value(params, "asset_id"),
        node_ip=_value(params, "node_ip"),
        sort_dir=_enum(params, "sort_dir", SORT_DIRS) or "DESC",
        offset=offset,
        limit=limit,
    )


def _predicate(q: V2Query) -> Callable[[Service], bool] | None:
    checks: list[Callable[[Service], bool]] = []
    if q.id is not None:
        sid = q.id
        checks.append(lambda s: s.service_id == sid)
    if q.status is not None:
        st = q.status
        checks.append(lambda s: s.v2_status == st)
    if q.type is not None:
        t = q.type
        checks.append(lambda s: v2_fields.v2_type(s) == t)
    if q.auth_type is not None:
        a = q.auth_type
        checks.append(lambda s: v2_fields.auth_type(s) == a)
    if q.pool_id is not None:
        pid = q.pool_id
        checks.append(lambda s: v2_fields.pool(s)[0] == pid)
    if q.pool_name is not None:
        pname = q.pool_name
        checks.append(lambda s: v2_fields.pool(s)[1] == pname)
    if q.name is not None:
        needle = q.name.lower()
        checks.append(lambda s: needle in s.name_lower)
    if q.description is not None:
        fuzzy = q.description.lower()
        checks.append(lambda s: fuzzy in s.description.lower())
    if q.user_name is not None:
        user = q.user_name
        checks.append(lambda s: v2_fields.user_name(s) == user)
    if q.asset_id is not None:
        asset = q.asset_id
        checks.append(lambda s: any(m[0] == asset for m in s.models))
    if q.node_ip is not None:
        ip = q.node_ip
        checks.append(lambda s: v2_fields.has_pods(s) and v2_fields.node_ip(s) == ip)
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
class V2Page:
    """One answered page: the matching total, the page's services and the envelope's page numbers."""

    total: int
    services: list[Service]
    current: int
    pages: int


def run_v2_query(fleet: Fleet, q: V2Query, hidden_share: float = 0.0) -> V2Page:
    """The requested page of the v2 services matching ``q``; ``hidden_share`` as in the v1 list."""
    matches = fleet.select(
        q.filter_key(), q.sort_key, q.sort_dir == "DESC", _predicate(q), q.workspace_id, generation="v2"
    )
    matches = without_hidden(matches, hidden_share)
    total = len(matches)
    return V2Page(total, matches[q.offset : q.offset + q.limit], q.offset // q.limit, -(-total // q.limit))
