"""The store's own checks, on SQLite files in tmp_path: what counts as a damaged write-ahead log (and what is a
normal leftover), a file deleted under an open store, and an error about the file that clears itself."""

from __future__ import annotations

import shutil
import sqlite3
import struct
from pathlib import Path

import pytest
from services_bot.core.errors import StoreError
from services_bot.core.store import Store
from services_bot.core.store_checks import _checksum, wal_damage


def wal_of_many_commits(tmp_path: Path) -> tuple[Path, bytes, int]:
    """A copy of a live WAL holding 40 commits (the copy, so no connection's close checkpoints it away)."""
    db = tmp_path / "w.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE t (x)")
    for i in range(40):
        conn.execute("INSERT INTO t VALUES (?)", ("x" * 300 * i,))
    copy = tmp_path / "copy-wal"
    shutil.copy(f"{db}-wal", copy)
    conn.close()
    data = copy.read_bytes()
    return copy, data, int.from_bytes(data[8:12], "big")


def test_a_damaged_frame_followed_by_commits_is_damage_a_torn_tail_is_not(tmp_path: Path) -> None:
    wal, data, page_size = wal_of_many_commits(tmp_path)
    frame = 24 + page_size
    frames = (len(data) - 32) // frame
    assert wal_damage(wal) is None
    middle = bytearray(data)
    middle[32 + (frames // 2) * frame + 100] ^= 0xFF
    wal.write_bytes(bytes(middle))
    found = wal_damage(wal)
    assert found is not None and f"frame {frames // 2 + 1} of {frames} is unreadable" in found
    wal.write_bytes(data[: len(data) - frame // 2])  # a crash while appending: the last frame half written
    assert wal_damage(wal) is None
    last = bytearray(data)
    last[32 + (frames - 1) * frame + 100] ^= 0xFF  # nothing committed after it: looks like a torn write
    wal.write_bytes(bytes(last))
    assert wal_damage(wal) is None
    old = bytearray(middle)  # the damaged log, after a reset: a valid header of a new generation (other salts)
    old[16:24] = b"\x01" * 8
    order = ">" if data[3] & 1 else "<"
    old[24:32] = struct.pack(">2I", *_checksum(order, bytes(old[:24]), (0, 0)))
    wal.write_bytes(bytes(old))
    assert wal_damage(wal) is None, "frames of an older generation are leftovers, not damage"


async def test_a_store_deleted_under_an_open_store_is_written_no_more_and_a_copy_is_saved(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    async with Store(db) as store:
        await store.add_subscription("C1", {"failed"})
        for name in (db.name, f"{db.name}-wal", f"{db.name}-shm"):
            (tmp_path / name).unlink()
        with pytest.raises(StoreError, match="was deleted while serve was running") as lost:
            await store.add_subscription("C2", {"failed"})
        assert lost.value.kind == "deleted" and store.lost and store.rescued_to is not None
        with pytest.raises(StoreError):
            await store.subscriptions()  # nor read: it would answer from a file no one will open again
        assert str(store.rescued_to) in lost.value.hint
        rescued = store.rescued_to
    async with Store(rescued) as copy:
        assert [s.channel for s in await copy.subscriptions()] == ["C1"]


async def test_an_error_about_the_file_is_named_and_clears_with_the_next_write(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    async with Store(db, busy_timeout_ms=100) as store:
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # a sqlite3 shell left with a write transaction open
        with pytest.raises(StoreError, match="stayed locked by another program") as busy:
            await store.set_meta("k", "v")
        assert busy.value.kind == "busy" and store.health()["problem"] == busy.value.message
        other.execute("ROLLBACK")
        other.close()
        await store.set_meta("k", "v")
        assert store.problem is None and store.health()["problem"] is None
