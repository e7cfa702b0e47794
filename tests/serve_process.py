"""``services-bot serve`` as a real subprocess, for what only a separate process can show: two processes on one
store, a SIGKILL, a refusal to start and its exit message, limits set on a running process (``prlimit``)."""

from __future__ import annotations

import asyncio
import inspect
import os
import selectors
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from services_bot.emulator import EmulatorServer
from services_bot.workspace import WorkspaceServer

POLL = 0.3
ALERTS = "C0ALERTS"


def serve_env(fleet: EmulatorServer, workspace: WorkspaceServer, db: Path, **extra: str) -> dict[str, str]:
    """The environment of a serve aimed at the emulator and the Slack stand-in, none of the caller's credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELARTS_", "HUAWEICLOUD_", "SLACK_"))}
    env.update(
        MODELARTS_ENDPOINT=fleet.url,
        MODELARTS_PROJECT_ID=fleet.settings.project_id,
        MODELARTS_AUTH_TOKEN=fleet.settings.token,
        SLACK_BOT_TOKEN=workspace.settings.bot_token,
        SLACK_SIGNING_SECRET=workspace.settings.signing_secret,
        SLACK_API_URL=workspace.api_url,
        SERVICES_BOT_PORT="0",
        SERVICES_BOT_DB=str(db),
        SERVICES_BOT_POLL_SECONDS=str(POLL),
        SERVICES_BOT_ALERT_CHANNEL=ALERTS,
        SERVICES_BOT_GROUP_THRESHOLD="100",
        SERVICES_BOT_MAX_RETRIES="0",
        **extra,
    )
    return env


class ServeProcess:
    """One ``services-bot serve --no-mcp``; ``start()`` returns once it printed its URL (or it exited)."""

    def __init__(self, fleet: EmulatorServer, workspace: WorkspaceServer, db: Path, **extra: str) -> None:
        self.env = serve_env(fleet, workspace, db, **extra)
        self.proc: subprocess.Popen[str] | None = None
        self.ready_line = ""
        self.url = ""
        self._stderr: list[str] = []
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 30) -> ServeProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services_bot.cli", "serve", "--no-mcp"],
            env=self.env, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None and self.proc.stderr is not None
        # drained by a thread: logs never fill the pipe, and no file of the test grows under a limit set on serve
        self._reader = threading.Thread(target=self._drain, args=(self.proc.stderr,), daemon=True)
        self._reader.start()
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise TimeoutError(f"serve printed nothing in {timeout} s; stderr: {self.stderr()}")
        self.ready_line = self.proc.stdout.readline().strip()
        if self.ready_line.startswith("services-bot on "):
            self.url = self.ready_line.split()[2]
        return self

    def _drain(self, stream: Any) -> None:
        for line in stream:
            self._stderr.append(line)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def exit_code(self, timeout: float = 30) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stderr(self) -> str:
        """What serve logged so far (all of it once it has exited)."""
        if self.proc is not None and self.proc.poll() is not None and self._reader is not None:
            self._reader.join(timeout=5)
        return "".join(self._stderr)

    async def health(self) -> tuple[int, dict[str, Any]]:
        async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
            response = await http.get(self.url + "/healthz")
        return response.status_code, response.json()

    async def role(self) -> str:
        return str((await self.health())[1]["lease"]["role"])

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when the kernel's OOM killer or a node failure ends it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        if self._reader is not None:
            self._reader.join(timeout=5)

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def read_store(db: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows from the store at ``db``, read-only (never creating it); none while it has no such table."""
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def baselined(db: Path) -> bool:
    """The watcher has committed its first poll of the store at ``db``."""
    return any(row[0] for row in read_store(db, "SELECT baselined_ms FROM targets"))


def outbox_states(db: Path) -> list[str]:
    return [row[0] for row in read_store(db, "SELECT state FROM outbox ORDER BY id")]


async def until(check: Any, what: str, timeout: float = 15) -> float:  # noqa: ASYNC109 - names what it waited for
    """Wait for ``check()`` (or the awaitable it returns) to be truthy; returns the seconds it took."""
    started = time.monotonic()
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
