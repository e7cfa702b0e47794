"""The audit trail: every state-changing action (watch, unwatch, mute, unmute, acknowledge), appended."""

from __future__ import annotations

from datetime import datetime

from services_bot.core.notifications import AuditAction, AuditEntry
from services_bot.core.store.base import StoreBase
from services_bot.core.store.records import _now_ms, from_ms, to_ms

MAX_DETAIL_CHARS = 500


class Audit(StoreBase):
    """The audit trail: every state-changing action, appended, never edited."""

    async def audit(
        self,
        action: AuditAction,
        channel: str,
        user: str,
        *,
        target: str | None = None,
        service_id: str | None = None,
        detail: str = "",
    ) -> None:
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO audit (at_ms, channel, user, action, target, service_id, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (_now_ms(), channel, user, action, target, service_id, detail[:MAX_DETAIL_CHARS]),
            )
        )

    async def audit_entries(self, since: datetime, channel: str | None = None, limit: int = 200) -> list[AuditEntry]:
        """Newest first, from ``since`` (of one channel, or every channel)."""
        sql = "SELECT * FROM audit WHERE at_ms >= ?" + (" AND channel = ?" if channel else "")
        params: list[object] = [to_ms(since), *([channel] if channel else [])]
        rows = await self._read(sql + " ORDER BY at_ms DESC, id DESC LIMIT ?", [*params, limit])
        return [
            AuditEntry(
                id=r["id"],
                at=from_ms(r["at_ms"]),
                channel=r["channel"],
                user=r["user"],
                action=r["action"],
                target=r["target"],
                service_id=r["service_id"],
                detail=r["detail"],
            )
            for r in rows
        ]

    async def audit_count(self, since: datetime, channel: str | None = None) -> int:
        sql = "SELECT COUNT(*) FROM audit WHERE at_ms >= ?" + (" AND channel = ?" if channel else "")
        return int((await self._read(sql, [to_ms(since), *([channel] if channel else [])]))[0][0])
