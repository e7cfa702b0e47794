"""One writer per store: two ``serve`` processes on one store (a rolling deploy with overlap) alert each change
once; the second stands by, answering commands and /healthz, naming the holder, and takes over when the holder
is killed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from services_bot.core.lease import lock_path, read_record
from services_bot.emulator import EmulatorServer
from services_bot.workspace import WorkspaceClient, WorkspaceServer

from services_bot.serve import BackgroundServe
from tests.conftest import Control, slack_settings
from tests.serve_process import ALERTS, ServeProcess, baselined, outbox_states, until

TAKE_OVER_BOUND = 5.0
"""Seconds from the holder's death to the standby holding the lease: the standby tries every second; the rest is
slack for a loaded machine."""


FLEET_SEED = 5
"""The seed of this module's own small fleet (conftest's ``fleet``)."""


async def _is_holder(proc: ServeProcess) -> bool:
    return await proc.role() == "holder"


def alerts(messages: list[dict[str, Any]]) -> list[str]:
    """The service names of the bot's alerts, one entry per message."""
    return sorted(m["text"].split(":")[0] for m in messages if m["user"] == "U0BOT" and not m["ephemeral"])


async def settled_alerts(slack: WorkspaceClient, db: Path, count: int) -> list[str]:
    """The alerts once ``count`` have arrived, every outbox row is done and a few more polls found nothing."""
    await slack.wait_for_messages(lambda m: len(alerts(m)) >= count, channel=ALERTS, timeout=15)
    await until(lambda: set(outbox_states(db)) == {"done"}, "every outbox row delivered")
    await asyncio.sleep(1.5)  # five polls of each process: a second poster would have posted by now
    return alerts(await slack.messages(ALERTS))


async def test_two_serves_on_one_store_alert_each_change_once_and_the_standby_takes_over(
    fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer, slack: WorkspaceClient,
    tmp_path: Path,
) -> None:  # fmt: skip
    db = tmp_path / "store.db"
    services = [fleet_control.add(service_name=f"lease-{i:02}", status="running") for i in range(13)]
    with ServeProcess(fleet, workspace_server, db) as first:
        assert first.url, first.stderr()
        await until(lambda: baselined(db), "the baseline")
        with ServeProcess(fleet, workspace_server, db) as second:
            assert second.url, second.stderr()
            await asyncio.sleep(1.0)  # the second serve's watcher, if it ran one, has polled by now
            for s in services[:10]:
                fleet_control.set_status(s["service_id"], "failed", "rolling deploy")
            posted = await settled_alerts(slack, db, 10)
            assert posted == [f"lease-{i:02}" for i in range(10)], "each change alerted once, not once per process"

            status, health = await second.health()
            assert status == 200 and health["lease"]["role"] == "standby", health
            holder = health["lease"]["holder"]
            assert f":{first.pid}:" in holder and "watcher" not in health
            assert "standby" in second.ready_line and holder in second.ready_line
            assert await first.role() == "holder"
            await slack.set_app_url(second.url + "/slack/events")
            await slack.command("watches", ALERTS)
            listed = await slack.wait_for_messages(lambda m: "told about" in json.dumps(m), channel=ALERTS)
            assert listed, "a standby answers commands"

            first.kill()
            took = await until(lambda: _is_holder(second), "the take-over", TAKE_OVER_BOUND)
            assert took < TAKE_OVER_BOUND
            for s in services[10:]:
                fleet_control.set_status(s["service_id"], "failed", "after the take-over")
            posted = await settled_alerts(slack, db, 13)
            assert posted == [f"lease-{i:02}" for i in range(13)], "later changes alerted once, by the new holder"
            assert (await second.health())[0] == 200


async def test_a_deleted_lock_file_leaves_one_holder(
    fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer, tmp_path: Path
) -> None:
    """Deleting ``<store>.lock`` under a holder would let a newcomer lock a new file at the path: the holder steps
    down, and of the two processes exactly one holds the lease again."""
    db = tmp_path / "store.db"
    settings = slack_settings(fleet, workspace_server, services_bot_db=db, services_bot_poll_seconds=0.3)
    with BackgroundServe(settings, mcp=False) as first, BackgroundServe(settings, mcp=False) as second:
        assert (first.runtime.role, second.runtime.role) == ("holder", "standby")
        delete(lock_path(db))
        await until(lambda: first.runtime.role == "standby" or second.runtime.role == "holder", "a step-down", 10)
        await until(lambda: "holder" in (first.runtime.role, second.runtime.role), "a new holder", 10)
        await asyncio.sleep(2.5)  # past the next check of whoever holds it now
        roles = sorted((first.runtime.role, second.runtime.role))
        assert roles == ["holder", "standby"], roles
        holder = first if first.runtime.role == "holder" else second
        assert holder.runtime.watcher is not None and (second if holder is first else first).runtime.watcher is None
        assert holder.runtime.lease is not None
        assert read_record(lock_path(db)).holder == holder.runtime.lease.holder_id


def delete(path: Path) -> None:
    path.unlink()


def _has_wal(db: Path) -> bool:
    return Path(f"{db}-wal").exists()


async def test_sigterm_closes_the_store_before_the_process_ends(
    fleet: EmulatorServer, fleet_control: Control, workspace_server: WorkspaceServer, tmp_path: Path
) -> None:
    """`docker stop` sends SIGTERM. uvicorn re-raised it on leaving its loop, which ended the process before the
    shutdown around it ran: the store was left open (its write-ahead log never folded back) and the watcher and
    delivery were cut off mid-step. Now shutdown runs first, and the process still ends as SIGTERM ends it."""
    import signal

    db = tmp_path / "store.db"
    with ServeProcess(fleet, workspace_server, db) as proc:
        assert proc.url, proc.stderr()
        await until(lambda: baselined(db), "the baseline")
        assert _has_wal(db), "an open store in WAL mode has its log beside it"
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGTERM)
        code = proc.exit_code(timeout=20)
        logged = proc.stderr()
    assert code == -signal.SIGTERM, (code, logged[-2000:])
    assert "Traceback" not in logged
    assert not _has_wal(db), "the store was closed: its log folded back into the file"
