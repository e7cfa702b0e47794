"""The emulator in a process of its own, so its CPU and memory are not counted as the bot's."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_emulator(
    services: int, *, seed: int = 1, generations: str = "v1", timeout: float = 180
) -> tuple[subprocess.Popen[bytes], str]:
    """An emulator with ``services`` in the default workspace and no churn, of the API ``generations`` (v1, v2 or
    mixed); returns the process and its URL."""
    port = free_port()
    code = (
        "import emulator; emulator.run(emulator.EmulatorSettings("
        f"port={port}, services={services}, seed={seed}, workspaces=0, churn=0, generations={generations!r}))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/_emulator/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("emulator did not start")
