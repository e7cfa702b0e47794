"""What can be wrong with the store's file, found out before it costs anything, and said in words an operator can
act on: each problem is a ``StoreError`` whose message names the file and the problem and whose hint is the fix.

SQLite keeps going silently in several of these cases: a write to a file deleted while open succeeds (into a file
no one will ever open again), a write-ahead log with one damaged frame is cut short at that frame on recovery
(dropping every transaction committed after it), a read-only file opens and fails only at the first write.
So ``Store`` checks at open (integrity, writability, the log, that a store expected here is here) and before
every call (that the path still names the file it has open); the checks themselves live here.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from services_bot.core.errors import StoreError

WAL_MAGIC = (0x377F0682, 0x377F0683)
WAL_HEADER = 32
FRAME_HEADER = 24
MAX_DETAIL_CHARS = 300

# SQLite primary result codes (the low byte of an extended code) that say the store itself is in trouble;
# any other error (a constraint, a misuse) is a bug and stays what it is.
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR, SQLITE_CORRUPT = 5, 6, 8, 10, 11
SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 13, 14, 26


def problem_of(path: Path, exc: sqlite3.Error, busy_seconds: float) -> StoreError | None:
    """The ``StoreError`` that ``exc`` means for the store at ``path``, or None when it is not about the file."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return None
    detail = str(exc)[:MAX_DETAIL_CHARS]
    primary = code & 0xFF
    if primary == SQLITE_FULL:
        return StoreError(
            f"The store {path} cannot be written: its disk is full.",
            hint=f"Free space on the disk that holds {path.parent}. Alerts wait meanwhile and are sent once a write "
            "succeeds; a command that failed must be given again.",
            kind="full",
        )
    if primary == SQLITE_READONLY:
        return read_only_error(path, detail)
    if primary in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return damaged_error(path, detail)
    if primary == SQLITE_IOERR:  # a write past a file size limit or quota, a failing disk, a volume gone
        return StoreError(
            f"The store {path} cannot be read or written: the disk reported an I/O error ({detail}); it may be "
            "full, failing or gone.",
            hint=f"Check the disk or volume that holds {path.parent} (free space, quotas, the device, the mount). "
            "Alerts wait meanwhile and are sent once a write succeeds.",
            kind="io",
        )
    if primary == SQLITE_CANTOPEN:
        return StoreError(
            f"The store {path} cannot be opened ({detail}).",
            hint=f"Check that {path.parent} exists and that services-bot may write there: SQLite creates "
            f"{path.name}-wal and {path.name}-shm beside the store.",
            kind="cannot-open",
        )
    if primary in (SQLITE_BUSY, SQLITE_LOCKED):
        return StoreError(
            f"The store {path} stayed locked by another program for over {busy_seconds:.0f} s.",
            hint="Close whatever holds a write transaction open on it (a sqlite3 shell, a backup tool); "
            "services-bot carries on by itself once it is free.",
            kind="busy",
        )
    return None


def read_only_error(path: Path, detail: str) -> StoreError:
    return StoreError(
        f"The store {path} is read-only ({detail}).",
        hint=f"Make {path} and its folder {path.parent} writable by the user services-bot runs as (uid "
        f"{os.getuid()}): SQLite also writes {path.name}-wal and {path.name}-shm beside it. A volume mounted "
        "read-only, or owned by another user, does this.",
        kind="read-only",
    )


def damaged_error(path: Path, detail: str) -> StoreError:
    return StoreError(
        f"The store {path} is damaged ({detail}).",
        hint=f"Stop services-bot and restore {path} from a backup; or salvage what is readable with "
        f"`sqlite3 {path} .recover | sqlite3 {path}.recovered` and move {path}.recovered to {path}. "
        "Then start services-bot again.",
        kind="damaged",
    )


def integrity_problem(conn: sqlite3.Connection, path: Path) -> StoreError | None:
    """``PRAGMA quick_check``: every page and index entry readable (not the slower cross-check of indexes)."""
    rows = [str(row[0]) for row in conn.execute("PRAGMA quick_check(5)")]
    if rows == ["ok"]:
        return None
    return damaged_error(path, "; ".join(rows)[:MAX_DETAIL_CHARS])


def missing_problem(path: Path, expected_id: str | None) -> StoreError | None:
    """A store that should be at ``path`` and is not: started afresh, it would forget every subscription and
    baseline anew, so changes from the downtime would never be alerted. ``expected_id`` is the id the lock file
    recorded (a store was used here); a ``-wal`` file left without its store says the same."""
    wal = Path(f"{path}-wal")
    if path.exists() or (expected_id is None and not wal.exists()):
        return None
    why = f"store id {expected_id} was used here (recorded in {path}.lock)" if expected_id else f"{wal} is left"
    return StoreError(
        f"The store {path} is missing, but a store was there before: {why}.",
        hint=_restore_hint(path),
        kind="missing",
    )


def empty_problem(path: Path, expected_id: str) -> StoreError:
    return StoreError(
        f"The store {path} is empty, but store id {expected_id} was used here (recorded in {path}.lock).",
        hint=_restore_hint(path),
        kind="missing",
    )


def _restore_hint(path: Path) -> str:
    copies = rescued_copies(path)
    restore = f"Move the copy services-bot saved, {copies[0]}, to {path}" if copies else f"Restore {path} from a backup"
    return (
        f"{restore}, then start services-bot again: changes since then are alerted. To start afresh instead, "
        f"with no subscriptions and no history, delete {path}.lock and any {path.name}-wal and {path.name}-shm "
        "left beside it (with no services-bot running)."
    )


def rescued_copies(path: Path) -> list[Path]:
    """Copies saved by ``rescue_path`` names, newest first."""
    return sorted(path.parent.glob(f"{path.name}.rescued-*"), reverse=True)


def rescue_path(path: Path) -> Path:
    """Where to save a copy of a store whose file was deleted or replaced while open: beside it, named by time
    (and pid, as a standby and the holder may both save one)."""
    return path.with_name(f"{path.name}.rescued-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{os.getpid()}")


def identity(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def lost_kind(path: Path, opened: tuple[int, int]) -> str | None:
    """``deleted`` or ``replaced`` when ``path`` no longer names the file opened as ``opened``; None if it does.
    ``os.stat`` only: opening and closing the file would drop SQLite's POSIX locks on it."""
    try:
        now = identity(path)
    except FileNotFoundError:
        return "deleted"
    return None if now == opened else "replaced"


def lost_error(path: Path, kind: str, rescued: Path | None, rescue_failed: str | None) -> StoreError:
    if kind == "deleted":
        message = f"The store {path} was deleted while serve was running; nothing more is recorded or alerted."
        fix = f"stop services-bot, move {rescued} to {path} and start it again: changes since then are alerted once"
    else:
        message = (
            f"The store {path} was replaced by another file while serve was running; nothing more is recorded or "
            "alerted until it restarts."
        )
        fix = f"restart services-bot to use the new {path} (move {rescued} to {path} first to keep what it had)"
    if rescued is not None:
        hint = f"A copy of the store as it was then is saved at {rescued}: {fix}."
    else:
        why = f" (none could be saved: {rescue_failed})" if rescue_failed else ""
        hint = f"Stop services-bot, restore {path} from a backup{why}, and start it again."
    return StoreError(message, hint=hint, kind=kind)


# -- the write-ahead log ---------------------------------------------------------------------------------


def wal_problem(path: Path, confirm_after: float = 0.2) -> StoreError | None:
    """A damaged ``-wal`` beside ``path``, before SQLite opens it (opening runs recovery, which silently cuts
    the log at the first bad frame). Only meaningful with no writer on the store: a frame being appended
    can look damaged, so a finding is confirmed by a second reading a moment later."""
    wal = Path(f"{path}-wal")
    detail = wal_damage(wal)
    if detail is None:
        return None
    time.sleep(confirm_after)
    detail = wal_damage(wal)
    if detail is None:
        return None
    return StoreError(
        f"The store's write-ahead log {wal} is damaged: {detail}. Opened as it is, the store would silently lose "
        "them (recent subscriptions, mutes, history and alerts).",
        hint=f"Stop every services-bot on it. Restore {path} from a backup (and remove {wal}); or keep what the "
        f"log still holds before the damage and drop the rest: `sqlite3 {path} 'PRAGMA wal_checkpoint(TRUNCATE)'`. "
        "Then start services-bot again.",
        kind="damaged",
    )


def wal_damage(wal: Path) -> str | None:
    """Committed transactions that SQLite's recovery would drop from ``wal``, described; None if there are none.

    Recovery reads frames in order and stops at the first whose salt or checksum is wrong. A torn tail (a crash
    while appending) is normal and looks the same, so damage is a bad frame followed by a *commit* frame of the
    same log generation that is itself intact: its checksum, which continues from the checksum recorded in the
    frame before it, checks out locally. Leftovers of older generations (other salts) and of rolled-back
    transactions (no commit frame) are not damage. A log whose header is invalid is ignored whole by SQLite;
    that only happens right after a checkpointed reset, so it is not reported."""
    try:
        with wal.open("rb") as f:
            header = f.read(WAL_HEADER)
            if len(header) < WAL_HEADER:
                return None
            magic, _version, page_size, _seq, salt1, salt2, check1, check2 = struct.unpack(">8I", header)
            if magic not in WAL_MAGIC or not 512 <= page_size <= 65536 or page_size & (page_size - 1):
                return None
            order = ">" if magic & 1 else "<"
            if _checksum(order, header[:24], (0, 0)) != (check1, check2):
                return None
            return _scan_frames(f, order, page_size, (salt1, salt2), (check1, check2))
    except FileNotFoundError:
        return None


def _scan_frames(
    f: BinaryIO, order: str, page_size: int, salts: tuple[int, int], previous: tuple[int, int]
) -> str | None:
    broken_at: int | None = None
    lost = 0
    count = 0
    for number, (frame_header, page) in enumerate(_frames(f, page_size), start=1):
        count = number
        page_no, commit, salt1, salt2, check1, check2 = struct.unpack(">6I", frame_header)
        intact = (salt1, salt2) == salts and page_no != 0
        intact = intact and _checksum(order, frame_header[:8] + page, previous) == (check1, check2)
        previous = (check1, check2)  # the next frame's checksum continues from what this one records
        if broken_at is None and not intact:
            broken_at = number
        elif broken_at is not None and intact and commit:
            lost += 1
    if broken_at is None or lost == 0:
        return None
    return f"frame {broken_at} of {count} is unreadable, and {lost} committed transaction(s) follow it"


def _frames(f: BinaryIO, page_size: int) -> Iterator[tuple[bytes, bytes]]:
    size = FRAME_HEADER + page_size
    while len(frame := f.read(size)) == size:
        yield frame[:FRAME_HEADER], frame[FRAME_HEADER:]


def _checksum(order: str, data: bytes, start: tuple[int, int]) -> tuple[int, int]:
    """SQLite's WAL checksum: pairs of 32-bit words (in the log's byte order) folded into two running sums."""
    words = struct.unpack(f"{order}{len(data) // 4}I", data)
    s1, s2 = start
    mask = 0xFFFFFFFF
    for i in range(0, len(words), 2):
        s1 = (s1 + words[i] + s2) & mask
        s2 = (s2 + words[i + 1] + s1) & mask
    return s1, s2
