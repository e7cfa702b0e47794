"""Alert threads: the first alert of a service in a channel, for later ones to reply in."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

from services_bot.core.notifications import AlertThread
from services_bot.core.store.base import StoreBase
from services_bot.core.store.records import to_ms
from services_bot.core.store.rows import _alert_thread


class AlertThreads(StoreBase):
    """Alert threads: the first alert of a service in a channel, for later ones to reply in."""

    async def alert_thread(self, channel: str, target: str, service_id: str, since: datetime) -> AlertThread | None:
        """The newest thread of this service in this channel opened at or after ``since``."""
        rows = await self._read(
            "SELECT * FROM alert_threads WHERE channel = ? AND target = ? AND service_id = ? AND opened_ms >= ? "
            "ORDER BY opened_ms DESC, id DESC LIMIT 1",
            (channel, target, service_id, to_ms(since)),
        )
        if not rows:
            return None
        return _alert_thread(rows[0])

    async def open_alert_thread(
        self,
        channel: str,
        target: str,
        service_id: str,
        root_ts: str,
        transition_id: int | None,
        delivery_id: int | None = None,
        opened_at: datetime | None = None,
    ) -> AlertThread:
        thread = AlertThread(
            channel=channel,
            target=target,
            service_id=service_id,
            root_ts=root_ts,
            transition_id=transition_id,
            delivery_id=delivery_id,
            opened_at=opened_at or datetime.now(UTC),
        )
        await self._write(lambda conn: self._insert_alert_thread(conn, thread))
        return thread

    @staticmethod
    def _insert_alert_thread(conn: sqlite3.Connection, thread: AlertThread) -> None:
        conn.execute(
            "INSERT INTO alert_threads (channel, target, service_id, root_ts, transition_id, delivery_id, "
            "opened_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                thread.channel,
                thread.target,
                thread.service_id,
                thread.root_ts,
                thread.transition_id,
                thread.delivery_id,
                to_ms(thread.opened_at),
            ),
        )

    async def resolve_alert_thread(
        self, channel: str, target: str, service_id: str, root_ts: str | None = None
    ) -> bool:
        """Mark the service's open thread(s) in the channel resolved (only the one with ``root_ts`` if given)."""
        sql = (
            "UPDATE alert_threads SET resolved = 1 WHERE channel = ? AND target = ? AND service_id = ? AND resolved = 0"
        )
        params: list[Any] = [channel, target, service_id]
        if root_ts is not None:
            sql += " AND root_ts = ?"
            params.append(root_ts)
        return await self._write(lambda conn: conn.execute(sql, params).rowcount > 0)

    async def thread_rooted_at(self, channel: str, transition_id: int) -> AlertThread | None:
        """The alert thread whose first alert carried this transition in this channel, if it opened one."""
        rows = await self._read(
            "SELECT * FROM alert_threads WHERE channel = ? AND transition_id = ? ORDER BY id DESC LIMIT 1",
            (channel, transition_id),
        )
        if not rows:
            return None
        return _alert_thread(rows[0])

    async def set_alert_thread_resolved(self, channel: str, root_ts: str, resolved: bool) -> None:
        """Resolved follows the thread's latest change: a relapse after a recovery opens it again."""
        await self._write(
            lambda conn: conn.execute(
                "UPDATE alert_threads SET resolved = ? WHERE channel = ? AND root_ts = ?",
                (int(resolved), channel, root_ts),
            )
        )
