"""The connection and everything under it: opening with the checks, the one worker thread, transactions,
the store's identity and health, and the meta table. Table groups subclass ``StoreBase``."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from services_bot.core.errors import StoreError
from services_bot.core.store.records import _now_ms
from services_bot.core.store.rows import _copy, _statements
from services_bot.core.store.schema import MIGRATIONS, T, log
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


class StoreBase:
    """Async façade over one SQLite file. ``async with Store(path) as store: ...``

    ``writable=False`` skips the write probe at open (a reader such as ``services-bot mcp``); ``expected_id`` is
    the store id the lease's lock file recorded (a store was used at this path); ``check_wal`` checks the
    write-ahead log before opening, which only the one writer may do (another's appends can look damaged);
    ``channel_sees(channel, target)`` keeps alerts of a target out of channels that may not see it.
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
        channel_sees: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.path = Path(path)
        self.channel_sees = channel_sees
        """Whether a channel may see a target (``core.access``): routing queues no alert a channel may not see."""
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

    async def open(self) -> Self:
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

    async def __aenter__(self) -> Self:
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
