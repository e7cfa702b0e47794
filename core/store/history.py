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


class History(StoreBase):
    """Transition history: reading it back and pruning it."""

    async def transitions(
        self,
        since: datetime | None = None,
        service: str | None = None,
        to_statuses: Iterable[str] | None = None,
        target: str | None = None,
        limit: int = 50,
        before: tuple[int, int] | None = None,
    ) -> list[Transition]:
        """Stored transitions, newest first. ``service`` is an exact id or name (case-insensitive name).
        ``before`` is the (observed_ms, id) of the last row of the previous page: pages stay stable while new
        transitions arrive, which an offset would not."""
        where, params = _filters(since, service, to_statuses, target)
        if before is not None:
            where.append("(observed_ms < ? OR (observed_ms = ? AND id < ?))")
            params += [before[0], before[0], before[1]]
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = await self._read(
            f"SELECT * FROM transitions{clause} ORDER BY observed_ms DESC, id DESC LIMIT ?", [*params, limit]
        )
        return [_transition(r) for r in rows]

    async def count_transitions(
        self,
        since: datetime | None = None,
        service: str | None = None,
        to_statuses: Iterable[str] | None = None,
        target: str | None = None,
    ) -> int:
        """How many stored transitions match, so an answer can say how many it did not show."""
        where, params = _filters(since, service, to_statuses, target)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = await self._read(f"SELECT COUNT(*) AS n FROM transitions{clause}", params)
        return int(rows[0]["n"])

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
        finished outbox rows, other finished outbox rows, expired mutes and old alert threads. Returns how many
        rows each table lost."""
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
                "mutes": conn.execute("DELETE FROM mutes WHERE until_ms <= ?", (now_ms,)).rowcount,
                "alert_threads": conn.execute("DELETE FROM alert_threads WHERE opened_ms < ?", (cutoff,)).rowcount,
            }
            return counts

        counts = await self._write(work)
        if any(counts.values()):
            log.info("store pruned", extra=counts)
        return counts


def _filters(
    since: datetime | None, service: str | None, to_statuses: Iterable[str] | None, target: str | None
) -> tuple[list[str], list[Any]]:
    """The WHERE clauses (and their parameters) shared by listing and counting transitions."""
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
    return clauses, params
