"""The watcher's SQLite store: last known state per service, transition history, subscriptions, mutes, the
delivery outbox, alert threads, acknowledgements and the audit trail.

One connection, owned by one dedicated worker thread (a single-thread executor): every call runs there, so
the event loop never blocks on disk and no two statements interleave. The file is in WAL mode so a reader
(``sqlite3`` in a shell, a backup) never blocks the watcher.

Nothing lost, nothing doubled: ``record_poll`` writes the new state, the transitions *and* their outbox rows
in one transaction, so a crash leaves either all of a poll or none of it. Delivery marks a row done only
after Slack said ok; rows left ``in_flight`` by a crash go back to pending (``requeue_in_flight``), to be
looked up in their channel before they are posted again.

Times are stored as integer epoch milliseconds (UTC).

Damage is never silent (the checks are in ``core.store_checks``): opening refuses a store that fails
``PRAGMA quick_check``, cannot be written, is missing or empty where the lock file says one was used, or (for
the lease holder) has a damaged write-ahead log; every call first checks that the path still names the file
that is open, so a store deleted or replaced under a running process stops being written (a copy of it is
saved) instead of filling a file no one will open again; and SQLite's errors about the file become a
``StoreError`` that names it, the problem and the fix, also kept for ``health()``.
"""

from __future__ import annotations

from services_bot.core.store.acks import Acknowledgements
from services_bot.core.store.audit import Audit
from services_bot.core.store.base import StoreBase
from services_bot.core.store.history import History
from services_bot.core.store.mutes import Mutes
from services_bot.core.store.outbox import Outbox
from services_bot.core.store.records import KnownService, TargetState, from_ms, to_ms
from services_bot.core.store.schema import MIGRATIONS
from services_bot.core.store.subscriptions import Subscriptions
from services_bot.core.store.threads import AlertThreads
from services_bot.core.store.watcher_state import WatcherState

__all__ = ["MIGRATIONS", "KnownService", "Store", "TargetState", "from_ms", "to_ms"]


class Store(WatcherState, Subscriptions, Mutes, Outbox, AlertThreads, History, Acknowledgements, Audit, StoreBase):
    """The store: one class over one file, its methods grouped by table in the modules of this package
    (``base`` the connection and checks, ``watcher_state``, ``subscriptions``, ``mutes``, ``outbox``, ``threads``,
    ``history``, ``acks``, ``audit``). ``async with Store(path) as store: ...``"""
