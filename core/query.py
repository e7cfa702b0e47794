"""The query layer: one ``ServiceQuery`` in, answers out, over one or more targets.

It decides what the API filters and what we filter here: the API takes one status, one type, a workspace,
a model id and tags; names (substring or glob), several statuses and sorting across targets are done
locally. Listings are cached briefly and shared between concurrent identical requests, so paging through
an answer in Slack does not list the fleet again.

Where a watcher runs (``serve``), a ``ReadModel`` (``core.read_model``) answers instead: list, summary, ``show``
by name and paging are read from the watcher's cards of every service, brought up to now by its incremental poll
first, so an answer costs that poll (one small request) plus the details of the failed services it shows, at
any fleet size. Queries the cards cannot answer (``model:``, ``tags:``, a workspace the target does not list) and
targets the watcher has not read yet take the live listing, as ``ask`` and stdio ``mcp`` always do.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import functools
import hashlib
import heapq
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, Literal, NamedTuple, Protocol

from pydantic import BaseModel, Field, SerializeAsAny, ValidationError, ValidationInfo, field_validator
from services_bot.core.access import EVERYTHING, Scope
from services_bot.core.client import ListParams, validate_service_id
from services_bot.core.errors import (
    AmbiguousServiceError,
    ApiError,
    ApiNotFoundError,
    IncompleteListingError,
    QueryError,
    ServiceNotFoundError,
    ServicesBotError,
)
from services_bot.core.generations import TargetClient
from services_bot.core.glob import compile_glob
from services_bot.core.limits import (
    MAX_CURSOR_CHARS,
    MAX_ID_CHARS,
    MAX_PATTERN_CHARS,
    MAX_SERVICE_REF_CHARS,
    MAX_TAGS_CHARS,
    check_length,
    preview,
)
from services_bot.core.models import (
    FAILED_STATUSES,
    KNOWN_INFER_TYPES,
    KNOWN_STATUSES,
    UNHEALTHY_STATUSES,
    ListedService,
    Service,
)
from services_bot.core.read_model import ServiceCard
from services_bot.core.suggest import closest, did_you_mean
from services_bot.core.ttl_cache import TtlCache

log = logging.getLogger("services_bot.query")

SortKey = Literal["changed", "published", "name"]
SORT_ALIASES: dict[str, SortKey] = {
    "changed": "changed",
    "transition_at": "changed",
    "updated": "changed",
    "published": "published",
    "publish_at": "published",
    "name": "name",
    "service_name": "name",
}
STATUS_GROUPS: dict[str, frozenset[str]] = {"unhealthy": UNHEALTHY_STATUSES, "failed": FAILED_STATUSES}
"""Words that stand for several statuses: ``failed`` takes v2's ``error`` with it (README, status mapping)."""
MAX_LIMIT = 1000
POOL_V1_NOTE = "pool: filters v2 services only: v1 listings carry no pool, so v1 services are left out"
_UUID_LIKE = re.compile(
    r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32})$"
)
FIELD_LIMITS: dict[str, tuple[str, int, str]] = {
    "name": ("name filter", MAX_PATTERN_CHARS, "Shorten it, e.g. name:ocr-* (a substring, or a glob with * ? [ ])."),
    "workspace_id": ("workspace id", MAX_ID_CHARS, "Give one workspace id, e.g. ws:0."),
    "model_id": ("model id", MAX_ID_CHARS, "Give one model id."),
    "tags": ("tag filter", MAX_TAGS_CHARS, "Give fewer or shorter tags."),
    "pool": ("pool id", MAX_ID_CHARS, "Give one dedicated pool (cluster) id."),
    "target": ("target name", MAX_ID_CHARS, "Give the name of one configured target."),
    "cursor": ("cursor", MAX_CURSOR_CHARS, "Pass next_cursor from the previous answer unchanged, or drop it."),
}
"""Per string field of ``ServiceQuery``: what to call it in an error, its most characters, and the fix."""


def parse_statuses(words: Iterable[str]) -> frozenset[str]:
    """Statuses and groups (``unhealthy``) → a set of known statuses; a typo gets a suggestion."""
    result: set[str] = set()
    for raw in words:
        word = raw.strip().lower()
        if not word:
            continue
        if word in STATUS_GROUPS:
            result |= STATUS_GROUPS[word]
        elif word in KNOWN_STATUSES:
            result.add(word)
        else:
            guess = did_you_mean(word, [*KNOWN_STATUSES, *STATUS_GROUPS])
            raise QueryError(
                f"Unknown status '{preview(raw)}'." + (f" Did you mean '{guess}'?" if guess else ""),
                hint="Valid statuses: " + ", ".join(KNOWN_STATUSES) + ", or unhealthy (failed, error, concerning).",
                suggestion=guess,
            )
    return frozenset(result)


class ServiceQuery(BaseModel):
    """What to list. Every surface (Slack grammar, CLI, MCP arguments) builds one of these."""

    statuses: frozenset[str] = Field(default=frozenset(), description="Any of these statuses; empty = all.")
    name: str | None = Field(None, description="Name substring, or a glob when it has * ? or [ ].")
    infer_type: str | None = Field(None, description="real-time, batch, edge or async-real-time.")
    workspace_id: str | None = Field(None, description="Only this workspace (default: the target's).")
    model_id: str | None = Field(None, description="Only services deploying this model (filtered by the API).")
    tags: str | None = Field(None, description="Tag filter, passed to the API verbatim.")
    pool: str | None = Field(None, description="Only services in this dedicated pool (filtered by the v2 API).")
    target: str | None = Field(None, description="Only this target (project/region) by name.")
    sort: SortKey = Field("changed", description="changed (status change time), published or name.")
    order: Literal["asc", "desc"] | None = Field(None, description="Default: desc for times, asc for names.")
    limit: int = Field(20, ge=1, le=MAX_LIMIT, description="Services per answer page.")
    cursor: str | None = Field(None, description="Opaque position from a previous answer's next_cursor.")

    @classmethod
    def build(cls, **fields: Any) -> ServiceQuery:
        """Validate with errors a person can act on, instead of pydantic's report."""
        try:
            return cls.model_validate({k: v for k, v in fields.items() if v is not None})
        except ValidationError as exc:
            raise _query_error(exc) from None

    @field_validator("statuses", mode="before")
    @classmethod
    def _statuses(cls, value: Any) -> frozenset[str]:
        if isinstance(value, str):
            value = value.split(",")
        return parse_statuses(value or [])

    @field_validator("infer_type")
    @classmethod
    def _infer_type(cls, value: str | None) -> str | None:
        if value is None:
            return None
        lowered = value.strip().lower()
        if lowered in KNOWN_INFER_TYPES:
            return lowered
        guess = did_you_mean(lowered, KNOWN_INFER_TYPES)
        raise QueryError(
            f"Unknown service type '{preview(value)}'." + (f" Did you mean '{guess}'?" if guess else ""),
            hint="Valid types: " + ", ".join(KNOWN_INFER_TYPES) + ".",
            suggestion=guess,
        )

    @field_validator("sort", mode="before")
    @classmethod
    def _sort(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in SORT_ALIASES:
            return SORT_ALIASES[value.strip().lower()]
        guess = did_you_mean(str(value), ["changed", "published", "name"])
        raise QueryError(
            f"Cannot sort by '{preview(str(value))}'." + (f" Did you mean '{guess}'?" if guess else ""),
            hint="Sort by changed, published or name.",
            suggestion=guess,
        )

    @field_validator(*FIELD_LIMITS, mode="before")
    @classmethod
    def _bounded(cls, value: Any, info: ValidationInfo) -> Any:
        """Before anything else looks at it: an oversized value must not reach a matcher, a URL or an echo."""
        if isinstance(value, str):
            what, limit, hint = FIELD_LIMITS[info.field_name or ""]
            check_length(what, value, limit, hint=hint)
        return value

    @field_validator("name", "workspace_id", "model_id", "tags", "target", "pool")
    @classmethod
    def _non_blank(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise QueryError("A filter value is empty.", hint="Write it as key:value, e.g. name:ocr-*.")
        return value.strip()

    @property
    def effective_order(self) -> Literal["asc", "desc"]:
        return self.order or ("asc" if self.sort == "name" else "desc")

    def fingerprint(self) -> str:
        """Identifies the filters (not the page), so a cursor cannot be replayed on another query."""
        data = self.model_dump(mode="json", exclude={"cursor", "limit"})
        data["statuses"] = sorted(data["statuses"])
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]

    def describe(self) -> str:
        """The filter in words, for answer headers ("failed or concerning, type real-time, name ocr-*")."""
        parts = []
        if self.statuses:
            # "failed" stands for failed and error (STATUS_GROUPS), so it is said once
            shown = self.statuses - {"error"} if self.statuses >= FAILED_STATUSES else self.statuses
            parts.append(" or ".join(sorted(shown)))
        for label, value in (
            ("name", self.name),
            ("type", self.infer_type),
            ("workspace", self.workspace_id),
            ("model", self.model_id),
            ("tags", self.tags),
            ("pool", self.pool),
            ("target", self.target),
        ):
            if value:
                parts.append(f"{label} {value}")
        return ", ".join(parts) or "all services"


def _query_error(exc: ValidationError) -> QueryError:
    """Validators raise ``QueryError`` directly (pydantic passes it through); this covers type errors."""
    error = exc.errors()[0]
    field = ".".join(str(p) for p in error["loc"]) or "query"
    if field == "limit":
        return QueryError(f"limit must be between 1 and {MAX_LIMIT}.", hint="e.g. limit:50.")
    return QueryError(f"Invalid {field}: {error['msg']}.")


class _Listing(NamedTuple):
    """One listing as the cache keeps it: the rows, and the error when it ended short of its total."""

    services: list[ListedService]
    incomplete: IncompleteListingError | None = None


class _Gathered(NamedTuple):
    """Several listings merged: ``partial`` when a target failed or a listing ended short."""

    services: list[ListedService]
    warnings: list[str]
    incomplete: IncompleteListingError | None
    partial: bool


class ListResult(BaseModel):
    """One page of an answer; ``total`` counts every match so a reader knows what it did not see.
    ``complete`` is false when a target could not be read or a listing ended short of its ``total_count``:
    ``warnings`` then says what is missing, and ``total`` counts only what was seen."""

    total: int
    services: list[SerializeAsAny[ListedService]]
    """Listed rows, or ``Service``s with every field (``every_field``; details): each dumps all it holds."""
    offset: int = 0
    limit: int
    next_cursor: str | None = None
    description: str
    warnings: list[str] = Field(default_factory=list)
    complete: bool = True


class Summary(BaseModel):
    """Counts by status, by type and by API generation, and the unhealthy services (with their error messages)."""

    total: int
    by_status: dict[str, int]
    by_infer_type: dict[str, int]
    by_generation: dict[str, int] = Field(default_factory=dict)
    unhealthy: list[SerializeAsAny[ListedService]]
    unhealthy_total: int
    description: str
    warnings: list[str] = Field(default_factory=list)
    complete: bool = True


class ReadModel(Protocol):
    """What the query layer reads the watcher's state through (``core.read_model.WatcherReadModel``)."""

    def has(self, target: str) -> bool:
        """True once the watcher has committed a poll of ``target``: its cards can answer."""
        ...

    def cards(self, target: str) -> list[ServiceCard]:
        """Every known service of ``target``, as a list this caller owns."""
        ...

    def unhealthy_cards(self, target: str) -> list[ServiceCard]:
        """The cards of ``target``'s unhealthy services only, as a list this caller owns."""
        ...

    async def refresh(self) -> None:
        """Bring the cards up to now (an incremental poll, shared, bounded in time); never raises for the API."""
        ...

    def staleness(self, targets: Iterable[str]) -> list[str]:
        """A warning per target whose cards are older than a few seconds, with why when the API is failing."""
        ...


def encode_cursor(offset: int, fingerprint: str) -> str:
    raw = json.dumps({"o": offset, "f": fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, fingerprint: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        offset, owner = int(data["o"]), str(data["f"])
    except (ValueError, KeyError, TypeError):
        raise QueryError(
            "The cursor is not one this bot issued.", hint="Drop the cursor to start from the first page."
        ) from None
    if owner != fingerprint or offset < 0:
        raise QueryError(
            "The cursor belongs to a different query.",
            hint="Use a cursor only with the filters it came with, or drop it to start again.",
        )
    return offset


def _sort_key(sort: SortKey) -> Callable[[ListedService], Any]:
    epoch = datetime.fromtimestamp(0, UTC)
    if sort == "name":
        return lambda s: ((s.service_name or "").lower(), s.service_id)
    if sort == "published":
        return lambda s: (s.publish_at or epoch, s.service_id)
    return lambda s: (s.transition_at or s.publish_at or epoch, s.service_id)


@functools.lru_cache(maxsize=512)
def name_matcher(pattern: str) -> Callable[[str], bool]:
    """The ``name:`` filter of queries and subscriptions: a glob when it has ``* ? [``, else a substring; both
    case-insensitive. Compiled once per pattern (subscriptions are matched on every poll), in linear time, and
    each match costs at most len(name) x len(pattern) steps (``core.glob``). Lengths are bounded where patterns
    come in (``ServiceQuery``, ``watch``); a longer one stored before that is still matched, just as safely."""
    lowered = pattern.lower()
    if any(ch in lowered for ch in "*?["):
        regex = compile_glob(lowered)
        return lambda name: regex.match(name.lower()) is not None
    return lambda name: lowered in name.lower()


class ServiceQueries:
    """Runs queries over the clients of every configured target."""

    def __init__(
        self,
        clients: list[TargetClient],
        *,
        cache_seconds: float = 5.0,
        detail_concurrency: int = 8,
        unhealthy_details: int = 25,
        inline_match_rows: int = 2000,
        inline_sort_rows: int = 20_000,
        every_field: bool = False,
    ) -> None:
        if not clients:
            raise ValueError("at least one target is needed")
        self.clients = clients
        self.inline_match_rows = inline_match_rows  # name-matched on the event loop up to this many rows (< 20 ms)
        self.inline_sort_rows = inline_sort_rows  # sorted, filtered by status and counted on the loop up to this many
        self.every_field = every_field
        """Listed rows keep every field the API sent (``ask --json``), not only what answers show; never from
        the watcher's state, whose cards hold only the latter."""
        self._cache = TtlCache(cache_seconds)
        self._detail_cache: dict[tuple[str, str, Any], Service] = {}
        self._detail_pending: dict[tuple[str, str, Any], asyncio.Future[Service | None]] = {}
        self._ahead: set[asyncio.Future[None]] = set()
        self._detail_slots = asyncio.Semaphore(detail_concurrency)
        self._unhealthy_details = unhealthy_details
        self.scope: Scope = EVERYTHING
        self._whole: ServiceQueries | None = None
        self.read_model: ReadModel | None = None
        """Set by ``serve`` while its watcher runs; None answers from live listings."""

    def use_read_model(self, model: ReadModel | None) -> None:
        """Answer from ``model`` (the watcher's state) from now on, or, with None, from live listings again."""
        self.read_model = model

    def scoped(self, scope: Scope) -> ServiceQueries:
        """The same layer (clients, caches, detail slots shared) limited to the targets ``scope`` allows: what a
        channel or an MCP token may see (``core.access``). Every answer of the view stands on its clients only."""
        if scope.everything:
            return self
        view = copy.copy(self)
        view.clients = [c for c in self.clients if scope.allows(c.target.name)]
        view.scope = scope
        view._whole = self._whole or self
        return view

    # -- public ------------------------------------------------------------------------------------

    async def list(self, query: ServiceQuery) -> ListResult:
        fingerprint = query.fingerprint()
        offset = decode_cursor(query.cursor, fingerprint) if query.cursor else 0
        key, reverse = _sort_key(query.sort), query.effective_order == "desc"

        def shown(matches: list[Any]) -> list[Any]:
            return _first_sorted(matches, key, reverse, offset + query.limit)[offset : offset + query.limit]

        # Failure causes are asked ahead only for a page of unhealthy services, picked from the unhealthy cards:
        # picking an unfiltered page from 100 000 cards costs about 20 ms of CPU per answer, for a round trip
        # saved only the first time an old failure is on it (a new one has its cause from the watcher).
        matches, gathered = await self._matching(query, shown if _only_unhealthy(query) else None)
        page = _services(await self._off_loop(len(matches), shown, matches))
        await self._add_failure_causes(page)
        end = offset + len(page)
        return ListResult(
            total=len(matches),
            services=page,
            offset=offset,
            limit=query.limit,
            next_cursor=encode_cursor(end, fingerprint) if end < len(matches) else None,
            description=query.describe(),
            warnings=gathered.warnings,
            complete=not gathered.partial,
        )

    async def summary(self, query: ServiceQuery | None = None) -> Summary:
        query = query or ServiceQuery()
        keep = self._unhealthy_details
        matches, gathered = await self._matching(query, lambda matches: _latest_unhealthy(matches, keep))
        counts = await self._off_loop(len(matches), _counts, matches, keep)
        shown = _services(counts.unhealthy)
        await self._add_failure_causes(shown)
        return Summary(
            total=len(matches),
            by_status=counts.by_status,
            by_infer_type=counts.by_infer_type,
            by_generation=counts.by_generation,
            unhealthy=shown,
            unhealthy_total=counts.unhealthy_total,
            description=query.describe(),
            warnings=gathered.warnings,
            complete=not gathered.partial,
        )

    async def get(
        self, ref: str, *, target: str | None = None, on_row: Callable[[ListedService], None] | None = None
    ) -> Service:
        """A service by id or exact name, with its details; ambiguous names list the candidates. ``on_row`` is
        told the listing row of a name found, before its details are asked, so a caller can start what needs
        only the row (``core.insights``: the events) alongside them. From the watcher's state it may be told
        twice: the row it knew, at once, and the row after the poll when the name now means another service
        (the later call supersedes the first)."""
        ref = check_length("service id or name", (ref or "").strip(), MAX_SERVICE_REF_CHARS)
        if not ref:
            raise QueryError("No service given.", hint="Give a service id or name, e.g. `show ocr-prod`.")
        if target is not None:
            check_length("target name", target, MAX_ID_CHARS)
        clients = self._clients(target)
        if _UUID_LIKE.match(ref):
            found = await self._by_id(ref, clients)
            if found:
                return found
        by_name = await self._by_name(ref, clients, on_row)
        if by_name:
            return by_name
        if not _UUID_LIKE.match(ref) and _looks_like_id(ref):
            found = await self._by_id(ref, clients)
            if found:
                return found
        await self._refuse_if_hidden(ref, target)
        raise ServiceNotFoundError(ref, await self._closest_names(ref, clients))

    async def _refuse_if_hidden(self, ref: str, target: str | None) -> None:
        """A scoped view asked for a service it cannot see: "not visible from this channel" rather than "no such
        service" (which would send people hunting for a typo). Nothing of the service is told but that."""
        if self._whole is None or target is not None:
            return
        try:
            found = await self._whole.get(ref)
        except ServicesBotError:
            return
        if not self.scope.allows(found.target):
            raise QueryError(
                f"'{preview(ref)}' is not visible from {self.scope.where}.",
                hint=f"{self.scope.where.capitalize()} sees {_names(self.clients)}; ask where its target is bound.",
            )

    async def _off_loop(
        self, rows: int, work: Callable[..., Any], *args: Any, limit: int | None = None, **kwargs: Any
    ) -> Any:
        """``work`` over ``rows`` services in a worker thread when there are more than ``limit`` (default
        ``inline_sort_rows``): a sort or a count over 100 000 services is a stretch of Python of about 100 ms,
        and acks, polls and /healthz should not wait for it (the thread gives the GIL back every few ms). Below
        that it runs here: ten answers at once at 10 000 services acked no faster with threads (docs/benchmarks.md)."""
        if rows > (self.inline_sort_rows if limit is None else limit):
            return await asyncio.to_thread(work, *args, **kwargs)
        return work(*args, **kwargs)

    def clear_cache(self) -> None:
        self._cache.clear()

    # -- fetching ----------------------------------------------------------------------------------

    def _clients(self, target: str | None) -> list[TargetClient]:
        if not self.clients:
            raise QueryError(
                f"No target is visible from {self.scope.where}.",
                hint="The bot's operator binds channels to targets with `channels = [...]` in the targets file "
                "(SERVICES_BOT_CONFIG); unbound channels see nothing while SERVICES_BOT_CHANNEL_DEFAULT=none.",
            )
        if target is None:
            return self.clients
        chosen = [c for c in self.clients if c.target.name == target]
        if not chosen and not self.scope.everything:
            raise QueryError(
                f"Target '{preview(target)}' is not visible from {self.scope.where}.",
                hint=f"{self.scope.where.capitalize()} sees {_names(self.clients)}.",
            )
        if not chosen:
            names = [c.target.name for c in self.clients]
            guess = did_you_mean(target, names)
            raise QueryError(
                f"Unknown target '{preview(target)}'." + (f" Did you mean '{guess}'?" if guess else ""),
                hint="Configured targets: " + ", ".join(names) + ".",
                suggestion=guess,
            )
        return chosen

    def _plans(self, query: ServiceQuery, client: TargetClient) -> list[ListParams]:
        """The API requests one target needs: per workspace, and per status when several (Q27, Q29)."""
        workspaces: list[str | None] = (
            [query.workspace_id] if query.workspace_id else list(client.target.workspace_ids) or [None]
        )
        statuses: list[str | None] = sorted(query.statuses) if query.statuses else [None]
        return [
            ListParams(
                workspace_id=ws,
                status=status,
                infer_type=query.infer_type,
                model_id=query.model_id,
                tags=query.tags,
                pool_id=query.pool,
                sort_by="publish_at",
                order="asc",
                every_field=self.every_field,
            )
            for ws in workspaces
            for status in statuses
        ]

    async def _listing(self, client: TargetClient, params: ListParams) -> _Listing:
        async def fetch() -> _Listing:
            try:
                return _Listing(await client.list_all(params))
            except IncompleteListingError as exc:
                return _Listing(exc.services, exc)  # type: ignore[arg-type]

        return await self._cache.get((client.target.name, params), fetch)  # type: ignore[no-any-return]

    async def _gather_listings(self, jobs: list[tuple[TargetClient, ListParams]]) -> _Gathered:
        """Run listings concurrently; one target failing is a warning as long as another target answered, and a
        listing that ended short of its ``total_count`` is a warning (and ``incomplete``), never a silent gap."""
        results = await asyncio.gather(*(self._listing(c, p) for c, p in jobs), return_exceptions=True)
        services: dict[tuple[str | None, str], ListedService] = {}
        failures: list[tuple[str, BaseException]] = []
        short: list[tuple[str, IncompleteListingError]] = []
        for (client, _params), result in zip(jobs, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, ServicesBotError):
                    raise result
                failures.append((client.target.name, result))
                continue
            if result.incomplete is not None:
                short.append((client.target.name, result.incomplete))
            for service in result.services:
                services.setdefault((service.target, service.service_id), service)
        if failures and {name for name, _err in failures} == {client.target.name for client, _params in jobs}:
            raise failures[0][1]  # no target was read whole (another status's empty answer is no answer)
        warnings = sorted({f"Target {name} could not be read: {err}" for name, err in failures})
        many = len(self.clients) > 1
        warnings += sorted({f"Target {name}: {err}" if many else str(err) for name, err in short})
        incomplete = short[0][1] if short else None
        return _Gathered(list(services.values()), warnings, incomplete, partial=bool(failures) or bool(short))

    async def _matching(
        self, query: ServiceQuery, shown: Callable[[list[Any]], list[Any]] | None = None
    ) -> tuple[list[Any], _Gathered]:
        """The listed services (or the watcher's cards of them) that pass the local filters. Matching a name
        pattern against a large fleet runs in a worker thread: each match is short, so the event loop (acks,
        the watcher, /healthz) gets the GIL between them instead of waiting for the whole fleet. ``shown`` picks
        the unhealthy rows the answer will show from its unhealthy matches (``_remembered`` asks their failure
        causes ahead)."""
        clients = self._clients(query.target)
        remembered = await self._remembered(query, clients, shown)
        if remembered is not None:
            gathered = remembered
        else:
            gathered = await self._gather_listings([(c, p) for c in clients for p in self._plans(query, c)])
            if query.pool and any(c.generation("v1") for c in clients):
                gathered.warnings.append(POOL_V1_NOTE)
        limit = self.inline_match_rows if query.name else None  # a name pattern costs more per row than a status
        return await self._off_loop(
            len(gathered.services), _local_filter, query, gathered.services, limit=limit
        ), gathered

    def _answers_from_memory(self, query: ServiceQuery | None, clients: list[TargetClient]) -> bool:
        """The watcher's cards hold every service of each target's workspaces, without model ids or tags."""
        model = self.read_model
        if model is None or self.every_field or not all(model.has(c.target.name) for c in clients):
            return False
        if query is None:
            return True
        if query.model_id or query.tags or query.pool:
            return False  # the cards hold no model ids, tags or pools
        ws = query.workspace_id
        return ws is None or all(not c.target.workspace_ids or ws in c.target.workspace_ids for c in clients)

    async def _remembered(
        self,
        query: ServiceQuery | None,
        clients: list[TargetClient],
        shown: Callable[[list[Any]], list[Any]] | None = None,
    ) -> _Gathered | None:
        """The cards of ``clients``' services, brought up to now by the watcher's poll; None when the read model
        cannot answer ``query`` (then the live listing does). Never fails for the API: an answer from memory
        that is more than a few seconds old says how old, and why when ModelArts is not answering.

        With ``shown``, the failure causes the answer will want are asked beside the poll, for the rows
        ``shown`` picks from today's unhealthy cards: most often the rows shown after it too, so the answer takes
        one round trip, not a poll and then the details (``_add_failure_causes`` joins those look-ups). A query
        of unhealthy statuses only reads the unhealthy cards, not the fleet's."""
        if not self._answers_from_memory(query, clients):
            return None
        model = self.read_model
        assert model is not None
        if shown is not None and query is not None:
            sick = self._cards(model, query, clients, unhealthy=True)
            ahead = asyncio.ensure_future(self._causes_ahead(query, sick, shown))
            self._ahead.add(ahead)
            ahead.add_done_callback(self._ahead.discard)
            ahead.add_done_callback(_log_failure)
        await model.refresh()
        if not all(model.has(c.target.name) for c in clients):
            return None  # stopped watching while the poll ran
        warnings = model.staleness(c.target.name for c in clients)
        cards = self._cards(model, query, clients, unhealthy=query is not None and _only_unhealthy(query))
        return _Gathered(cards, warnings, None, partial=False)  # type: ignore[arg-type]

    @staticmethod
    def _cards(
        model: ReadModel, query: ServiceQuery | None, clients: list[TargetClient], *, unhealthy: bool = False
    ) -> list[ServiceCard]:
        read = model.unhealthy_cards if unhealthy else model.cards
        cards = [card for c in clients for card in read(c.target.name)]
        if query is not None and (query.infer_type or query.workspace_id):
            cards = [
                card
                for card in cards
                if (not query.infer_type or card.infer_type == query.infer_type)
                and (not query.workspace_id or card.workspace_id == query.workspace_id)
            ]
        return cards

    async def _causes_ahead(
        self, query: ServiceQuery, sick: list[ServiceCard], shown: Callable[[list[Any]], list[Any]]
    ) -> None:
        def pick() -> list[Any]:
            return shown(_local_filter(query, sick))

        rows = await self._off_loop(len(sick), pick, limit=self.inline_match_rows if query.name else None)
        await self._add_failure_causes(rows, assign=False)  # only the failed ones without a cause; cached: no I/O

    async def _details(self, service: ListedService | ServiceCard) -> Service | None:
        """Details of a listed service, cached per status change (the cause of a failure does not move). One
        look-up per service at a time: answers asking at once, and one asked ahead of its poll, share it."""
        key = (service.target or "", service.service_id, service.transition_at)
        if key in self._detail_cache:
            return self._detail_cache[key]
        pending = self._detail_pending.get(key)
        if pending is None:
            pending = self._detail_pending[key] = asyncio.ensure_future(self._look_up(service, key))
            pending.add_done_callback(lambda _done: self._detail_pending.pop(key, None))
        return await asyncio.shield(pending)  # an asker that gives up does not cancel the others' look-up

    async def _look_up(self, service: ListedService | ServiceCard, key: tuple[str, str, Any]) -> Service | None:
        client = next((c for c in self.clients if c.target.name == service.target), self.clients[0])
        async with self._detail_slots:
            try:
                detail = await client.get_service(service.service_id, generation=service.generation)
            except ServicesBotError:
                return None
        if len(self._detail_cache) > 10_000:
            self._detail_cache.clear()
        self._detail_cache[key] = detail
        return detail

    async def _add_failure_causes(self, services: list[Any], *, assign: bool = True) -> None:
        """List rows carry no error_msg (Q17; v2 rows no failure_reason): fetch details for the failed (and v2
        error) ones shown, in parallel; with ``assign`` false only into the cache (cards are not changed)."""
        todo = [s for s in services if s.status in FAILED_STATUSES and not s.error_msg]
        details = await asyncio.gather(*(self._details(s) for s in todo))
        for service, detail in zip(todo, details, strict=True):
            if assign and detail is not None and detail.error_msg:
                service.error_msg = detail.error_msg

    async def _by_id(self, service_id: str, clients: list[TargetClient]) -> Service | None:
        validate_service_id(service_id)
        results = await asyncio.gather(*(c.get_service(service_id) for c in clients), return_exceptions=True)
        errors: list[BaseException] = []
        for result in results:
            if isinstance(result, Service):
                return result
            if not isinstance(result, ApiNotFoundError):
                errors.append(result)
        if errors and len(errors) == len(results):
            raise errors[0]
        return None

    async def _by_name(
        self, name: str, clients: list[TargetClient], on_row: Callable[[ListedService], None] | None = None
    ) -> Service | None:
        """The API's ``service_name`` filter is pushed (exact or fuzzy, Q28); exactness is checked here. With the
        watcher's state, the names are looked up in its cards and only the details are asked: for a name the
        cards already know, alongside the poll that brings them up to now, so the answer costs one round trip
        instead of two (the details are used only if the name still means that service after the poll)."""
        early = self._details_ahead(name, clients)
        if early is not None and on_row is not None:
            on_row(early[1].to_service())  # what needs only the row (the events) goes out beside the poll too
        try:
            return await self._by_name_with(name, clients, on_row, early)
        finally:
            if early is not None:
                early[0].cancel()  # unused, or already done (then this does nothing)

    async def _by_name_with(
        self,
        name: str,
        clients: list[TargetClient],
        on_row: Callable[[ListedService], None] | None,
        early: tuple[asyncio.Task[Service], ServiceCard] | None,
    ) -> Service | None:
        remembered = await self._remembered(None, clients)
        if remembered is not None:
            gathered = remembered
        else:
            jobs = [
                (c, ListParams(service_name=name, workspace_id=ws))
                for c in clients
                for ws in (list(c.target.workspace_ids) or [None])
            ]
            gathered = await self._gather_listings(jobs)
        found = gathered.services
        exact = [s for s in found if s.service_name == name] or [
            s for s in found if (s.service_name or "").lower() == name.lower()
        ]
        if not exact:
            if gathered.incomplete is not None:
                raise gathered.incomplete  # "no such service" would be a guess: the listing did not end
            return None
        if len(exact) > 1:
            raise AmbiguousServiceError(
                name,
                [
                    {"service_id": s.service_id, "workspace_id": s.workspace_id, "status": s.status, "target": s.target}
                    for s in exact
                ],
            )
        row = exact[0]
        client = next(c for c in clients if c.target.name == row.target)
        ahead = (
            remembered is not None
            and early is not None
            and (early[1].target, early[1].service_id) == (row.target, row.service_id)
        )
        if on_row is not None and not ahead:  # told again when the poll moved the name to another service
            on_row(row.to_service() if isinstance(row, ServiceCard) else row)  # a card of the watcher's state
        try:
            if ahead:
                assert early is not None
                return await early[0]
            return await client.get_service(row.service_id, generation=row.generation)
        except ApiNotFoundError:
            return None

    def _details_ahead(
        self, name: str, clients: list[TargetClient]
    ) -> tuple[asyncio.Task[Service], ServiceCard] | None:
        """The details of the one service the watcher's cards name ``name`` today, asked now (before the poll
        ends); None when the read model cannot answer or the name is not exactly one service there."""
        model = self.read_model
        if model is None or not self._answers_from_memory(None, clients):
            return None
        exact = [card for c in clients for card in model.cards(c.target.name) if card.service_name == name]
        if len(exact) != 1:
            return None
        card = exact[0]
        client = next(c for c in clients if c.target.name == card.target)
        task = asyncio.ensure_future(client.get_service(card.service_id, generation=card.generation))
        task.add_done_callback(_consume)  # a cancelled or unused look-up is not an "exception never retrieved"
        return task, card

    async def _closest_names(self, ref: str, clients: list[TargetClient]) -> list[str]:
        try:
            everything = await self._remembered(None, clients) or await self._gather_listings(
                [(c, p) for c in clients for p in self._plans(ServiceQuery(), c)]
            )
        except ApiError:
            return []
        names = {s.service_name for s in everything.services if s.service_name}
        contains = sorted(n for n in names if ref.lower() in n.lower())[:3]
        return list(dict.fromkeys([*closest(ref, names, n=3), *contains]))[:5]


def _only_unhealthy(query: ServiceQuery) -> bool:
    """The query matches unhealthy services only (``failed``, ``unhealthy``, ``status:concerning``)."""
    return bool(query.statuses) and query.statuses <= UNHEALTHY_STATUSES


def _local_filter(query: ServiceQuery, services: list[Any]) -> list[Any]:
    """What the API could not filter: several statuses, the name, and rows that ignored a pushed-down filter.
    ``services`` are ``Service`` rows or the watcher's ``ServiceCard``s, which carry the same attributes."""
    if not (query.statuses or query.infer_type or query.workspace_id or query.name):
        return list(services)
    name_ok = name_matcher(query.name) if query.name else None
    return [
        s
        for s in services
        if (not query.statuses or s.status in query.statuses)
        and (not query.infer_type or s.infer_type in (None, query.infer_type))
        and (not query.workspace_id or s.workspace_id in (None, query.workspace_id))
        and (name_ok is None or name_ok(s.service_name or ""))
    ]


def _first_sorted(rows: list[Any], key: Callable[[Any], Any], reverse: bool, count: int) -> list[Any]:
    """The first ``count`` of ``rows`` in order: a page near the top (the usual one) is picked with a heap, a
    pass over the fleet instead of a sort of it (at 10 000 services about 1 ms instead of 7, which ten answers
    at once would otherwise take from the acks on the event loop); a deep page sorts everything."""
    if count * 8 < len(rows):
        return (heapq.nlargest if reverse else heapq.nsmallest)(count, rows, key=key)
    return sorted(rows, key=key, reverse=reverse)[:count]


class _Counts(NamedTuple):
    by_status: dict[str, int]
    by_infer_type: dict[str, int]
    by_generation: dict[str, int]
    unhealthy: list[Any]
    """The latest unhealthy ones, at most the number asked."""
    unhealthy_total: int


def _counts(matches: list[Any], keep: int) -> _Counts:
    """What a summary counts over the services (or cards) it covers, each count a pass in C (``Counter`` over
    ``map`` of an attribute getter: a third of a Python loop's time), and the ``keep`` latest unhealthy ones."""
    by_status = _tally(map(_STATUS, matches), missing="unknown")
    return _Counts(
        by_status,
        _tally(map(_INFER_TYPE, matches), missing="unknown"),
        _tally(map(_GENERATION, matches)),
        _latest_unhealthy(matches, keep),
        sum(n for status, n in by_status.items() if status in UNHEALTHY_STATUSES),
    )


def _latest_unhealthy(matches: list[Any], keep: int) -> list[Any]:
    """The ``keep`` unhealthy ones whose status changed last: what a summary shows."""
    return _first_sorted([s for s in matches if s.status in UNHEALTHY_STATUSES], _sort_key("changed"), True, keep)


_STATUS, _INFER_TYPE, _GENERATION = attrgetter("status"), attrgetter("infer_type"), attrgetter("generation")


def _tally(values: Iterable[Any], *, missing: str | None = None) -> dict[str, int]:
    """Counts, most common first and ties in first-seen order; with ``missing``, an empty value counts as it."""
    counts = Counter(values)
    if missing is not None:
        merged: Counter[str] = Counter()
        for value, n in counts.items():  # first-seen order, as counting row by row would have it
            merged[value or missing] += n
        counts = merged
    return dict(counts.most_common())


def _services(rows: list[Any]) -> list[ListedService]:
    """The rows to show as services: a listing's already are; the watcher's cards are made into rows here,
    only for the page shown (a whole fleet of them would cost more than the answer)."""
    return [row.to_service() if isinstance(row, ServiceCard) else row for row in rows]


def _consume(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _log_failure(task: asyncio.Future[Any]) -> None:
    """A look-up ahead that failed costs its answer only the round trip it meant to save; say why, once."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("failure causes could not be asked ahead", exc_info=exc)


def _names(clients: list[TargetClient]) -> str:
    return "target " + ", ".join(c.target.name for c in clients) if clients else "no target"


def _looks_like_id(ref: str) -> bool:
    try:
        validate_service_id(ref)
    except QueryError:
        return False
    return True
