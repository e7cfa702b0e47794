"""One target read through the API generations its setting names (``Target.api_generation``), merged.

``TargetClient`` has the interface the query layer uses (``list_all``, ``iter_pages``, ``get_service``,
``target``, ``requests_sent``), so ``core/query.py`` does not know how many generations stand behind a target;
the watcher, which pages and checks order itself, asks ``active`` for the generation clients and scans each.

``both`` lists the generations at once (``list_all``; the watcher's page-at-a-time ``iter_pages`` goes one
after the other) and keeps v1's row of a service both report (de-duplicated by id), so such a service stays a
v1 service, as it was before v2 was read. A generation whose *list* path
answers 404 in that region (the gateway's "API not found": no ModelArts error code, since an unknown service
cannot be the reason on a list) is skipped from then on for the life of the process, with one log line. With
``v1`` or ``v2`` that 404 is an error: the target says it must be read that way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing

from services_bot.core.client import ListParams, ModelArtsClient, collect_pages
from services_bot.core.client_v2 import accepts as v2_accepts
from services_bot.core.config import Target
from services_bot.core.errors import ApiError, ApiNotFoundError, IncompleteListingError, ServicesBotError
from services_bot.core.models import V1_INFER_TYPES, V1_STATUSES, ListedService, Service

log = logging.getLogger("services_bot.generations")


def _v1_accepts(params: ListParams) -> bool:
    """v1 knows no v2-only status (``error``, ``upgrading``, ...) or type (``async-real-time``), and cannot filter
    by pool."""
    return (
        (params.status is None or params.status in V1_STATUSES)
        and (params.infer_type is None or params.infer_type in V1_INFER_TYPES)
        and params.pool_id is None
    )


def is_api_absent(exc: ApiError) -> bool:
    """A 404 that says the path does not exist, not that a service does not: no ``ModelArts.*`` code."""
    return isinstance(exc, ApiNotFoundError) and not (exc.error_code or "").startswith("ModelArts.")


class TargetClient:
    """The generation clients of one target (v1 first), with the 404 probe remembered."""

    def __init__(self, target: Target, clients: list[ModelArtsClient]) -> None:
        if not clients:
            raise ValueError("a target needs at least one generation client")
        self.target = target
        self.clients = clients
        self.absent: set[str] = set()

    @property
    def active(self) -> list[ModelArtsClient]:
        """The generation clients still read: those allowed by the setting and not found absent."""
        return [c for c in self.clients if c.generation not in self.absent]

    @property
    def requests_sent(self) -> int:
        return sum(c.requests_sent for c in self.clients)

    @property
    def page_limit(self) -> int:
        return min(c.page_limit for c in self.active or self.clients)

    def generation(self, name: str) -> ModelArtsClient | None:
        return next((c for c in self.active if c.generation == name), None)

    def _skip_if_absent(self, client: ModelArtsClient, exc: ApiError) -> bool:
        """True (and the generation skipped from now on) when ``exc`` says the generation's API is not there
        and the setting allows another; the last generation standing is never skipped."""
        if self.target.api_generation != "both" or not is_api_absent(exc):
            return False
        if client.generation in self.absent:
            return True  # a concurrent listing found it first
        if not any(c.generation not in self.absent for c in self.clients if c is not client):
            return False
        self.absent.add(client.generation)
        log.warning(
            "API generation not served here; skipped from now on",
            extra={"target": self.target.name, "generation": client.generation, "status": exc.status},
        )
        return True

    @staticmethod
    def _accepts(client: ModelArtsClient, params: ListParams) -> bool:
        return v2_accepts(params) if client.generation == "v2" else _v1_accepts(params)

    async def iter_pages(
        self, params: ListParams, *, members: dict[str, set[str]] | None = None
    ) -> AsyncIterator[list[ListedService]]:
        """Every matching service of every active generation, each id once, a page at a time. ``members``, when
        given, is filled with the ids each generation served (before de-duplication), for the watcher."""
        seen: set[str] = set()
        for client in self.active:
            if not self._accepts(client, params):
                continue
            served = members.setdefault(client.generation, set()) if members is not None else None
            try:
                async with aclosing(client.iter_pages(params)) as pages:
                    async for rows in pages:
                        if served is not None:
                            served.update(s.service_id for s in rows)
                        fresh = [s for s in rows if s.service_id not in seen]
                        seen.update(s.service_id for s in fresh)
                        if fresh:
                            yield fresh
            except ApiError as exc:
                if not self._skip_if_absent(client, exc):
                    raise

    async def list_all(self, params: ListParams) -> list[ListedService]:
        """Every matching service of every active generation in one list, each id once (v1's row first), as
        ``iter_pages`` gives them, but with the generations listed at once: a cold answer on a target read
        both ways pays one round trip of first pages, not two. An ``IncompleteListingError`` (of either
        generation) carries the rows that did arrive from both."""
        clients = [c for c in self.active if self._accepts(c, params)]
        results = await asyncio.gather(*(collect_pages(c.iter_pages(params)) for c in clients), return_exceptions=True)
        merged: list[ListedService] = []
        seen: set[str] = set()
        incomplete: IncompleteListingError | None = None
        for client, result in zip(clients, results, strict=True):
            if isinstance(result, IncompleteListingError):
                incomplete = incomplete or result
                rows = [s for s in result.services if isinstance(s, ListedService)]
            elif isinstance(result, ApiError):
                if self._skip_if_absent(client, result):
                    continue
                raise result
            elif isinstance(result, BaseException):
                raise result
            else:
                rows = result
            fresh = [s for s in rows if s.service_id not in seen]
            seen.update(s.service_id for s in fresh)
            merged += fresh
        if incomplete is not None:
            incomplete.services = list(merged)
            raise incomplete
        return merged

    async def probe(self, params: ListParams, seconds: float) -> dict[str, str | None]:
        """Each active generation's answer to a one-row listing, at once: None where it answered, else the
        problem (its error and fix). A generation found absent is skipped from then on, as a listing would."""

        async def one(client: ModelArtsClient) -> str | None:
            try:
                await asyncio.wait_for(client.list_page(params, limit=2 if client.generation == "v1" else 1), seconds)
            except TimeoutError:
                return f"No answer within {seconds:g} s."
            except ApiError as exc:
                if self._skip_if_absent(client, exc):
                    return "not served in this region (skipped)"
                return exc.user_text()
            except ServicesBotError as exc:
                return exc.user_text()
            return None

        clients = self.active
        answers = await asyncio.gather(*(one(c) for c in clients))
        return {c.generation: a for c, a in zip(clients, answers, strict=True)}

    async def get_service(self, service_id: str, *, generation: str | None = None) -> Service:
        """Details by id from ``generation`` when known, else from every active one (v1's answer first); 404
        only when none has it, and any other error wins over a 404 (a gone service must be a sure answer)."""
        clients = [c for c in self.active if generation is None or c.generation == generation] or self.active
        if len(clients) == 1:
            return await clients[0].get_service(service_id)
        answers = await asyncio.gather(*(c.get_service(service_id) for c in clients), return_exceptions=True)
        for answer in answers:
            if isinstance(answer, Service):
                return answer
        errors = [a for a in answers if isinstance(a, BaseException)]
        for error in errors:
            if not isinstance(error, ApiNotFoundError):
                raise error
        raise errors[0]
