"""Transition history: reading it back and pruning it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from services_bot.core.notifications import Transition
from services_bot.core.store.base import StoreBase
from services_bot.core.store.records import _now_ms, to_ms
from services_bot.core.store.rows import _transition
from services_bot.core.store.schema import log

_SORT_MS = "COALESCE(transition_ms, observed_ms)"
"""The order of history: the change's own time where the API gave one, else when the watcher saw it."""


def sort_key(t: Transition) -> tuple[int, int]:
    """A transition's place in that order, as ``transitions(before=...)`` takes it."""
    return to_ms(t.transition_at or t.observed_at) or 0, t.id or 0


class History(StoreBase):
    """Transition history: reading it back and pruning it."""

    async def transitions(
        self,
        since: datetime | None = None,
        service: str | None = None,
        to_statuses: Iterable[str] | None = None,
        target: str | None = None,
        limit: int = 50,
        *,
        targets: Iterable[str] | None = None,
        offset: int = 0,
        before: tuple[int, int] | None = None,
    ) -> list[Transition]:
        """Stored transitions, newest change first: by the change's own time (``transition_at``, else when it
        was seen), so "41s ago" never comes after "42s ago". ``service`` is an exact id or name
        (case-insensitive name); ``targets``: only these (a channel's or a token's scope). ``before`` is the
        (change time in ms, id) of the last row of the previous page (``sort_key``): pages stay stable while new
        transitions arrive, which an offset would not."""
        where, params = _filters(since, service, to_statuses, target, targets)
        if before is not None:
            where += " AND " if where else " WHERE "
            where += f"({_SORT_MS} < ? OR ({_SORT_MS} = ? AND id < ?))"
            params += [before[0], before[0], before[1]]
        rows = await self._read(
            f"SELECT * FROM transitions{where} ORDER BY {_SORT_MS} DESC, id DESC LIMIT ? OFFSET ?",
            [*params, limit, max(0, offset)],
        )
        return [_transition(r) for r in rows]

    async def count_transitions(
        self,
        since: datetime | None = None,
        service: str | None = None,
        to_statuses: Iterable[str] | None = None,
        target: str | None = None,
        *,
        targets: Iterable[str] | None = None,
    ) -> int:
        """How many ``transitions`` would list without a limit (so an answer can say how many it left out)."""
        where, params = _filters(since, service, to_statuses, target, targets)
        return int((await self._read(f"SELECT COUNT(*) FROM transitions{where}", params))[0][0])

    async def knows_service(self, ref: str, targets: Iterable[str] | None = None) -> bool:
        """Whether the watcher knows, or has seen change, a service with this id or name (case-insensitive) in
        these targets: ``history`` tells an unknown service from a quiet one with it."""
        where, params = _filters(None, ref, None, None, targets)
        for table in ("services", "transitions"):
            if await self._read(f"SELECT 1 FROM {table}{where} LIMIT 1", params):
                return True
        return False

    async def known_names(self, targets: Iterable[str] | None = None, limit: int = 5000) -> list[str]:
        """Names of the services the watcher knows in these targets (at most ``limit``), for suggestions."""
        where, params = _filters(None, None, None, None, targets)
        rows = await self._read(
            f"SELECT DISTINCT service_name FROM services{where}{' AND' if where else ' WHERE'} "
            "service_name IS NOT NULL LIMIT ?",
            [*params, limit],
        )
        return [r[0] for r in rows]

    async def transition(self, transition_id: int) -> Transition | None:
        rows = await self._read("SELECT * FROM transitions WHERE id = ?", (transition_id,))
        return _transition(rows[0]) if rows else None

    async def poll_transitions(self, poll_id: str, channel: str) -> list[Transition]:
        """The transitions one poll queued for one channel (what a grouped alert's "Show all" lists)."""
        rows = await self._read(
            "SELECT t.* FROM outbox o JOIN transitions t ON t.id = o.transition_id "
            "WHERE o.poll_id = ? AND o.channel = ? ORDER BY t.id",
            (poll_id, channel),
        )
        return [_transition(r) for r in rows]

    async def prune(self, now: datetime | None = None) -> dict[str, int]:
        """Forget history older than the retention: transitions (unless still waiting for delivery) with their
        finished outbox rows and acknowledgements, other finished outbox rows, mutes ended over a day ago, old
        alert threads and old audit entries. Returns how many rows each table lost."""
        now_ms = to_ms(now) if now else _now_ms()
        cutoff = now_ms - self.history_days * 86_400_000

        def work(conn: sqlite3.Connection) -> dict[str, int]:
            counts = {
                "outbox": conn.execute(
                    "DELETE FROM outbox WHERE state IN ('done', 'failed') AND (updated_ms < ? OR transition_id IN "
                    "(SELECT id FROM transitions WHERE observed_ms < ?))",
                    (cutoff, cutoff),
                ).rowcount,
                "transitions": conn.execute(
                    "DELETE FROM transitions WHERE observed_ms < ? AND id NOT IN "
                    "(SELECT transition_id FROM outbox WHERE transition_id IS NOT NULL)",
                    (cutoff,),
                ).rowcount,
                # expired mutes are ended (and announced) by delivery; a day later, any left are forgotten here
                "mutes": conn.execute("DELETE FROM mutes WHERE until_ms <= ?", (now_ms - 86_400_000,)).rowcount,
                "alert_threads": conn.execute("DELETE FROM alert_threads WHERE opened_ms < ?", (cutoff,)).rowcount,
                "acknowledgements": conn.execute(
                    "DELETE FROM acknowledgements WHERE transition_id NOT IN (SELECT id FROM transitions)"
                ).rowcount,
                "audit": conn.execute("DELETE FROM audit WHERE at_ms < ?", (cutoff,)).rowcount,
            }
            return counts

        counts = await self._write(work)
        if any(counts.values()):
            log.info("store pruned", extra=counts)
        return counts


def _filters(
    since: datetime | None,
    service: str | None,
    to_statuses: Iterable[str] | None,
    target: str | None,
    targets: Iterable[str] | None,
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if since is not None:
        clauses.append("observed_ms >= ?")
        params.append(to_ms(since))
    if service:
        clauses.append("(service_id = ? OR service_name = ? COLLATE NOCASE)")
        params += [service, service]
    statuses = sorted(set(to_statuses or ()))
    if statuses:
        clauses.append(f"to_status IN ({','.join('?' * len(statuses))})")
        params += statuses
    if target:
        clauses.append("target = ?")
        params.append(target)
    if targets is not None:
        chosen = sorted(set(targets))
        clauses.append(f"target IN ({','.join('?' * len(chosen))})" if chosen else "0")
        params += chosen
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), params
