"""Row mapping: SQLite rows to the notification models, and small helpers every table group uses."""

from __future__ import annotations

import sqlite3

from services_bot.core.errors import StoreError
from services_bot.core.notifications import AlertThread, Delivery, Notice, Subscription, Transition
from services_bot.core.store.records import from_ms


def _copy(error: StoreError) -> StoreError:
    """A fresh instance to raise: one kept and raised again would grow its traceback (and keep the frames of the
    call that failed, with their rows, alive)."""
    return StoreError(error.message, hint=error.hint, kind=error.kind)


def _statements(script: str) -> list[str]:
    """Split a migration into statements (``executescript`` would commit behind our transaction's back)."""
    return [s.strip() for s in script.split(";") if s.strip()]


def _subscription(row: sqlite3.Row) -> Subscription:
    return Subscription(
        id=row["id"],
        channel=row["channel"],
        statuses=frozenset(s for s in row["statuses"].split(",") if s),
        name_glob=row["name_glob"],
        infer_type=row["infer_type"],
        workspace_id=row["workspace_id"],
        target=row["target"],
        created_by=row["created_by"],
        created_at=from_ms(row["created_ms"]),
        is_default=bool(row["is_default"]),
    )


def _transition(row: sqlite3.Row, prefix: str = "") -> Transition:
    return Transition(
        id=row[f"{prefix}id"],
        poll_id=row[f"{prefix}poll_id"],
        target=row[f"{prefix}target"],
        project_id=row["project_id"],
        service_id=row["service_id"],
        service_name=row["service_name"],
        kind=row["kind"],
        from_status=row["from_status"],
        to_status=row["to_status"],
        transition_at=from_ms(row["transition_ms"]),
        observed_at=from_ms(row["observed_ms"]),
        error_msg=row["error_msg"],
        infer_type=row["infer_type"],
        workspace_id=row["workspace_id"],
        grouped=bool(row["grouped"]),
    )


def _delivery(row: sqlite3.Row) -> Delivery:
    return Delivery(
        id=row["id"],
        channel=row["channel"],
        state=row["state"],
        attempts=row["attempts"],
        next_attempt_at=from_ms(row["next_attempt_ms"]),
        created_at=from_ms(row["created_ms"]),
        poll_id=row["poll_id"],
        transition=_transition(row, "t_") if row["t_id"] is not None else None,
        notice=Notice.model_validate_json(row["notice"]) if row["notice"] else None,
        ts=row["ts"],
        thread_ts=row["thread_ts"],
        error=row["error"],
        first_attempt_at=from_ms(row["first_attempt_ms"]),
        check_posted=bool(row["check_posted"]),
    )


def _alert_thread(r: sqlite3.Row) -> AlertThread:
    return AlertThread(
        channel=r["channel"],
        target=r["target"],
        service_id=r["service_id"],
        root_ts=r["root_ts"],
        transition_id=r["transition_id"],
        delivery_id=r["delivery_id"],
        opened_at=from_ms(r["opened_ms"]),
        resolved=bool(r["resolved"]),
    )
