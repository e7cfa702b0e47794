"""The watcher's side: last known state per target and service, and ``record_poll``, which writes a poll's
state, transitions and outbox rows in one transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from services_bot.core.notifications import Notice, Transition, route
from services_bot.core.store.base import StoreBase
from services_bot.core.store.records import KnownService, TargetState, _now_ms, to_ms
from services_bot.core.store.rows import _subscription
from services_bot.core.store.schema import MAX_ERROR_CHARS


class WatcherState(StoreBase):
    """The watcher's side: last known state per target and service, and ``record_poll``, which writes a poll's"""

    async def target_state(self, target: str) -> TargetState:
        rows = await self._read("SELECT * FROM targets WHERE name = ?", (target,))
        if not rows:
            return TargetState(target, None, False, None)
        row = rows[0]
        return TargetState(target, row["watermark_ms"], row["baselined_ms"] is not None, row["last_poll_id"])

    async def watermark(self, target: str) -> int | None:
        """The newest ``transition_at`` (epoch ms, API time) seen for ``target``."""
        return (await self.target_state(target)).watermark_ms

    async def known_services(self, target: str) -> dict[str, KnownService]:
        def work() -> dict[str, KnownService]:
            cursor = self.conn.execute(
                "SELECT service_id, service_name, status, transition_ms, infer_type, workspace_id "
                "FROM services WHERE target = ?",
                (target,),
            )
            return {row[0]: KnownService(*row) for row in cursor}

        return await self._run(work)

    async def record_poll(
        self,
        target: str,
        poll_id: str,
        upserts: Iterable[KnownService],
        deletions: Iterable[str],
        transitions: Sequence[Transition],
        watermark: int | None,
        baseline: bool = False,
    ) -> list[Transition]:
        """One transaction: new state, transitions, one outbox row per (matching channel, transition) unless
        the service is muted there, and the target's watermark. Returns the transitions with their ids."""
        upsert_rows = [
            (target, k.service_id, k.service_name, k.status, k.transition_ms, k.infer_type, k.workspace_id)
            for k in upserts
        ]
        deleted = [(target, service_id) for service_id in deletions]
        now = _now_ms()

        def work(conn: sqlite3.Connection) -> list[Transition]:
            conn.executemany(
                "INSERT OR REPLACE INTO services (target, service_id, service_name, status, transition_ms, "
                "infer_type, workspace_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                upsert_rows,
            )
            conn.executemany("DELETE FROM services WHERE target = ? AND service_id = ?", deleted)
            stored = [self._insert_transition(conn, t, poll_id) for t in transitions]
            if stored:
                self._insert_outbox(conn, stored, poll_id, now)
            conn.execute(
                "INSERT INTO targets (name, watermark_ms, baselined_ms, last_poll_id, last_poll_ms) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "watermark_ms = COALESCE(excluded.watermark_ms, targets.watermark_ms), "
                "baselined_ms = COALESCE(targets.baselined_ms, excluded.baselined_ms), "
                "last_poll_id = excluded.last_poll_id, last_poll_ms = excluded.last_poll_ms",
                (target, watermark, now if baseline else None, poll_id, now),
            )
            return stored

        return await self._write(work)

    @staticmethod
    def _insert_transition(conn: sqlite3.Connection, t: Transition, poll_id: str) -> Transition:
        error = t.error_msg[:MAX_ERROR_CHARS] if t.error_msg else None
        cursor = conn.execute(
            "INSERT INTO transitions (poll_id, target, project_id, service_id, service_name, kind, from_status, "
            "to_status, transition_ms, observed_ms, error_msg, infer_type, workspace_id, grouped) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                poll_id,
                t.target,
                t.project_id,
                t.service_id,
                t.service_name,
                t.kind,
                t.from_status,
                t.to_status,
                to_ms(t.transition_at),
                to_ms(t.observed_at),
                error,
                t.infer_type,
                t.workspace_id,
                int(t.grouped),
            ),
        )
        return t.model_copy(update={"id": cursor.lastrowid, "poll_id": poll_id, "error_msg": error})

    def _insert_outbox(self, conn: sqlite3.Connection, stored: list[Transition], poll_id: str, now: int) -> None:
        subscriptions = [_subscription(row) for row in conn.execute("SELECT * FROM subscriptions ORDER BY id")]
        muted = {
            (row[0], row[1], row[2])
            for row in conn.execute("SELECT channel, target, service_id FROM mutes WHERE until_ms > ?", (now,))
        }
        sees = self.channel_sees
        rows = [
            (channel, poll_id, t.id, now, now, now)
            for channel, t in route(stored, subscriptions)
            if (channel, t.target, t.service_id) not in muted and (sees is None or sees(channel, t.target))
        ]
        conn.executemany(
            "INSERT INTO outbox (channel, poll_id, transition_id, next_attempt_ms, created_ms, updated_ms) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )

    async def add_notice(self, channel: str, notice: Notice, poll_id: str | None = None) -> int:
        """An outbox row carrying an operator notice; returns its id."""
        now = _now_ms()
        body = notice.model_dump_json()

        def work(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "INSERT INTO outbox (channel, poll_id, notice, next_attempt_ms, created_ms, updated_ms) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (channel, poll_id, body, now, now, now),
            )
            return int(cursor.lastrowid or 0)

        return await self._write(work)
