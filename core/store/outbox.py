"""The delivery outbox: rows due, in flight, done, retried or failed, in per-service order."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from services_bot.core.notifications import AlertThread, Delivery
from services_bot.core.store.base import StoreBase
from services_bot.core.store.records import _now_ms, from_ms, to_ms
from services_bot.core.store.rows import _delivery
from services_bot.core.store.schema import MAX_ERROR_CHARS


class Outbox(StoreBase):
    """The delivery outbox: rows due, in flight, done, retried or failed, in per-service order."""

    _DELIVERY_SQL = (
        "SELECT o.*, t.id AS t_id, t.poll_id AS t_poll_id, t.target AS t_target, t.project_id, t.service_id, "
        "t.service_name, t.kind, t.from_status, t.to_status, t.transition_ms, t.observed_ms, t.error_msg, "
        "t.infer_type, t.workspace_id, t.grouped FROM outbox o LEFT JOIN transitions t ON t.id = o.transition_id"
    )

    _UNDELIVERED = "state IN ('pending', 'in_flight')"

    async def due_deliveries(self, now: datetime | None = None, limit: int = 100) -> list[Delivery]:
        """Pending rows whose time has come, oldest first; a service's row is not due while an earlier row of
        that service in that channel is undelivered, so a recovery never overtakes the failure it resolves."""
        rows = await self._read(
            f"{self._DELIVERY_SQL} WHERE o.state = 'pending' AND o.next_attempt_ms <= ? AND NOT EXISTS ("
            "SELECT 1 FROM outbox p JOIN transitions pt ON pt.id = p.transition_id "
            f"WHERE p.channel = o.channel AND p.id < o.id AND p.{self._UNDELIVERED} "
            "AND pt.service_id = t.service_id AND pt.target = t.target) ORDER BY o.id LIMIT ?",
            (to_ms(now) if now else _now_ms(), limit),
        )
        return [_delivery(r) for r in rows]

    async def in_flight_deliveries(self) -> list[Delivery]:
        """Rows a previous run started posting but never confirmed (reconcile them after a crash)."""
        return [
            _delivery(r) for r in await self._read(f"{self._DELIVERY_SQL} WHERE o.state = 'in_flight' ORDER BY o.id")
        ]

    async def requeue_in_flight(self, reason: str) -> int:
        """After a crash: rows left in flight may have reached Slack. They go back to pending, marked to be
        looked up in their channel before any new post; returns how many."""
        now = _now_ms()
        return await self._write(
            lambda conn: conn.execute(
                "UPDATE outbox SET state = 'pending', check_posted = 1, next_attempt_ms = ?, error = ?, "
                "updated_ms = ? WHERE state = 'in_flight'",
                (now, reason[:MAX_ERROR_CHARS], now),
            ).rowcount
        )

    async def undelivered(self) -> tuple[int, datetime | None]:
        """How many rows are not delivered yet, and when the oldest of them was queued (health, metrics)."""
        rows = await self._read(f"SELECT COUNT(*), MIN(created_ms) FROM outbox WHERE {self._UNDELIVERED}")
        return int(rows[0][0]), from_ms(rows[0][1])

    async def undelivered_of_poll(self, channel: str, poll_id: str) -> int:
        """Undelivered transition rows of one poll in one channel: a grouped alert waits until all are due."""
        rows = await self._read(
            f"SELECT COUNT(*) FROM outbox WHERE channel = ? AND {self._UNDELIVERED} AND poll_id = ? "
            "AND transition_id IS NOT NULL",
            (channel, poll_id),
        )
        return int(rows[0][0])

    async def failed_since(self, since: datetime) -> int:
        """Rows that ended failed (Slack refused them for good) since ``since``."""
        rows = await self._read(
            "SELECT COUNT(*) FROM outbox WHERE state = 'failed' AND updated_ms >= ?", (to_ms(since),)
        )
        return int(rows[0][0])

    async def deliveries(self, channel: str | None = None, state: str | None = None) -> list[Delivery]:
        """Outbox rows, oldest first (for inspection, metrics and tests)."""
        clauses, params = [], []
        if channel is not None:
            clauses.append("o.channel = ?")
            params.append(channel)
        if state is not None:
            clauses.append("o.state = ?")
            params.append(state)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return [_delivery(r) for r in await self._read(f"{self._DELIVERY_SQL}{where} ORDER BY o.id", params)]

    async def mark_in_flight(self, ids: Sequence[int]) -> None:
        await self._update_outbox(
            ids,
            "state = 'in_flight', attempts = attempts + 1, first_attempt_ms = COALESCE(first_attempt_ms, ?)",
            (_now_ms(),),
        )

    async def mark_done(
        self, ids: Sequence[int], ts: str | None, thread_ts: str | None = None, opens: AlertThread | None = None
    ) -> None:
        """Rows posted as ``ts``; ``opens``: the alert thread that message starts, recorded in the same
        transaction, so no crash can leave an alert posted whose later changes would not find its thread."""
        if not ids:
            return
        now = _now_ms()
        rows = [(ts, thread_ts, now, i) for i in ids]

        def work(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE outbox SET state = 'done', ts = ?, thread_ts = ?, error = NULL, check_posted = 0, "
                "updated_ms = ? WHERE id = ?",
                rows,
            )
            if opens is not None:
                self._insert_alert_thread(conn, opens)

        await self._write(work)

    async def mark_checked(self, ids: Sequence[int]) -> None:
        """The channel was searched and these rows are not in it: they may be posted."""
        await self._update_outbox(ids, "check_posted = 0", ())

    async def mark_retry(
        self, ids: Sequence[int], next_attempt_at: datetime, error: str, *, check_posted: bool = False
    ) -> None:
        """Back to pending until ``next_attempt_at``; ``check_posted``: the failed post may have been made, so
        the row is looked up in its channel before it is tried again."""
        await self._update_outbox(
            ids,
            "state = 'pending', next_attempt_ms = ?, error = ?, check_posted = MAX(check_posted, ?)",
            (to_ms(next_attempt_at), error[:MAX_ERROR_CHARS], int(check_posted)),
        )

    async def mark_failed(self, ids: Sequence[int], error: str) -> None:
        await self._update_outbox(ids, "state = 'failed', error = ?", (error[:MAX_ERROR_CHARS],))

    async def _update_outbox(self, ids: Sequence[int], assignments: str, params: tuple[Any, ...]) -> None:
        if not ids:
            return
        now = _now_ms()
        rows = [(*params, now, i) for i in ids]
        await self._write(
            lambda conn: conn.executemany(f"UPDATE outbox SET {assignments}, updated_ms = ? WHERE id = ?", rows)
        )
