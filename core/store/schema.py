"""The schema: migrations applied in order (``PRAGMA user_version`` counts them), and module constants."""

from __future__ import annotations

import logging
from typing import TypeVar

log = logging.getLogger("services_bot.store")

T = TypeVar("T")
MAX_ERROR_CHARS = 2000

MIGRATIONS: list[str] = [
    # 1: the whole first schema
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE targets (
        name TEXT PRIMARY KEY,
        watermark_ms INTEGER,
        baselined_ms INTEGER,
        last_poll_id TEXT,
        last_poll_ms INTEGER
    );
    CREATE TABLE services (
        target TEXT NOT NULL,
        service_id TEXT NOT NULL,
        service_name TEXT,
        status TEXT,
        transition_ms INTEGER,
        infer_type TEXT,
        workspace_id TEXT,
        PRIMARY KEY (target, service_id)
    ) WITHOUT ROWID;
    CREATE TABLE transitions (
        id INTEGER PRIMARY KEY,
        poll_id TEXT,
        target TEXT NOT NULL,
        project_id TEXT,
        service_id TEXT NOT NULL,
        service_name TEXT,
        kind TEXT NOT NULL,
        from_status TEXT,
        to_status TEXT,
        transition_ms INTEGER,
        observed_ms INTEGER NOT NULL,
        error_msg TEXT,
        infer_type TEXT,
        workspace_id TEXT
    );
    CREATE INDEX transitions_by_time ON transitions (observed_ms);
    CREATE INDEX transitions_by_service ON transitions (service_id, observed_ms);
    CREATE INDEX transitions_by_name ON transitions (service_name, observed_ms);
    CREATE TABLE subscriptions (
        id INTEGER PRIMARY KEY,
        channel TEXT NOT NULL,
        statuses TEXT NOT NULL,
        name_glob TEXT,
        infer_type TEXT,
        workspace_id TEXT,
        target TEXT,
        created_by TEXT,
        created_ms INTEGER NOT NULL,
        is_default INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX subscriptions_by_channel ON subscriptions (channel, id);
    CREATE TABLE mutes (
        channel TEXT NOT NULL,
        target TEXT NOT NULL,
        service_id TEXT NOT NULL,
        service_name TEXT,
        until_ms INTEGER NOT NULL,
        PRIMARY KEY (channel, target, service_id)
    ) WITHOUT ROWID;
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        channel TEXT NOT NULL,
        poll_id TEXT,
        transition_id INTEGER REFERENCES transitions (id),
        notice TEXT,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER NOT NULL,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        ts TEXT,
        thread_ts TEXT,
        error TEXT
    );
    CREATE INDEX outbox_due ON outbox (state, next_attempt_ms, id);
    CREATE TABLE alert_threads (
        id INTEGER PRIMARY KEY,
        channel TEXT NOT NULL,
        target TEXT NOT NULL,
        service_id TEXT NOT NULL,
        root_ts TEXT NOT NULL,
        transition_id INTEGER,
        delivery_id INTEGER,
        opened_ms INTEGER NOT NULL,
        resolved INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX alert_threads_by_service ON alert_threads (channel, target, service_id, opened_ms);
    """,
    # 2: transitions that must be delivered grouped (a confirmed mass deletion)
    "ALTER TABLE transitions ADD COLUMN grouped INTEGER NOT NULL DEFAULT 0",
    # 3: the store's identity, recorded in the lease's lock file so a restart notices a store gone missing
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', lower(hex(randomblob(16))))",
    # 4: delivery after a crash and in order: when a row was first tried (the channel history is read back to
    # it), rows to look up in the channel before they are posted again, and an index of what is undelivered
    # (a service's rows wait for its earlier ones; health reports the backlog)
    """
    ALTER TABLE outbox ADD COLUMN first_attempt_ms INTEGER;
    ALTER TABLE outbox ADD COLUMN check_posted INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX outbox_undelivered ON outbox (channel, id) WHERE state IN ('pending', 'in_flight');
    """,
    # 5: who set a mute and when (`mutes` lists them), acknowledgements of alerts, and the audit trail of every
    # state-changing action (`audit`)
    """
    ALTER TABLE mutes ADD COLUMN set_by TEXT;
    ALTER TABLE mutes ADD COLUMN set_ms INTEGER;
    CREATE TABLE acknowledgements (
        transition_id INTEGER NOT NULL,
        channel TEXT NOT NULL,
        user TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        PRIMARY KEY (transition_id, channel, user)
    ) WITHOUT ROWID;
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        channel TEXT NOT NULL,
        user TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        service_id TEXT,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_by_time ON audit (at_ms);
    """,
]
"""Schema steps; ``PRAGMA user_version`` counts the ones applied. Append, never edit an applied step."""
