"""The watcher's state as the read model: what list answers and summaries show of every service, kept in memory.

``serve``'s watcher already sees every service on its polls and keeps the fleet current with one small request
per quiet poll; answering from what it saw costs that poll instead of a listing of the fleet. ``FleetCards``
holds, per target, one compact ``ServiceCard`` per service (the fields an answer shows, not the API row), and is
brought up to date by the watcher after each committed poll (``core.watcher``). ``WatcherReadModel`` is what
the query layer (``core.query``) asks: it brings the cards up to now with the watcher's own incremental poll
(shared by concurrent askers, skipped when the last one is under a second old) and says how fresh they are.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NamedTuple

from services_bot.core.humanize import ago
from services_bot.core.models import UNHEALTHY_STATUSES, ListedService

if TYPE_CHECKING:
    from services_bot.core.watcher import Watcher

FRESH_SECONDS = 1.0
"""An answer asked within this long of the last poll stands on that poll: no request at all."""
STALE_SECONDS = 5.0
"""Older than this, an answer says how old it is."""
WAIT_SECONDS = 3.0
"""The longest an answer waits for its on-demand poll; past it (an API that does not answer, retries under way)
it answers from memory with its age, and the poll carries on for the next asker."""


@dataclass(frozen=True, slots=True)
class ServiceCard:
    """One service as answers show it. The attribute names are ``ListedService``'s, so filters and sort keys written
    for services read cards as they are; ``to_service`` makes the row for the few shown."""

    service_id: str
    target: str
    generation: str
    service_name: str | None = None
    status: str | None = None
    infer_type: str | None = None
    workspace_id: str | None = None
    publish_at: datetime | None = None
    transition_at: datetime | None = None
    due_time: datetime | None = None
    progress: int | None = None
    invocation_times: int | None = None
    failed_times: int | None = None
    error_msg: str | None = None
    description: str | None = None
    owner: str | None = None
    is_shared: bool | None = None
    shared_count: int | None = None

    @classmethod
    def of(cls, row: ListedService, target: str) -> ServiceCard:
        return cls(
            service_id=row.service_id,
            target=target,
            generation=row.generation,
            service_name=row.service_name,
            status=row.status,
            infer_type=row.infer_type,
            workspace_id=row.workspace_id,
            publish_at=row.publish_at,
            transition_at=row.transition_at,
            due_time=row.due_time,
            progress=row.progress,
            invocation_times=row.invocation_times,
            failed_times=row.failed_times,
            error_msg=row.error_msg if row.status in UNHEALTHY_STATUSES else None,
            description=row.description,
            owner=row.owner,
            is_shared=row.is_shared,
            shared_count=row.shared_count,
        )

    @property
    def is_unhealthy(self) -> bool:
        return self.status in UNHEALTHY_STATUSES

    def to_service(self) -> ListedService:
        """A list row as a listing would have given it (``model_construct``: the values were validated once)."""
        return ListedService.model_construct(**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})


class FleetCards:
    """Per target, the card of every service the watcher knows. Updated only after a poll is committed, so it
    never shows what the store does not hold; a target appears once its first poll has been committed."""

    def __init__(self) -> None:
        self._cards: dict[str, dict[str, ServiceCard]] = {}
        self._unhealthy: dict[str, dict[str, ServiceCard]] = {}

    def has(self, target: str) -> bool:
        return target in self._cards

    def cards(self, target: str) -> list[ServiceCard]:
        """A copy, taken on the event loop, so a worker thread can filter it while polls move on."""
        return list(self._cards.get(target, {}).values())

    def current(self, target: str) -> Mapping[str, ServiceCard]:
        """``target``'s cards by id, not a copy: for the watcher's next poll, on the event loop, to keep the
        cards of services that did not change."""
        return self._cards.get(target, {})

    def unhealthy_cards(self, target: str) -> list[ServiceCard]:
        """The cards of unhealthy services only (a copy): what `failed`, `unhealthy` and a summary's list of
        them read, without a pass over 100 000 cards."""
        return list(self._unhealthy.get(target, {}).values())

    def apply(
        self,
        target: str,
        seen: dict[str, ServiceCard],
        *,
        complete: bool,
        deletions: Iterable[str],
        known: Collection[str],
        causes: dict[str, str],
    ) -> None:
        """One committed poll: ``seen`` the cards of its rows, ``complete`` when it was a full listing (then a
        service not seen is gone, unless ``known`` still holds it: an unconfirmed deletion keeps its card),
        ``causes`` the error messages the watcher fetched for unhealthy arrivals."""
        before = self._cards.get(target, {})
        previous = {service_id: before.get(service_id) for service_id in seen}
        if complete:
            after = dict(seen)
            for service_id in known:
                if service_id not in after and service_id in before:
                    after[service_id] = before[service_id]
        else:
            after = before
            after.update(seen)
        for service_id in deletions:
            after.pop(service_id, None)
        for service_id, card in seen.items():
            if card.error_msg or not card.is_unhealthy:
                continue
            old = previous[service_id]
            unchanged = old is not None and (old.status, old.transition_at) == (card.status, card.transition_at)
            message = causes.get(service_id) or (old.error_msg if old is not None and unchanged else None)
            if message:
                after[service_id] = dataclasses.replace(card, error_msg=message)
        self._cards[target] = after
        if complete or target not in self._unhealthy:
            self._unhealthy[target] = {sid: card for sid, card in after.items() if card.is_unhealthy}
            return
        sick = self._unhealthy[target]
        for service_id in (*seen, *deletions):
            card = after.get(service_id)
            if card is not None and card.is_unhealthy:
                sick[service_id] = card
            else:
                sick.pop(service_id, None)


class Freshness(NamedTuple):
    """How current one target's cards are: the last successful poll, and the error of the last failed one."""

    target: str
    as_of: datetime | None
    error: str | None


class WatcherReadModel:
    """The read model over one ``Watcher``: ``refresh`` before an answer, then ``cards`` and ``staleness``."""

    def __init__(
        self,
        watcher: Watcher,
        *,
        fresh_seconds: float = FRESH_SECONDS,
        stale_seconds: float = STALE_SECONDS,
        wait_seconds: float = WAIT_SECONDS,
    ) -> None:
        self.watcher = watcher
        self.fresh_seconds = fresh_seconds
        self.stale_seconds = stale_seconds
        self.wait_seconds = wait_seconds

    def has(self, target: str) -> bool:
        return self.watcher.fleet.has(target)

    def cards(self, target: str) -> list[ServiceCard]:
        return self.watcher.fleet.cards(target)

    def unhealthy_cards(self, target: str) -> list[ServiceCard]:
        return self.watcher.fleet.unhealthy_cards(target)

    async def refresh(self) -> None:
        """The watcher's poll, shared with every concurrent asker and the watcher's own loop, unless the last one
        ended under ``fresh_seconds`` ago; waited for at most ``wait_seconds``, after which the answer comes from
        memory and says how old it is."""
        poll = self.watcher.poll_if_older(self.fresh_seconds)
        if poll is not None:
            await asyncio.wait({poll}, timeout=self.wait_seconds)  # its outcome is the watcher's to report

    def staleness(self, targets: Iterable[str]) -> list[str]:
        """A warning per target whose state is older than ``stale_seconds`` or whose last poll failed: its age,
        and why ("as of 2m ago — ModelArts is not answering: …")."""
        warnings = []
        now = datetime.now(UTC)
        for fresh in (self.freshness(t) for t in targets):
            recent = fresh.as_of is not None and (now - fresh.as_of).total_seconds() < self.stale_seconds
            if recent and fresh.error is None:
                continue
            when = f"as of {ago(fresh.as_of, now)}" if fresh.as_of else "as of the watcher's last poll"
            why = f" — ModelArts is not answering: {fresh.error}" if fresh.error else ""
            warnings.append(f"Target {fresh.target}: {when}{why}.")
        return warnings

    def freshness(self, target: str) -> Freshness:
        state = self.watcher.targets[target]
        failing = state.failing or not state.reachable
        return Freshness(target, state.last_success_at, state.last_error if failing else None)
