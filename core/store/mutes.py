"""Per-channel mutes of one service: set (by whom, when), lifted, listed, and ended when they expire."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

from services_bot.core.notifications import Mute, Notice
from services_bot.core.store.base import StoreBase
from services_bot.core.store.records import _now_ms, from_ms, to_ms


def _mute(r: sqlite3.Row) -> Mute:
    return Mute(
        channel=r["channel"],
        target=r["target"],
        service_id=r["service_id"],
        service_name=r["service_name"],
        until=from_ms(r["until_ms"]),
        set_by=r["set_by"],
        set_at=from_ms(r["set_ms"]),
    )


class Mutes(StoreBase):
    """Per-channel mutes of one service."""

    async def mute(
        self,
        channel: str,
        target: str,
        service_id: str,
        service_name: str | None,
        until: datetime,
        set_by: str | None = None,
    ) -> Mute:
        now = _now_ms()
        await self._write(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO mutes (channel, target, service_id, service_name, until_ms, set_by, set_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (channel, target, service_id, service_name, to_ms(until), set_by, now),
            )
        )
        return Mute(
            channel=channel,
            target=target,
            service_id=service_id,
            service_name=service_name,
            until=until,
            set_by=set_by,
            set_at=from_ms(now),
        )

    async def unmute(self, channel: str, target: str, service_id: str) -> Mute | None:
        """The active mute lifted, or None when there was none."""

        def work(conn: sqlite3.Connection) -> Mute | None:
            row = conn.execute(
                "SELECT * FROM mutes WHERE channel = ? AND target = ? AND service_id = ? AND until_ms > ?",
                (channel, target, service_id, _now_ms()),
            ).fetchone()
            conn.execute(
                "DELETE FROM mutes WHERE channel = ? AND target = ? AND service_id = ?", (channel, target, service_id)
            )
            return _mute(row) if row is not None else None

        return await self._write(work)

    async def is_muted(self, channel: str, target: str, service_id: str, at: datetime | None = None) -> bool:
        rows = await self._read(
            "SELECT 1 FROM mutes WHERE channel = ? AND target = ? AND service_id = ? AND until_ms > ?",
            (channel, target, service_id, to_ms(at) if at else _now_ms()),
        )
        return bool(rows)

    async def mutes(self, channel: str | None = None, at: datetime | None = None) -> list[Mute]:
        """Active mutes (of one channel), soonest to end first."""
        sql = "SELECT * FROM mutes WHERE until_ms > ?" + (" AND channel = ?" if channel else "") + " ORDER BY until_ms"
        params: tuple[Any, ...] = (to_ms(at) if at else _now_ms(), *([channel] if channel else []))
        return [_mute(r) for r in await self._read(sql, params)]

    async def end_expired_mutes(self, now: datetime | None = None) -> int:
        """Mutes whose time is up become a "mute ended" notice for their channel (posted in the service's
        alert thread) and go, in one transaction: each end is announced once, crash or not. Returns how many."""
        now_ms = to_ms(now) if now else _now_ms()
        if not await self._read("SELECT 1 FROM mutes WHERE until_ms <= ? LIMIT 1", (now_ms,)):
            return 0  # the common case, asked every delivery pass: a read, no write transaction

        def work(conn: sqlite3.Connection) -> int:
            expired = [_mute(r) for r in conn.execute("SELECT * FROM mutes WHERE until_ms <= ?", (now_ms,))]
            for m in expired:
                notice = Notice(
                    kind="mute_ended",
                    target=m.target,
                    service_id=m.service_id,
                    channel=m.channel,
                    text=m.service_name or m.service_id,
                    observed_at=m.until.astimezone(UTC),
                )
                conn.execute(
                    "INSERT INTO outbox (channel, notice, next_attempt_ms, created_ms, updated_ms) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (m.channel, notice.model_dump_json(), now_ms, now_ms, now_ms),
                )
                conn.execute(
                    "DELETE FROM mutes WHERE channel = ? AND target = ? AND service_id = ? AND until_ms <= ?",
                    (m.channel, m.target, m.service_id, now_ms),
                )
            return len(expired)

        return await self._write(work)
