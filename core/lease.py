"""One writer per store: the watcher and the delivery worker run only in the process that holds the store's
lease, an exclusive ``flock`` on the sidecar file ``<store>.lock``.

Why an OS file lock rather than a lease row in the store that the holder renews: the kernel releases a flock
the moment its holder dies (``kill -9``, the OOM killer), so a standby takes over at its next try instead of
after an expiry; it needs no clock and no renewal writes (which would fail on the very full disk the store must
survive, and let a paused holder come back to a lease already taken over); a stopped process (SIGSTOP, a paused
VM) keeps it, so two writers never overlap. Its limit is the store's own: SQLite's WAL needs the shared memory
of one host, so the store must be on a local filesystem or a volume that containers on one host share, where
flock works; on a network filesystem neither is safe.

The lock file also says who holds it (``host:pid:start``) and which store it belongs to (the store's id, kept
after the holder exits), so a standby can name the holder and a restart can tell a store that went missing
from a first start. A flock belongs to the open file, so a standby in the same process (tests) is refused too.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger("services_bot.lease")


def lock_path(store: Path) -> Path:
    return store.with_name(store.name + ".lock")


@dataclass(frozen=True)
class LeaseRecord:
    """What the lock file says: the last holder (it may have exited) and the store it had open."""

    holder: str | None = None
    since: str | None = None
    store_id: str | None = None


def read_record(path: Path) -> LeaseRecord:
    """The lock file's record; an empty one if there is none or it is being rewritten at this instant."""
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return LeaseRecord()
    if not isinstance(data, dict):
        return LeaseRecord()
    return LeaseRecord(
        holder=_text(data.get("holder")), since=_text(data.get("since")), store_id=_text(data.get("store_id"))
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class StoreLease:
    """The lease on one store. Blocking calls (file I/O): run them in a thread from async code."""

    def __init__(self, store: Path) -> None:
        self.path = lock_path(store)
        started = datetime.now(UTC)
        self.holder_id = f"{socket.gethostname()}:{os.getpid()}:{started:%Y-%m-%dT%H:%M:%SZ}"
        self.since: str | None = None
        self._fd: int | None = None
        self._identity: tuple[int, int] | None = None
        self._store_id: str | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lease if no one holds it; never waits. Raises OSError if the lock file cannot be made."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        st = os.fstat(fd)
        self._fd, self._identity = fd, (st.st_dev, st.st_ino)
        self.since = datetime.now(UTC).isoformat(timespec="seconds")
        self._store_id = self._previous_store_id(fd)
        self._write()
        return True

    @staticmethod
    def _previous_store_id(fd: int) -> str | None:
        """Read through the locked descriptor: where flock is emulated with POSIX locks (NFS), closing any other
        descriptor of the file would drop the lock."""
        size = os.fstat(fd).st_size
        try:
            data = json.loads(os.pread(fd, size, 0).decode() or "{}") if size else {}
        except ValueError:
            return None
        return _text(data.get("store_id")) if isinstance(data, dict) else None

    def record(self, store_id: str | None) -> None:
        """Note in the lock file which store the holder has open, so a restart knows one is expected here."""
        self._store_id = store_id or self._store_id
        if self._fd is not None:
            self._write()

    def _write(self) -> None:
        assert self._fd is not None
        body = {"holder": self.holder_id, "since": self.since, "store_id": self._store_id}
        data = (json.dumps(body) + "\n").encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)
        os.fsync(self._fd)

    def read(self) -> LeaseRecord:
        """Who holds the lease (this process's own record when it is the holder)."""
        if self._fd is not None:
            return LeaseRecord(holder=self.holder_id, since=self.since, store_id=self._store_id)
        return read_record(self.path)

    def still_held(self) -> bool:
        """False when the lock file was deleted or replaced under the holder: another process could then lock a
        new file at the path, so the holder must step down (and try again, like any standby)."""
        if self._fd is None or self._identity is None:
            return False
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        return (st.st_dev, st.st_ino) == self._identity

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd, self._identity = self._fd, None, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
