"""The watcher's SQLite store: last known state per service, transition history, subscriptions, mutes, the
delivery outbox and alert threads.

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

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from services_bot.core.errors import QueryError, StoreError
from services_bot.core.notifications import AlertThread, Delivery, Mute, Notice, Subscription, Transition, route
from services_bot.core.store_checks import (
    empty_problem,
    identity,
    integrity_problem,
    lost_error,
    lost_kind,
    missing_problem,
    problem_of,
    rescue_path,
    wal_problem,
)

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
]
"""Schema steps; ``PRAGMA user_version`` counts the ones applied. Append, never edit an applied step."""


@dataclass(frozen=True, slots=True)
class KnownService:
    """The last state seen of one service: small on purpose, the watcher keeps one per service in memory."""

    service_id: str
    service_name: str | None
    status: str | None
    transition_ms: int | None
    infer_type: str | None
    workspace_id: str | None


@dataclass(frozen=True)
class TargetState:
    """What the store remembers of one target between runs."""

    name: str
    watermark_ms: int | None
    baselined: bool
    last_poll_id: str | None


def to_ms(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def from_ms(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def _now_ms() -> int:
    return to_ms(datetime.now(UTC)) or 0


class Store:
    """Async façade over one SQLite file. ``async with Store(path) as store: ...``

    ``writable=False`` skips the write probe at open (a reader such as ``services-bot mcp``); ``expected_id`` is
    the store id the lease's lock file recorded (a store was used at this path); ``check_wal`` checks the
    write-ahead log before opening, which only the one writer may do (another's appends can look damaged).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        history_days: int = 30,
        busy_timeout_ms: int = 5000,
        writable: bool = True,
        expected_id: str | None = None,
        check_wal: bool = False,
    ) -> None:
        self.path = Path(path)
        self.history_days = history_days
        self.busy_timeout_ms = busy_timeout_ms
        self.writable = writable
        self.expected_id = expected_id
        self.check_wal = check_wal
        self.store_id: str | None = None
        self.rescued_to: Path | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._problem: StoreError | None = None
        self._lost: StoreError | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> Store:
        if self._executor is not None:
            return self
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="services-bot-store")
        try:
            await self._call(self._open_sync)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        return self

    async def close(self) -> None:
        if self._executor is None:
            return
        try:
            await self._call(self._close_sync)
        finally:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def __aenter__(self) -> Store:
        return await self.open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Every call on the store: in its thread, after checking the file is still the one open."""
        return await self._call(self._guarded, fn, *args)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError("the store is not open; call `await store.open()` first")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _guarded(self, fn: Callable[..., T], *args: Any) -> T:
        self._check_identity()
        try:
            return fn(*args)
        except sqlite3.Error as exc:
            error = problem_of(self.path, exc, self.busy_timeout_ms / 1000)
            if error is None:
                raise
            if self._problem is None or self._problem.kind != error.kind:
                log.error("store problem", extra={"store": str(self.path), "problem": error.message})
            self._problem = _copy(error)
            raise error from exc

    def _open_sync(self) -> None:
        problem = missing_problem(self.path, self.expected_id) or (wal_problem(self.path) if self.check_wal else None)
        if problem is not None:
            raise problem
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.path, isolation_level=None)  # autocommit; transactions are explicit
        except sqlite3.Error as exc:
            raise problem_of(self.path, exc, self.busy_timeout_ms / 1000) or exc from None
        try:
            self._prepare(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise problem_of(self.path, exc, self.busy_timeout_ms / 1000) or exc from None
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Settings, then the checks that must refuse a store before anything relies on it, then migrations."""
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        self._identity = identity(self.path)
        empty = conn.execute("PRAGMA user_version").fetchone()[0] == 0
        if empty and self.expected_id:
            raise empty_problem(self.path, self.expected_id)
        damage = integrity_problem(conn, self.path)
        if damage is not None:
            raise damage
        self._migrate(conn)
        if self.writable:
            self._probe_write(conn)
        row = conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
        self.store_id = row[0] if row else None
        if self.expected_id and self.store_id != self.expected_id:
            log.warning(
                "a different store than last time",
                extra={"store": str(self.path), "store_id": self.store_id, "expected": self.expected_id},
            )

    @staticmethod
    def _probe_write(conn: sqlite3.Connection) -> None:
        """One small write at open: a read-only file opens without complaint and fails only at its first write,
        which would be the first alert or the first ``watch``."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('opened_ms', ?)", (str(_now_ms()),))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise RuntimeError(f"the store's schema version {version} is newer than this program ({len(MIGRATIONS)})")
        for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _statements(step):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            log.info("store migrated", extra={"schema_version": number})

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- checks ------------------------------------------------------------------------------------

    def _check_identity(self) -> None:
        """Refuse to go on once the path names another file, or none: writes would go to a file that is gone."""
        if self._lost is not None:
            raise _copy(self._lost)
        if self._identity is None:
            return
        try:
            kind = lost_kind(self.path, self._identity)
        except OSError as exc:
            self._problem = StoreError(
                f"The store {self.path} cannot be reached ({exc.strerror or exc}).",
                hint=f"Check the disk or volume that holds {self.path.parent}.",
                kind="unreachable",
            )
            raise _copy(self._problem) from None
        if self._problem is not None and self._problem.kind == "unreachable":
            self._problem = None
        if kind is not None:
            self._lost = self._lose(kind)
            raise _copy(self._lost)

    def _lose(self, kind: str) -> StoreError:
        """Save a copy of the store this process still has open (``VACUUM INTO`` a new file beside it), so what it
        recorded is not lost with it; from now on nothing is written."""
        target = rescue_path(self.path)
        failed: str | None = None
        try:
            self.conn.execute("VACUUM INTO ?", (str(target),))
            self.rescued_to = target
        except sqlite3.Error as exc:
            failed = str(exc)[:300]
            target.unlink(missing_ok=True)
        error = lost_error(self.path, kind, self.rescued_to, failed)
        log.error(
            "store lost", extra={"store": str(self.path), "kind": kind, "rescued_to": str(self.rescued_to or "")}
        )
        return error

    @property
    def problem(self) -> StoreError | None:
        """What is wrong with the store now: its file is gone (for good), or the last call failed on it."""
        return self._lost or self._problem

    @property
    def lost(self) -> bool:
        """The path no longer names the open file: nothing is written any more, until a restart."""
        return self._lost is not None

    async def check(self) -> StoreError | None:
        """Check now that the file is still there (notices a deletion while nothing is being written)."""
        with contextlib.suppress(StoreError):  # kept in self.problem
            await self._run(lambda: None)
        return self.problem

    def health(self) -> dict[str, Any]:
        """A JSON-ready snapshot for ``/healthz``: the file, its id, and its problem with the fix, if any."""
        problem = self.problem
        return {
            "path": str(self.path),
            "id": self.store_id,
            "problem": problem.message if problem else None,
            "fix": problem.hint if problem else None,
            "rescued_to": str(self.rescued_to) if self.rescued_to else None,
        }

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the store is not open")
        return self._conn

    def _tx(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one write transaction (called in the worker thread)."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(conn)
            conn.execute("COMMIT")  # in WAL mode the frames are written here: a full disk fails the COMMIT
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if self._problem is not None and self._problem.kind != "damaged":
            self._problem = None  # a write went through: the disk has room again, the lock was let go, ...
        return result

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await self._run(self._tx, work)

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return await self._run(lambda: self.conn.execute(sql, params).fetchall())

    # -- meta --------------------------------------------------------------------------------------

    async def schema_version(self) -> int:
        return int((await self._read("PRAGMA user_version"))[0][0])

    async def journal_mode(self) -> str:
        return str((await self._read("PRAGMA journal_mode"))[0][0])

    async def get_meta(self, key: str) -> str | None:
        rows = await self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    async def set_meta(self, key: str, value: str | None) -> None:
        def work(conn: sqlite3.Connection) -> None:
            if value is None:
                conn.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

        await self._write(work)

    # -- watcher side ------------------------------------------------------------------------------

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
        rows = [
            (channel, poll_id, t.id, now, now, now)
            for channel, t in route(stored, subscriptions)
            if (channel, t.target, t.service_id) not in muted
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

    # -- subscriptions -----------------------------------------------------------------------------

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

    # -- mutes -------------------------------------------------------------------------------------

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

    # -- outbox ------------------------------------------------------------------------------------

    _DELIVERY_SQL = (
        "SELECT o.*, t.id AS t_id, t.poll_id AS t_poll_id, t.target AS t_target, t.project_id, t.service_id, "
        "t.service_name, t.kind, t.from_status, t.to_status, t.transition_ms, t.observed_ms, t.error_msg, "
        "t.infer_type, t.workspace_id, t.grouped FROM outbox o LEFT JOIN transitions t ON t.id = o.transition_id"
    )

    _UNDELIVERED = "state IN ('pending', 'in_flight')"

    async def due_deliveries(self, now: datetime | None = None, limit: int = 100) -> list[Delivery]:
        """Pending rows whose time has come, oldest first; a service's row is not due while an earlier row of
        that service in that channel is undelivered, so a recovery never overtakes the failure it resolves."""
        rows = await self._read(
            f"{self._DELIVERY_SQL} WHERE o.state = 'pending' AND o.next_attempt_ms <= ? AND NOT EXISTS ("
            "SELECT 1 FROM outbox p JOIN transitions pt ON pt.id = p.transition_id "
            f"WHERE p.channel = o.channel AND p.id < o.id AND p.{self._UNDELIVERED} "
            "AND pt.service_id = t.service_id AND pt.target = t.target) ORDER BY o.id LIMIT ?",
            (to_ms(now) if now else _now_ms(), limit),
        )
        return [_delivery(r) for r in rows]

    async def in_flight_deliveries(self) -> list[Delivery]:
        """Rows a previous run started posting but never confirmed (reconcile them after a crash)."""
        return [
            _delivery(r) for r in await self._read(f"{self._DELIVERY_SQL} WHERE o.state = 'in_flight' ORDER BY o.id")
        ]

    async def requeue_in_flight(self, reason: str) -> int:
        """After a crash: rows left in flight may have reached Slack. They go back to pending, marked to be
        looked up in their channel before any new post; returns how many."""
        now = _now_ms()
        return await self._write(
            lambda conn: conn.execute(
                "UPDATE outbox SET state = 'pending', check_posted = 1, next_attempt_ms = ?, error = ?, "
                "updated_ms = ? WHERE state = 'in_flight'",
                (now, reason[:MAX_ERROR_CHARS], now),
            ).rowcount
        )

    async def undelivered(self) -> tuple[int, datetime | None]:
        """How many rows are not delivered yet, and when the oldest of them was queued (health, metrics)."""
        rows = await self._read(f"SELECT COUNT(*), MIN(created_ms) FROM outbox WHERE {self._UNDELIVERED}")
        return int(rows[0][0]), from_ms(rows[0][1])

    async def undelivered_of_poll(self, channel: str, poll_id: str) -> int:
        """Undelivered transition rows of one poll in one channel: a grouped alert waits until all are due."""
        rows = await self._read(
            f"SELECT COUNT(*) FROM outbox WHERE channel = ? AND {self._UNDELIVERED} AND poll_id = ? "
            "AND transition_id IS NOT NULL",
            (channel, poll_id),
        )
        return int(rows[0][0])

    async def failed_since(self, since: datetime) -> int:
        """Rows that ended failed (Slack refused them for good) since ``since``."""
        rows = await self._read(
            "SELECT COUNT(*) FROM outbox WHERE state = 'failed' AND updated_ms >= ?", (to_ms(since),)
        )
        return int(rows[0][0])

    async def deliveries(self, channel: str | None = None, state: str | None = None) -> list[Delivery]:
        """Outbox rows, oldest first (for inspection, metrics and tests)."""
        clauses, params = [], []
        if channel is not None:
            clauses.append("o.channel = ?")
            params.append(channel)
        if state is not None:
            clauses.append("o.state = ?")
            params.append(state)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return [_delivery(r) for r in await self._read(f"{self._DELIVERY_SQL}{where} ORDER BY o.id", params)]

    async def mark_in_flight(self, ids: Sequence[int]) -> None:
        await self._update_outbox(
            ids,
            "state = 'in_flight', attempts = attempts + 1, first_attempt_ms = COALESCE(first_attempt_ms, ?)",
            (_now_ms(),),
        )

    async def mark_done(
        self, ids: Sequence[int], ts: str | None, thread_ts: str | None = None, opens: AlertThread | None = None
    ) -> None:
        """Rows posted as ``ts``; ``opens``: the alert thread that message starts, recorded in the same
        transaction, so no crash can leave an alert posted whose later changes would not find its thread."""
        if not ids:
            return
        now = _now_ms()
        rows = [(ts, thread_ts, now, i) for i in ids]

        def work(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE outbox SET state = 'done', ts = ?, thread_ts = ?, error = NULL, check_posted = 0, "
                "updated_ms = ? WHERE id = ?",
                rows,
            )
            if opens is not None:
                self._insert_alert_thread(conn, opens)

        await self._write(work)

    async def mark_checked(self, ids: Sequence[int]) -> None:
        """The channel was searched and these rows are not in it: they may be posted."""
        await self._update_outbox(ids, "check_posted = 0", ())

    async def mark_retry(
        self, ids: Sequence[int], next_attempt_at: datetime, error: str, *, check_posted: bool = False
    ) -> None:
        """Back to pending until ``next_attempt_at``; ``check_posted``: the failed post may have been made, so
        the row is looked up in its channel before it is tried again."""
        await self._update_outbox(
            ids,
            "state = 'pending', next_attempt_ms = ?, error = ?, check_posted = MAX(check_posted, ?)",
            (to_ms(next_attempt_at), error[:MAX_ERROR_CHARS], int(check_posted)),
        )

    async def mark_failed(self, ids: Sequence[int], error: str) -> None:
        await self._update_outbox(ids, "state = 'failed', error = ?", (error[:MAX_ERROR_CHARS],))

    async def _update_outbox(self, ids: Sequence[int], assignments: str, params: tuple[Any, ...]) -> None:
        if not ids:
            return
        now = _now_ms()
        rows = [(*params, now, i) for i in ids]
        await self._write(
            lambda conn: conn.executemany(f"UPDATE outbox SET {assignments}, updated_ms = ? WHERE id = ?", rows)
        )

    # -- alert threads -----------------------------------------------------------------------------

    async def alert_thread(self, channel: str, target: str, service_id: str, since: datetime) -> AlertThread | None:
        """The newest thread of this service in this channel opened at or after ``since``."""
        rows = await self._read(
            "SELECT * FROM alert_threads WHERE channel = ? AND target = ? AND service_id = ? AND opened_ms >= ? "
            "ORDER BY opened_ms DESC, id DESC LIMIT 1",
            (channel, target, service_id, to_ms(since)),
        )
        if not rows:
            return None
        r = rows[0]
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

    async def open_alert_thread(
        self,
        channel: str,
        target: str,
        service_id: str,
        root_ts: str,
        transition_id: int | None,
        delivery_id: int | None = None,
        opened_at: datetime | None = None,
    ) -> AlertThread:
        thread = AlertThread(
            channel=channel,
            target=target,
            service_id=service_id,
            root_ts=root_ts,
            transition_id=transition_id,
            delivery_id=delivery_id,
            opened_at=opened_at or datetime.now(UTC),
        )
        await self._write(lambda conn: self._insert_alert_thread(conn, thread))
        return thread

    @staticmethod
    def _insert_alert_thread(conn: sqlite3.Connection, thread: AlertThread) -> None:
        conn.execute(
            "INSERT INTO alert_threads (channel, target, service_id, root_ts, transition_id, delivery_id, "
            "opened_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                thread.channel,
                thread.target,
                thread.service_id,
                thread.root_ts,
                thread.transition_id,
                thread.delivery_id,
                to_ms(thread.opened_at),
            ),
        )

    async def resolve_alert_thread(
        self, channel: str, target: str, service_id: str, root_ts: str | None = None
    ) -> bool:
        """Mark the service's open thread(s) in the channel resolved (only the one with ``root_ts`` if given)."""
        sql = (
            "UPDATE alert_threads SET resolved = 1 WHERE channel = ? AND target = ? AND service_id = ? AND resolved = 0"
        )
        params: list[Any] = [channel, target, service_id]
        if root_ts is not None:
            sql += " AND root_ts = ?"
            params.append(root_ts)
        return await self._write(lambda conn: conn.execute(sql, params).rowcount > 0)

    # -- history -----------------------------------------------------------------------------------

    async def transitions(
        self,
        since: datetime | None = None,
        service: str | None = None,
        to_statuses: Iterable[str] | None = None,
        target: str | None = None,
        limit: int = 50,
    ) -> list[Transition]:
        """Stored transitions, newest first. ``service`` is an exact id or name (case-insensitive name)."""
        clauses: list[str] = []
        params: list[Any] = []
        if since is not None:
            clauses.append("observed_ms >= ?")
            params.append(to_ms(since))
        if service:
            clauses.append("(service_id = ? OR service_name = ? COLLATE NOCASE)")
            params += [service, service]
        statuses = sorted(set(to_statuses or ()))
        if statuses:
            clauses.append(f"to_status IN ({','.join('?' * len(statuses))})")
            params += statuses
        if target:
            clauses.append("target = ?")
            params.append(target)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._read(
            f"SELECT * FROM transitions{where} ORDER BY observed_ms DESC, id DESC LIMIT ?", [*params, limit]
        )
        return [_transition(r) for r in rows]

    async def transition(self, transition_id: int) -> Transition | None:
        rows = await self._read("SELECT * FROM transitions WHERE id = ?", (transition_id,))
        return _transition(rows[0]) if rows else None

    async def poll_transitions(self, poll_id: str, channel: str) -> list[Transition]:
        """The transitions one poll queued for one channel (what a grouped alert's "Show all" lists)."""
        rows = await self._read(
            "SELECT t.* FROM outbox o JOIN transitions t ON t.id = o.transition_id "
            "WHERE o.poll_id = ? AND o.channel = ? ORDER BY t.id",
            (poll_id, channel),
        )
        return [_transition(r) for r in rows]

    async def prune(self, now: datetime | None = None) -> dict[str, int]:
        """Forget history older than the retention: transitions (unless still waiting for delivery) with their
        finished outbox rows, other finished outbox rows, expired mutes and old alert threads. Returns how many
        rows each table lost."""
        now_ms = to_ms(now) if now else _now_ms()
        cutoff = now_ms - self.history_days * 86_400_000

        def work(conn: sqlite3.Connection) -> dict[str, int]:
            counts = {
                "outbox": conn.execute(
                    "DELETE FROM outbox WHERE state IN ('done', 'failed') AND (updated_ms < ? OR transition_id IN "
                    "(SELECT id FROM transitions WHERE observed_ms < ?))",
                    (cutoff, cutoff),
                ).rowcount,
                "transitions": conn.execute(
                    "DELETE FROM transitions WHERE observed_ms < ? AND id NOT IN "
                    "(SELECT transition_id FROM outbox WHERE transition_id IS NOT NULL)",
                    (cutoff,),
                ).rowcount,
                "mutes": conn.execute("DELETE FROM mutes WHERE until_ms <= ?", (now_ms,)).rowcount,
                "alert_threads": conn.execute("DELETE FROM alert_threads WHERE opened_ms < ?", (cutoff,)).rowcount,
            }
            return counts

        counts = await self._write(work)
        if any(counts.values()):
            log.info("store pruned", extra=counts)
        return counts


# -- row mapping -----------------------------------------------------------------------------------


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
