"""Store damage is never silent: a damaged, read-only or missing store stops ``serve`` at start with the reason and
the fix; a store deleted while ``serve`` runs is noticed, named in /healthz and in answers, and a copy of it is
saved; a full disk holds alerts back until space comes back, then each change is alerted once."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from services_bot.core.errors import ConfigError
from services_bot.emulator import EmulatorServer
from services_bot.workspace import WorkspaceClient, WorkspaceServer

from services_bot.serve import BackgroundServe
from tests.conftest import Control, slack_settings
from tests.serve_process import ALERTS, POLL, ServeProcess, baselined, outbox_states, read_store, until

GENERAL = "C0GENERAL"


FLEET_SEED = 9
"""The seed of this module's own small fleet (conftest's ``fleet``)."""


async def status_is(proc: ServeProcess, status: int) -> bool:
    return (await proc.health())[0] == status


def alerts(messages: list[dict[str, Any]]) -> list[str]:
    return sorted(m["text"].split(":")[0] for m in messages if m["user"] == "U0BOT" and not m["ephemeral"])


def replies(messages: list[dict[str, Any]]) -> str:
    return json.dumps([m for m in messages if m["ephemeral"]], ensure_ascii=False)


async def made_store(fleet: EmulatorServer, workspace: WorkspaceServer, db: Path) -> None:
    """A store as a first ``serve`` leaves it: baselined, then checkpointed (the WAL folded into the file and
    removed, as the last connection to close does)."""
    with ServeProcess(fleet, workspace, db) as first:
        assert first.url, first.stderr()
        await until(lambda: baselined(db), "the baseline")
    checkpoint(db)


def checkpoint(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assert not Path(f"{db}-wal").exists()


def damage_table(db: Path, table: str) -> None:
    """Garbage over the table's first page, as a bad sector or a stray write leaves it."""
    [(page_size,)] = read_store(db, "PRAGMA page_size")
    [(root,)] = read_store(db, f"SELECT rootpage FROM sqlite_schema WHERE name = '{table}'")
    with db.open("r+b") as f:
        f.seek((root - 1) * page_size + 8)
        f.write(b"\xa5" * (page_size - 8))


def damage_wal_frame(db: Path) -> None:
    """One frame in the middle of the write-ahead log damaged: recovery would cut the log there, dropping every
    transaction committed after it."""
    wal = Path(f"{db}-wal")
    data = wal.read_bytes()
    page_size = int.from_bytes(data[8:12], "big")
    frames = (len(data) - 32) // (24 + page_size)
    assert frames >= 4
    with wal.open("r+b") as f:
        f.seek(32 + (frames // 2) * (24 + page_size) + 24 + 64)
        f.write(b"\x5a" * 256)


def make_read_only(db: Path) -> bool:
    """True if done: root writes through file modes, so only the immutable attribute stops it."""
    if os.geteuid() != 0:
        db.chmod(0o444)
        return True
    return subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode == 0


def make_writable(db: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(db)], check=True)
    db.chmod(0o644)


def exists(path: Path) -> bool:
    return path.exists()


def size_limit_now(db: Path) -> int:
    """A file size limit that lets no file of the store grow any more: every commit appends to the WAL."""
    return max(Path(f"{db}-wal").stat().st_size, db.stat().st_size) + 10


def refused(proc: ServeProcess) -> str:
    """The exit message of a serve that must refuse to start (it never printed its URL)."""
    assert not proc.url, f"serve started anyway: {proc.ready_line}"
    assert proc.exit_code() == 2
    err = proc.stderr()
    assert "Traceback" not in err, err
    return err


async def test_a_damaged_store_refuses_to_start_with_the_reason_and_the_fix(
    fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer, tmp_path: Path
) -> None:
    db = tmp_path / "store.db"
    await made_store(fleet, workspace_server, db)
    damage_table(db, "services")
    with ServeProcess(fleet, workspace_server, db) as proc:
        err = refused(proc)
    assert f"The store {db} is damaged" in err, err
    assert "backup" in err and ".recover" in err


async def test_a_read_only_store_refuses_to_start_with_the_reason_and_the_fix(
    fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer, tmp_path: Path
) -> None:
    db = tmp_path / "store.db"
    await made_store(fleet, workspace_server, db)
    if not make_read_only(db):
        pytest.skip("running as root on a filesystem without chattr +i: no way to make the store read-only")
    try:
        with ServeProcess(fleet, workspace_server, db) as proc:
            err = refused(proc)
    finally:
        make_writable(db)
    assert f"The store {db} is read-only" in err, err
    assert "writable" in err


async def test_a_damaged_wal_refuses_to_start_instead_of_rolling_back_subscriptions(
    fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer, slack: WorkspaceClient,
    tmp_path: Path,
) -> None:  # fmt: skip
    db = tmp_path / "store.db"
    with ServeProcess(fleet, workspace_server, db) as first:
        await until(lambda: baselined(db), "the baseline")
        await slack.set_app_url(first.url + "/slack/events")
        await slack.command("watch failed name:wal-*", GENERAL)
        await slack.wait_for_messages(lambda m: "set this channel" in json.dumps(m), channel=GENERAL)
        first.kill()  # the WAL stays, not checkpointed
    damage_wal_frame(db)
    with ServeProcess(fleet, workspace_server, db) as proc:
        err = refused(proc)
    assert f"The store's write-ahead log {db}-wal is damaged" in err, err
    assert "backup" in err and "wal_checkpoint(TRUNCATE)" in err


async def test_a_store_deleted_while_serve_runs_is_noticed_named_and_saved(
    fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer, slack: WorkspaceClient,
    tmp_path: Path,
) -> None:  # fmt: skip
    db = tmp_path / "store.db"
    settings = slack_settings(
        fleet, workspace_server, services_bot_db=db, services_bot_poll_seconds=POLL, services_bot_alert_channel=ALERTS
    )
    victim = fleet_control.add(service_name="gap-svc", status="running")
    with BackgroundServe(settings, mcp=False) as bot:
        await until(lambda: baselined(db), "the baseline")
        await slack.set_app_url(bot.url + "/slack/events")
        await slack.command("watch failed name:gap-*", GENERAL)
        await slack.wait_for_messages(lambda m: "set this channel" in json.dumps(m), channel=GENERAL)
        for name in (db.name, f"{db.name}-wal", f"{db.name}-shm"):  # `rm store.db*` by a clean-up script
            (tmp_path / name).unlink(missing_ok=True)

        async with httpx.AsyncClient() as http:
            await until(lambda: unhealthy(http, bot.url), "the deleted store to be noticed", 5)
            health = (await http.get(bot.url + "/healthz")).json()
        store = health["store"]
        assert f"The store {db} was deleted while serve was running" in store["problem"], store
        rescued = Path(store["rescued_to"])
        assert exists(rescued) and rescued.parent == tmp_path
        assert store["problem"] in health["problems"]

        await slack.command("watches", GENERAL)
        answer = replies(await slack.wait_for_messages(lambda m: "was deleted" in replies(m), channel=GENERAL))
        assert str(db) in answer and str(rescued) in answer and "Something went wrong" not in answer
        fleet_control.set_status(victim["service_id"], "failed", "while the store was gone")
        await asyncio.sleep(4 * POLL)
        assert not alerts(await slack.messages(ALERTS)), "nothing is alerted from a store that will be lost"

    with pytest.raises(ConfigError) as missing:  # a restart does not start afresh with no subscriptions
        BackgroundServe(settings, mcp=False).start()
    assert f"The store {db} is missing" in missing.value.message
    assert str(rescued) in missing.value.hint and f"{db}.lock" in missing.value.hint

    shutil.move(rescued, db)  # the fix the hint gives
    with BackgroundServe(settings, mcp=False):
        await slack.wait_for_messages(lambda m: alerts(m) == ["gap-svc"], channel=ALERTS, timeout=10)
        await slack.wait_for_messages(lambda m: "gap-svc" in alerts(m), channel=GENERAL, timeout=10)
        await asyncio.sleep(4 * POLL)
    assert alerts(await slack.messages(ALERTS)) == ["gap-svc"], "the change from the gap is alerted once"


async def unhealthy(http: httpx.AsyncClient, url: str) -> bool:
    return (await http.get(url + "/healthz")).status_code == 503


async def test_a_full_disk_holds_alerts_until_space_comes_back_then_each_change_is_alerted_once(
    fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer, slack: WorkspaceClient,
    tmp_path: Path,
) -> None:  # fmt: skip
    db = tmp_path / "store.db"
    services = [fleet_control.add(service_name=f"full-{i}", status="running") for i in range(4)]
    with ServeProcess(fleet, workspace_server, db) as proc:
        await until(lambda: baselined(db), "the baseline")
        # no file of serve may grow any more (a real full disk needs root to mount a small one): every commit
        # goes to the end of the WAL, so every write fails, as on a disk with no room left
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (size_limit_now(db), resource.RLIM_INFINITY))
        try:
            for s in services:
                fleet_control.set_status(s["service_id"], "failed", "while the disk was full")
            await until(lambda: status_is(proc, 503), "health to notice the full disk")
            health = (await proc.health())[1]
            assert "full" in health["store"]["problem"] and str(db) in health["store"]["problem"], health
            await asyncio.sleep(4 * POLL)
            assert not alerts(await slack.messages(ALERTS)), "nothing could be recorded, so nothing was posted"
        finally:
            resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        await slack.wait_for_messages(lambda m: len(alerts(m)) >= 4, channel=ALERTS, timeout=15)
        await until(lambda: set(outbox_states(db)) == {"done"}, "every alert delivered")
        await asyncio.sleep(4 * POLL)
        assert alerts(await slack.messages(ALERTS)) == [f"full-{i}" for i in range(4)], "each once, none lost"
        await until(lambda: status_is(proc, 200), "health to recover")
        assert (await proc.health())[1]["store"]["problem"] is None
