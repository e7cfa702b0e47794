"""The store's part in alert delivery, fast: the order a service's rows are handed out in and the bookkeeping
of rows a crash left in flight (SQLite in tmp_path). The end-to-end behaviour is in test_delivery_hardening.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.store import Store
from tests.test_store import known, transition

NOW = datetime.now(UTC)


async def test_a_service_row_waits_for_its_earlier_row_in_that_channel_only(tmp_path: Path) -> None:
    async with Store(tmp_path / "bot.db") as store:
        await store.add_subscription("C1", {"failed"})
        await store.add_subscription("C2", {"failed"})
        await store.record_poll("prod", "p1", [known("a", "failed")], [], [transition("a")], None)
        await store.record_poll("prod", "p2", [known("a"), known("b", "failed")], [], [
            transition("a", "running", from_status="failed"), transition("b"),
        ], None)  # fmt: skip
        due = await store.due_deliveries()
        first = {(d.channel, d.transition.service_id, d.transition.to_status) for d in due if d.transition}
        assert first == {("C1", "a", "failed"), ("C2", "a", "failed"), ("C1", "b", "failed"), ("C2", "b", "failed")}
        c1_a = next(d for d in due if d.channel == "C1" and d.transition and d.transition.service_id == "a")
        await store.mark_in_flight([c1_a.id])
        await store.mark_retry([c1_a.id], NOW + timedelta(minutes=1), "fatal_error (HTTP 500)")
        later = await store.due_deliveries()
        assert not [d for d in later if d.channel == "C1" and d.transition and d.transition.service_id == "a"]
        c2_a = next(d for d in later if d.channel == "C2" and d.transition and d.transition.service_id == "a")
        await store.mark_done([c2_a.id], "1.0")
        recoveries = [d for d in await store.due_deliveries() if d.transition and d.transition.to_status == "running"]
        assert [d.channel for d in recoveries] == ["C2"], "C2's recovery may go; C1's waits for C1's failure"
        assert await store.undelivered_of_poll("C1", "p2") == 2


async def test_rows_left_in_flight_come_back_to_be_looked_up_first(tmp_path: Path) -> None:
    async with Store(tmp_path / "bot.db") as store:
        await store.add_subscription("C1", {"failed"})
        await store.record_poll("prod", "p1", [], [], [transition("a")], None)
        [row] = await store.due_deliveries()
        await store.mark_in_flight([row.id])
        await store.mark_in_flight([row.id])
        assert await store.requeue_in_flight("requeued after restart") == 1
        [again] = await store.due_deliveries()
        assert again.check_posted and again.attempts == 2 and again.first_attempt_at is not None
        assert (await store.undelivered())[0] == 1
        await store.mark_checked([again.id])
        [checked] = await store.due_deliveries()
        assert not checked.check_posted and checked.first_attempt_at == again.first_attempt_at
