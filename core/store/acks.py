"""Acknowledgements of alerts: who said "I'm on it" about a transition in a channel, and when."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from services_bot.core.notifications import Acknowledgement, Transition
from services_bot.core.store.base import StoreBase
from services_bot.core.store.records import _now_ms, from_ms
from services_bot.core.store.rows import _transition


def _ack(r: sqlite3.Row) -> Acknowledgement:
    return Acknowledgement(
        transition_id=r["transition_id"], channel=r["channel"], user=r["user"], at=from_ms(r["at_ms"])
    )


class Acknowledgements(StoreBase):
    """Acknowledgements of alerts: who said "I'm on it" about a transition in a channel, and when."""

    async def was_posted(self, channel: str, transition_id: int) -> bool:
        """Whether this transition's alert went out in this channel: a click acting on any other pair is forged."""
        rows = await self._read(
            "SELECT 1 FROM outbox WHERE channel = ? AND transition_id = ? AND state = 'done' LIMIT 1",
            (channel, transition_id),
        )
        return bool(rows)

    async def acknowledge(self, channel: str, transition_id: int, user: str) -> tuple[bool, list[Acknowledgement]]:
        """Record ``user``'s acknowledgement (once per person); returns whether it is new, and all of them."""

        def work(conn: sqlite3.Connection) -> tuple[bool, list[Acknowledgement]]:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO acknowledgements (transition_id, channel, user, at_ms) VALUES (?, ?, ?, ?)",
                (transition_id, channel, user, _now_ms()),
            )
            rows = conn.execute(
                "SELECT * FROM acknowledgements WHERE transition_id = ? AND channel = ? ORDER BY at_ms, user",
                (transition_id, channel),
            ).fetchall()
            return cursor.rowcount > 0, [_ack(r) for r in rows]

        return await self._write(work)

    async def acknowledgements(
        self, transition_ids: Iterable[int], channel: str | None = None
    ) -> dict[int, list[Acknowledgement]]:
        """Acknowledgements by transition id, oldest first (of one channel, or of every channel)."""
        ids = sorted(set(transition_ids))
        if not ids:
            return {}
        sql = f"SELECT * FROM acknowledgements WHERE transition_id IN ({','.join('?' * len(ids))})"
        params: list[object] = list(ids)
        if channel is not None:
            sql += " AND channel = ?"
            params.append(channel)
        found: dict[int, list[Acknowledgement]] = {}
        for r in await self._read(sql + " ORDER BY at_ms, user", params):
            found.setdefault(r["transition_id"], []).append(_ack(r))
        return found

    async def thread_transitions(self, channel: str, target: str, service_id: str, after_id: int) -> list[Transition]:
        """The later transitions of a service alerted in this channel after its first alert, oldest first (the
        newest 50): what its thread says, so the first alert can show the thread's state."""
        rows = await self._read(
            "SELECT * FROM (SELECT DISTINCT t.* FROM outbox o JOIN transitions t ON t.id = o.transition_id "
            "WHERE o.channel = ? AND o.state = 'done' AND t.target = ? AND t.service_id = ? AND t.id > ? "
            "ORDER BY t.id DESC LIMIT 50) ORDER BY id",
            (channel, target, service_id, after_id),
        )
        return [_transition(r) for r in rows]

    async def thread_of_transition(self, channel: str, transition_id: int) -> tuple[str, str | None] | None:
        """(ts, thread_ts) of the message that carried this transition's alert in this channel."""
        rows = await self._read(
            "SELECT ts, thread_ts FROM outbox WHERE channel = ? AND transition_id = ? AND state = 'done' "
            "ORDER BY id DESC LIMIT 1",
            (channel, transition_id),
        )
        return (rows[0][0], rows[0][1]) if rows and rows[0][0] else None
