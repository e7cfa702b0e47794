"""Per-channel mutes of one service."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from services_bot.core.notifications import Mute
from services_bot.core.store.base import StoreBase
from services_bot.core.store.records import _now_ms, from_ms, to_ms


class Mutes(StoreBase):
    """Per-channel mutes of one service."""

    async def mute(self, channel: str, target: str, service_id: str, service_name: str | None, until: datetime) -> Mute:
        await self._write(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO mutes (channel, target, service_id, service_name, until_ms) "
                "VALUES (?, ?, ?, ?, ?)",
                (channel, target, service_id, service_name, to_ms(until)),
            )
        )
        return Mute(channel=channel, target=target, service_id=service_id, service_name=service_name, until=until)

    async def unmute(self, channel: str, target: str, service_id: str) -> bool:
        """True when a mute was lifted."""

        def work(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "DELETE FROM mutes WHERE channel = ? AND target = ? AND service_id = ?", (channel, target, service_id)
            )
            return cursor.rowcount > 0

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
        return [
            Mute(
                channel=r["channel"],
                target=r["target"],
                service_id=r["service_id"],
                service_name=r["service_name"],
                until=from_ms(r["until_ms"]),
            )
            for r in await self._read(sql, params)
        ]
