"""Channel subscriptions: what each channel is told about."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from services_bot.core.errors import QueryError
from services_bot.core.notifications import Subscription
from services_bot.core.store.base import StoreBase
from services_bot.core.store.records import _now_ms, from_ms, to_ms
from services_bot.core.store.rows import _subscription


class Subscriptions(StoreBase):
    """Channel subscriptions: what each channel is told about."""

    async def add_subscription(
        self,
        channel: str,
        statuses: Iterable[str],
        name_glob: str | None = None,
        infer_type: str | None = None,
        workspace_id: str | None = None,
        target: str | None = None,
        created_by: str | None = None,
        is_default: bool = False,
    ) -> Subscription:
        """A new subscription; an identical one already in the channel is returned instead of a duplicate."""
        wanted = Subscription(
            channel=channel,
            statuses=frozenset(statuses),
            name_glob=name_glob,
            infer_type=infer_type,
            workspace_id=workspace_id,
            target=target,
            created_by=created_by,
            created_at=from_ms(_now_ms()),
            is_default=is_default,
        )
        if not wanted.statuses:
            raise QueryError("A subscription needs at least one status.", hint="e.g. `watch failed,concerning`.")

        def work(conn: sqlite3.Connection) -> Subscription:
            for row in conn.execute("SELECT * FROM subscriptions WHERE channel = ? ORDER BY id", (channel,)):
                existing = _subscription(row)
                if existing.same_filter(wanted) and existing.is_default == is_default:
                    return existing
            return self._insert_subscription(conn, wanted)

        return await self._write(work)

    @staticmethod
    def _insert_subscription(conn: sqlite3.Connection, s: Subscription) -> Subscription:
        cursor = conn.execute(
            "INSERT INTO subscriptions (channel, statuses, name_glob, infer_type, workspace_id, target, created_by, "
            "created_ms, is_default) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                s.channel,
                ",".join(sorted(s.statuses)),
                s.name_glob,
                s.infer_type,
                s.workspace_id,
                s.target,
                s.created_by,
                to_ms(s.created_at),
                int(s.is_default),
            ),
        )
        return s.model_copy(update={"id": cursor.lastrowid})

    async def subscriptions(self, channel: str | None = None) -> list[Subscription]:
        """Oldest first, so the numbers ``watches`` shows (1-based positions) stay stable."""
        if channel is None:
            rows = await self._read("SELECT * FROM subscriptions ORDER BY channel, id")
        else:
            rows = await self._read("SELECT * FROM subscriptions WHERE channel = ? ORDER BY id", (channel,))
        return [_subscription(row) for row in rows]

    async def remove_subscription(self, channel: str, number: int) -> Subscription:
        """Remove the ``number``-th (1-based) subscription of ``channel``. Removing the default one is
        remembered, so a restart with the same settings does not bring it back."""

        def work(conn: sqlite3.Connection) -> Subscription:
            subs = [
                _subscription(r)
                for r in conn.execute("SELECT * FROM subscriptions WHERE channel = ? ORDER BY id", (channel,))
            ]
            if not 1 <= number <= len(subs):
                hint = (
                    f"This channel has {len(subs)} subscription(s); `watches` lists them with their numbers."
                    if subs
                    else "This channel has no subscriptions; `watch failed` adds one."
                )
                raise QueryError(f"No subscription number {number} in this channel.", hint=hint)
            chosen = subs[number - 1]
            conn.execute("DELETE FROM subscriptions WHERE id = ?", (chosen.id,))
            if chosen.is_default:
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    (f"default_removed:{channel}", ",".join(sorted(chosen.statuses))),
                )
            return chosen

        return await self._write(work)

    async def ensure_default_subscription(self, channel: str | None, statuses: Iterable[str]) -> Subscription | None:
        """Make the default subscription match the settings: create it, update its statuses, move it to a new
        channel, or drop it when no channel is set. Idempotent. A default a user removed stays removed until
        the configured statuses change."""
        wanted = frozenset(statuses)

        def work(conn: sqlite3.Connection) -> Subscription | None:
            defaults = [_subscription(r) for r in conn.execute("SELECT * FROM subscriptions WHERE is_default = 1")]
            keep: Subscription | None = None
            for sub in defaults:
                if sub.channel == channel and keep is None:
                    keep = sub
                else:
                    conn.execute("DELETE FROM subscriptions WHERE id = ?", (sub.id,))
            if channel is None or not wanted:
                return None
            csv = ",".join(sorted(wanted))
            if keep is not None:
                if keep.statuses != wanted:
                    conn.execute("UPDATE subscriptions SET statuses = ? WHERE id = ?", (csv, keep.id))
                    keep = keep.model_copy(update={"statuses": wanted})
                return keep
            removed = conn.execute("SELECT value FROM meta WHERE key = ?", (f"default_removed:{channel}",)).fetchone()
            if removed is not None and removed[0] == csv:
                return None
            conn.execute("DELETE FROM meta WHERE key = ?", (f"default_removed:{channel}",))
            return self._insert_subscription(
                conn, Subscription(channel=channel, statuses=wanted, created_at=from_ms(_now_ms()), is_default=True)
            )

        return await self._write(work)

    async def watched_statuses(self) -> frozenset[str]:
        """Every status some subscription watches (what a baseline with notifications has to record)."""
        rows = await self._read("SELECT DISTINCT statuses FROM subscriptions")
        return frozenset(s for row in rows for s in row[0].split(",") if s)
